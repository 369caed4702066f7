"""The stimulator's cell as the device manages it: battery alarms, stopping therapy, charging sessions, failure,
and the deep-discharge window of a rechargeable cell left flat.

A part of ``Stimulator`` (a mixin over its state); the cell's own physics (energy, fade,
crossings) live in ``stim_physics`` and ``battery``. Must not import ``stimulator.py`` nor anything
of the dashboard.
"""

from __future__ import annotations

from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import BatteryKind, BatteryState, CommandAck, EventCode

from .alarms import AlarmManager, EventLog
from .battery import DAY_S
from .stim_cells import PrimaryDrive, RechargeDrive
from .stim_physics import ScsConfig

__all__ = ["StimPower"]


class StimPower:
    """Battery alarms and charging (mixed into ``Stimulator``)."""

    config: ScsConfig
    now_ms: int
    events: EventLog
    alarms: AlarmManager
    cell: PrimaryDrive | RechargeDrive
    _therapy: bool
    _battery_stopped: bool
    _failed: bool
    _deep_discharged: bool
    _flat_ms: int
    _charging: dict[str, int] | None
    _auto_retry_ms: int
    _reached: dict[int, int]

    def _battery_args(self) -> tuple[int, int]:
        return round(self.cell.fraction(self.now_ms) * 10_000), self.cell.voltage_mv(self.now_ms)

    def _battery_event(self, code: EventCode) -> None:
        pct, mv = self._battery_args()
        self.events.append(self.now_ms, code, arg0=pct, arg1=mv)

    def _update_battery_alarms(self) -> None:
        if self._failed:
            return
        conditions = self.cell.conditions(self.now_ms, self.program_power_w())
        for code, present in conditions.items():
            if present:
                self._reached.setdefault(int(code), self.now_ms)
                self.alarms.raise_alarm(code, self.now_ms, *self._battery_args())
            else:
                if not conditions[EventCode.BATTERY_EOS]:  # keep when ERI was reached once EOS supersedes it
                    self._reached.pop(int(code), None)
                self.alarms.clear_condition(code, self.now_ms, *self._battery_args())

    def _stop_if_battery_cannot(self) -> None:
        if self._therapy and self._battery_blocks() is not None:
            self._therapy, self._battery_stopped = False, True
            self.events.append(self.now_ms, EventCode.THERAPY_OFF)

    def _failure(self) -> str:
        """What happened to a failed battery, for refusals."""
        if self._deep_discharged:
            days = self.config.rechargeable.deep_discharge_days
            return f"the battery was left flat for more than {days:g} days and is permanently damaged"
        return "the battery has failed"

    def _battery_blocks(self, programming: bool = False) -> str | None:
        """Why the battery cannot stimulate now (or, ``programming``, take a program), or None."""
        if self._failed:
            return self._failure()
        if self.cell.state(self.now_ms, self.program_power_w()) is BatteryState.EOS:
            return "the battery is at end of service"
        if not programming and self.cell.empty() and not self._charging:
            return "the battery is depleted"
        return None

    def _tail_ms(self) -> int:
        """How long a session goes on once the cell is full (the constant-voltage top-off)."""
        return round(self.config.rechargeable.charge_tail_min * 60_000)

    def _charge_stops_ms(self) -> list[int]:
        """Fixed device times at which the running session ends: its set end, or the end of its top-off."""
        charging = self._charging
        if not charging:
            return []
        stops = [charging["end_ms"]] if charging["end_ms"] else []
        if charging.get("full_ms"):  # absent from sessions saved before the top-off was modelled
            stops.append(charging["full_ms"] + self._tail_ms())
        return stops

    def _power_stops_ms(self) -> list[int]:
        """Fixed device times of the cell's management: a session's end, the end of a flat cell's window."""
        stops = self._charge_stops_ms()
        if self._flat_ms and not self._failed:
            stops.append(self._flat_ms + self._deep_discharge_window_ms())
        return stops

    def _deep_discharge_window_ms(self) -> int:
        return round(self.config.rechargeable.deep_discharge_days * DAY_S * 1000)

    def _update_deep_discharge(self) -> None:
        """Start, end or close the window of a flat rechargeable cell (SJM Protege: 30-90 days)."""
        if self._failed or self.cell.kind is not BatteryKind.RECHARGEABLE:
            return
        if not self.cell.empty():  # any charge in the cell ends the window: the cell was saved
            self._flat_ms = 0
        elif not self._flat_ms:
            self._flat_ms = self.now_ms
        elif self.now_ms >= self._flat_ms + self._deep_discharge_window_ms():
            self._damage_by_deep_discharge()

    def _damage_by_deep_discharge(self) -> None:
        """The cell stayed flat through its window: damaged for good, it takes no charge and runs nothing."""
        self._deep_discharged = True
        days = (self.now_ms - self._flat_ms) // round(DAY_S * 1000)
        # The alarms that asked for a charge would now ask for one the device refuses.
        for code in (EventCode.BATTERY_LOW, EventCode.RECHARGE_NOW):
            self.alarms.clear_condition(code, self.now_ms, *self._battery_args())
        self._fail_battery(EventCode.BATTERY_DEEP_DISCHARGE, days, self.cell.voltage_mv(self.now_ms))

    def _update_charging(self) -> None:
        c = self.config
        if self._charging:
            full = self.cell.full(self.now_ms)
            if full and not self._charging.get("full_ms"):
                self._charging["full_ms"] = self.now_ms  # the top-off starts; the session ends after it
            if any(t <= self.now_ms for t in self._charge_stops_ms()):
                self._end_charge(full)
        elif (
            c.auto_recharge
            and self.cell.kind is BatteryKind.RECHARGEABLE
            and not self._failed
            and self.cell.fraction(self.now_ms) <= c.rechargeable.low_fraction
            and self.now_ms >= self._auto_retry_ms
        ):
            self._start_charge(c.auto_recharge_coupling_pct, round(c.auto_recharge_max_h * 3_600_000))

    def _start_charge(self, coupling_pct: int, duration_ms: int) -> None:
        end_ms = self.now_ms + duration_ms if duration_ms > 0 else 0
        self._charging = {"coupling": coupling_pct, "end_ms": end_ms, "full_ms": 0}
        self._battery_event(EventCode.CHARGING_STARTED)

    def _end_charge(self, full: bool) -> None:
        """End the session; CHARGING_COMPLETE carries the state of charge reached (full or not)."""
        self._charging = None
        self._battery_event(EventCode.CHARGING_COMPLETE)
        if not full:  # the simulated patient tries again later, not at once
            self._auto_retry_ms = self.now_ms + round(self.config.auto_recharge_retry_h * 3_600_000)
        if full and self._battery_stopped and self.config.resume_after_charge and self._battery_blocks() is None:
            self._therapy, self._battery_stopped = True, False
            self.events.append(self.now_ms, EventCode.THERAPY_ON)

    def _set_charging(self, on: bool) -> CommandAck:
        """The charger placed (at the configured coupling, until full) or taken away."""
        if self.cell.kind is not BatteryKind.RECHARGEABLE:
            raise DeviceRejected(ErrorCode.UNSUPPORTED, "a primary-cell stimulator has nothing to charge", "on", 1)
        if on == (self._charging is not None):
            return CommandAck(0)
        if on and self._failed:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, f"{self._failure()}: it cannot be charged", "on", 1)
        if on:
            self._start_charge(self.config.auto_recharge_coupling_pct, 0)
        else:
            self._end_charge(self.cell.full(self.now_ms))
        seq = self.events.last_seq  # CHARGING_STARTED or CHARGING_COMPLETE
        self._evaluate()
        return CommandAck(seq)

    def _fail_battery(self, code: EventCode = EventCode.BATTERY_FAILURE, *args: int) -> None:
        """The cell is gone for good: raise ``code`` (with ``args``, else battery % and mV), stop everything."""
        if self._failed:
            return
        self._failed = True
        self.alarms.raise_alarm(code, self.now_ms, *(args or self._battery_args()))
        if self._charging:
            self._end_charge(False)
        if self._therapy:
            self._therapy = False
            self.events.append(self.now_ms, EventCode.THERAPY_OFF)

    def _charge_fault(self, params: dict[str, Any]) -> None:
        """Start (or retune) a charging session now: coupling_pct 1-100, optional hours (or duration, ms)."""
        if self.cell.kind is not BatteryKind.RECHARGEABLE:
            raise ValueError("a primary-cell stimulator cannot be charged")
        if self._failed:
            raise ValueError(f"{self._failure()}: it cannot be charged")
        coupling = params.get("coupling_pct", self.config.auto_recharge_coupling_pct)
        if not isinstance(coupling, int) or not 1 <= coupling <= 100:
            raise ValueError(f"'coupling_pct' must be an integer 1-100, got {coupling!r}")
        duration_ms = round(float(params["hours"]) * 3_600_000) if "hours" in params else int(params.get("duration", 0))
        if duration_ms < 0:
            raise ValueError("a charging session cannot last a negative time")
        if self._charging:  # retune the running session
            self._charging.update(coupling=coupling, end_ms=self.now_ms + duration_ms if duration_ms else 0)
        else:
            self._start_charge(coupling, duration_ms)
