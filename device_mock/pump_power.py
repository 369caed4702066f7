"""The pump's energy account: what the cell has used, when replacement is advised, when ERI and EOS come,
and their projected dates.

A part of ``Pump`` (a mixin over its state, see ``pump_state``): the electronics' quiescent drain,
the motor's energy per microlitre and the receiver's wake-ups, all closed-form functions of the
integer totals, so any cut of time gives the same joules. ERI comes when the cell holds
``eri_reserve_days`` at the programmed drain and the pump stops that long after it, at any flow
rate (docs/devices.md 2.7). REPLACEMENT_ADVISED is logged when that stop, projected at the programmed
drain (or the age limit), is ``replacement_advised_days`` away: an energy level before ERI, a date
after it or by age, each a breakpoint. Must not import ``pump.py`` nor anything of the dashboard.
"""

from __future__ import annotations

import math

from protocols.messages import (
    BatteryState,
    EventCode,
)

from . import pump_dosing as dosing
from .pump_dosing import DAY_MS, UNITS_PER_UL, ActiveBolus
from .pump_state import PumpParts

__all__ = ["PumpPower"]


class PumpPower(PumpParts):
    """Energy, ERI and EOS of a pump (mixed into ``Pump``)."""

    _age_eos: int | None

    def _energy_used(self, powered_ms: int, pumped_units: int) -> float:
        """Joules used after ``powered_ms`` of electronics, ``pumped_units`` of motor strokes and the wake-ups."""
        cfg = self.config
        return (
            cfg.quiescent_power_w * powered_ms / 1000.0
            + cfg.motor_j_per_ul * pumped_units / UNITS_PER_UL
            + cfg.wake_j * self.totals.wakeups
        )

    @property
    def wakeups(self) -> int:
        """Receiver wake-ups outside a session so far (R10)."""
        return self.totals.wakeups

    @property
    def wake_energy_j(self) -> float:
        """Joules the receiver's wake-ups outside a session have cost (R10)."""
        return self.config.wake_j * self.totals.wakeups

    def charge_wakeups(self, count: int) -> None:
        """Count ``count`` receiver wake-ups (R10) at ``now_ms`` (advance first); the cell follows from the totals.

        Kept as an integer total like the others, so the energy stays a closed-form function of them; a
        threshold the lump crossed (ERI, EOS) is logged now, at this millisecond.
        """
        if count <= 0 or not self.powered:
            return
        self.totals.wakeups += count
        self._sync_battery()
        self._check()

    def _program_power_w(self, pumping: bool) -> float:
        """The programmed average drain: electronics plus the motor at the schedule's daily volume."""
        cfg = self.config
        daily = self.program.schedule.daily_units() if pumping else 0
        return cfg.quiescent_power_w + cfg.motor_j_per_ul * daily / UNITS_PER_UL / (DAY_MS / 1000)

    def _eri_level_j(self) -> float:
        """Energy left at ERI: the reserve days at the programmed drain (at least the nominal one), so
        that the pump runs the ERI-to-stop interval at any flow rate."""
        return self._drain_levels_j()[0]

    def _drain_levels_j(self) -> tuple[float, float]:
        """(ERI level, replacement level) at the programmed drain, worked out together: the advance loop
        asks for both at every step.

        The replacement level is the energy left when the stop, projected at the programmed drain, is
        the lead time away. Before ERI the stop is the reserve days after ERI: a lead longer than the
        reserve is that much more of the programmed drain above the ERI level. A shorter lead falls
        after ERI, where the stop is fixed (``_replacement_times_ms``) unless the energy runs out first:
        the lead's drain.
        """
        cfg, cell = self.config, self.config.cell
        watts = self._program_power_w(self.basal_pumping)
        reserve_s, lead_s = cell.eri_reserve_days * DAY_MS / 1000, cfg.replacement_advised_days * DAY_MS / 1000
        eri = max(cell.nominal_power_w, watts) * reserve_s
        return eri, eri + (lead_s - reserve_s) * watts if lead_s > reserve_s else lead_s * watts

    def _eri_reserve_ms(self) -> int:
        """How long the pump runs on after ERI."""
        return round(self.config.cell.eri_reserve_days * DAY_MS)

    def _eri_stop_ms(self) -> int:
        """The device time the pump stops after its ERI (0 before ERI)."""
        return self.reached.eri + self._eri_reserve_ms() if self.reached.eri else 0

    def _replacement_lead_ms(self) -> int:
        """How long before the projected stop replacement is advised."""
        return round(self.config.replacement_advised_days * DAY_MS)

    def _replacement_times_ms(self) -> list[int]:
        """Fixed device times at which replacement is advised: a lead before the age limit or the ERI stop."""
        lead = self._replacement_lead_ms()
        stops = [self._age_eos] if self._age_eos else []
        if self.reached.eri:
            stops.append(self._eri_stop_ms())
        return [t - lead for t in stops]

    def _stop_levels_j(self) -> tuple[float, ...]:
        """The energy levels ``_next_stop`` must stop at: the advice (until given), ERI and empty."""
        eri, advised = self._drain_levels_j()
        return (eri, 0.0) if self.reached.replacement else (advised, eri, 0.0)

    def _replacement_stops_ms(self) -> list[int]:
        """The fixed times ``_next_stop`` must stop at for the advice (none once it is given)."""
        return [] if self.reached.replacement or not self.powered else self._replacement_times_ms()

    def _replacement_due(self, level_j: float) -> bool:
        """The projected stop is the lead time away or nearer: by energy (``level_j``), by date after ERI, by age."""
        due_by_date = any(t <= self.now_ms for t in self._replacement_times_ms())
        return due_by_date or self.battery.remaining_j <= level_j

    def _replacement_date(self, pumping: bool) -> int:
        """When replacement was advised, or is projected to be at the programmed drain; 0 after a failure."""
        if self.faults.battery_failed:
            return 0
        if self.reached.replacement:
            return self.reached.replacement
        watts = self._program_power_w(pumping)
        seconds = self.battery.seconds_until_level(self._drain_levels_j()[1], watts)
        return min([self.now_ms + math.ceil(seconds * 1000), *self._replacement_times_ms()])

    def _battery_state(self, eri_level_j: float | None = None) -> BatteryState:
        """OK, ERI or EOS: the cell's own rules (energy and age) with the ERI level of the programmed drain
        (``eri_level_j``, if the caller has it already)."""
        state = self.battery.state(self.now_ms)
        if state is BatteryState.EOS or (self.reached.eri and self.now_ms >= self._eri_stop_ms()):
            return BatteryState.EOS
        eri_level = self._eri_level_j() if eri_level_j is None else eri_level_j
        if state is BatteryState.ERI or self.battery.remaining_j <= eri_level:
            return BatteryState.ERI
        return state

    def _energy_stop(self, level_j: float, rate: int, bolus: ActiveBolus | None, end: int) -> int:
        """``end``, or the first ms before it at which the cell is down to ``level_j``."""
        now, totals, capacity_j = self.now_ms, self.totals, self.config.cell.capacity_j

        def deficit_at(t: int) -> float:
            # The same float expression _sync_battery stores and the cell compares with its levels.
            used = self._energy_used(totals.powered_ms + t - now, totals.pumped + dosing.drained(rate, bolus, now, t))
            return -(capacity_j - used)

        return dosing.first_reaching(deficit_at, -level_j, now, end) or end

    def _sync_battery(self) -> None:
        """Set the cell's energy from the integer totals, so any cut of time gives the same value."""
        used = self._energy_used(self.totals.powered_ms, self.totals.pumped)
        self.battery.remaining_j = max(0.0, self.config.cell.capacity_j - used)

    def _check_battery(self) -> None:
        eri_level, advised_level = self._drain_levels_j()
        now, state = self.now_ms, self._battery_state(eri_level)
        args = (round(self.battery.fraction * 10_000), self.battery.voltage_mv())
        if not self.reached.replacement and self._replacement_due(advised_level):
            # A plain event, not an alarm: the pump's own battery alarm is ERI; this is the date to plan by.
            days = round((self._battery_dates(self.basal_pumping)[1] - now) / DAY_MS)
            self.events.append(now, EventCode.REPLACEMENT_ADVISED, arg0=max(0, days), arg1=args[0])
            self.reached.replacement = now
        if state >= state.ERI and not self.reached.eri:
            self.alarms.raise_alarm(EventCode.BATTERY_ERI, now, *args)
            self.reached.eri = now
        if state is state.EOS:
            self._end_bolus()
            self.alarms.raise_alarm(EventCode.BATTERY_EOS, now, *args)
            self.reached.eos = now

    def _battery_dates(self, pumping: bool) -> tuple[int, int]:
        """Reached or projected ERI and EOS times at the program's average drain (0 after a failure)."""
        if self.faults.battery_failed:
            return 0, 0
        watts = self._program_power_w(pumping)
        eri = self.reached.eri or self.now_ms + math.ceil(
            self.battery.seconds_until_level(self._eri_level_j(), watts) * 1000
        )
        # The pump stops the reserve days after ERI, or when the energy runs out if that comes first.
        eos = min(eri + self._eri_reserve_ms(), self.now_ms + math.ceil(self.battery.seconds_until_empty(watts) * 1000))
        # The 7-year age limit ends service even with energy left [V docs/devices.md 2.7].
        eri, eos = min(eri, self._age_eri or eri), min(eos, self._age_eos or eos)
        return self.reached.eri or eri, self.reached.eos or eos
