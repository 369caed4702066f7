"""The intrathecal drug pump model: reservoir, drugs, dosing, boluses, refills, alarms and battery.

A pure ``DeviceModel`` (see ``model.py``): no I/O and no clock reads. Time moves only through
``advance_to``, which integrates in closed form between breakpoints (flex step edges, bolus ends,
the low-reservoir and empty crossings, battery ERI/EOS by energy and by age) and logs each event at
its exact device millisecond. Numbers come from docs/devices.md part 2; each default names its source and
confidence tag, and every one is a ``PumpConfig`` field.

Two reservoir volumes are kept apart, as in a real pump: the device's *estimate* drains at the
programmed rate and drives the alarms and what the programmer sees; the *true* volume drains at the
programmed rate times (1 + flow error), an error drawn once per fill from the seed. Their difference
is what the residual comparison at the next refill reveals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    Actor,
    BatteryState,
    Bolus,
    BolusKind,
    BolusReply,
    Capability,
    CommandAck,
    DeviceKind,
    DosingMode,
    DosingSet,
    Drug,
    DrugConcentration,
    DrugLevel,
    EventCode,
    Message,
    MotorState,
    Priority,
    PumpStatus,
    Refill,
    RefillReply,
    TherapySet,
    ToneKind,
)

from . import pump_doses as doses
from . import pump_dosing as dosing
from . import pump_refill as refill
from .alarm_tones import Sounder, TonePattern
from .alarms import AlarmManager, EventLog
from .battery import PrimaryBattery
from .model import require, unsupported
from .pump_config import DrugLimit, PumpConfig
from .pump_dosing import DAY_MS, MINUTE_MS, UNITS_PER_UL, ActiveBolus, Program, Projections

__all__ = ["DrugLimit", "Pump", "PumpConfig"]
_U32 = 0xFFFF_FFFF


@dataclass
class _Reached:
    """Device times at which each one-way condition was reached (0 = not reached)."""

    low: int = 0
    empty: int = 0
    eri: int = 0
    eos: int = 0


@dataclass
class _Faults:
    """Injected device faults."""

    stalled: bool = False
    occluded: bool = False
    battery_failed: bool = False
    memory_error: bool = False  # critical: delivery stops until the fault is cleared
    memory_error_minor: bool = False  # non-critical: delivery goes on


@dataclass
class _Totals:
    """Integer counters everything physical follows from (units of ``UNITS_PER_UL``)."""

    fill_ul: int  # reservoir right after the last refill
    since_refill: int = 0  # units pumped since the last refill
    pumped: int = 0  # units pumped since implant: motor energy
    powered_ms: int = 0  # ms the electronics ran: quiescent energy
    wakeups: int = 0  # receiver wake-ups for frames outside a session (R10): wake energy
    refills: int = 0
    delivered_ul: float = 0.0  # drug that reached the patient (not under occlusion, not from an empty reservoir)
    held_units: int = 0  # programmed units since the refill that an occluded catheter kept in the reservoir
    patient_boluses: list[int] = field(default_factory=list)  # start times within the last 24 h
    stable_until_ms: int = 0  # the last fill's drug-stability limit (0 = none)
    drugs_held: list[int] = field(default_factory=list)  # every drug the pump has held: first-fill limits
    boluses_given: list[list[int]] = field(default_factory=list)  # [start_ms, drug, ng] of the last 24 h
    ziconotide_raised_ms: int = 0  # last rise of the ziconotide daily dose (0 = never)


class Pump:
    """An intrathecal drug pump meeting the ``DeviceModel`` contract.

    ``TherapySet`` starts and stops the pump; ``DosingSet`` programs it (mode STOPPED also stops it).
    A bolus runs on top of the basal rate and is cut short by anything that stops delivery; its
    BOLUS_COMPLETE then carries the volume actually pumped. A clinician bolus may also be given
    from a stopped pump (the "single bolus" mode of docs/devices.md 2.4): the motor runs for the bolus
    alone, then the pump is stopped again.
    """

    FAULTS = (
        "motor_stall",
        "clear_motor",
        "occlusion",
        "clear_occlusion",
        "battery_failure",
        "reduced_battery_performance",
        "memory_error",
        "clear_memory_error",
    )

    kind = DeviceKind.PUMP
    capabilities = Capability.DRUG_DELIVERY | Capability.PATIENT_BOLUS | Capability.EVENT_PUSH | Capability.CLOCK_SET

    def __init__(self, config: PumpConfig, start_ms: int, seed: int, events: EventLog | None = None) -> None:
        self._setup(config, start_ms, seed, events)
        self._check()

    def _setup(self, config: PumpConfig, start_ms: int, seed: int, events: EventLog | None) -> None:
        self.config = config
        self.model_name, self.serial, self.firmware = config.model_name, config.serial, config.firmware
        self.start_ms, self.seed, self.now_ms = start_ms, seed, start_ms
        self.events = events if events is not None else EventLog()
        self.alarms = AlarmManager(self.events, _sounder(config))
        self.battery = PrimaryBattery(config.cell, start_ms)
        schedule = dosing.Schedule(DosingMode.CONTINUOUS, config.initial_rate_ul_per_day)
        self.program = Program(schedule, dosing.NO_PATIENT_BOLUS, config.alarm_volume_ul, config.initial_drugs)
        self.totals = _Totals(config.initial_fill_ul)
        self._record_fill(config.initial_drugs)
        self.faults = _Faults()
        self.reached = _Reached()
        self.bolus: ActiveBolus | None = None
        self.flow_error = self._draw_flow_error()
        self._levels: tuple[tuple[DrugConcentration, ...], int, tuple[DrugLevel, ...]] | None = None
        # Age limits are fixed at implant; computed once because the advance loop asks every step.
        self._age_eri, self._age_eos = self.battery.age_limit_ms(True), self.battery.age_limit_ms(False)

    # --- derived quantities ----------------------------------------------------------------------
    @property
    def reservoir_units(self) -> int:
        """The device's estimate of the reservoir, units (may dip below 0 by under a ms of flow)."""
        return self.totals.fill_ul * UNITS_PER_UL - self.totals.since_refill

    @property
    def reservoir_ul(self) -> int:
        """The device's estimate of the reservoir, µL (what the programmer sees)."""
        return max(0, self.reservoir_units // UNITS_PER_UL)

    @property
    def true_reservoir_ul(self) -> float:
        """The drug really left, µL: the programmed drain scaled by this fill's flow error.

        Drug an occluded catheter did not take stays in the reservoir, unknown to the device's estimate.
        """
        drained = self.totals.since_refill - self.totals.held_units
        return max(0.0, self.totals.fill_ul - (1.0 + self.flow_error) * drained / UNITS_PER_UL)

    @property
    def powered(self) -> bool:
        """The electronics run (not shut down at EOS, no failed battery)."""
        return not (self.reached.eos or self.faults.battery_failed)

    @property
    def stopped(self) -> bool:
        """Basal delivery is off: therapy stopped or dosing mode STOPPED (a single bolus may still run)."""
        return not self.program.therapy_on or self.program.schedule.mode is DosingMode.STOPPED

    def delivery_blocker(self, ignore_reservoir: bool = False, bolus_only: bool = False) -> str | None:
        """Why the pump cannot pump now (``bolus_only``: a bolus alone, as from a stopped pump), or None."""
        if self.stopped and not bolus_only:
            return "the pump is stopped"
        if not self.powered:
            return "the battery is at end of service" if self.reached.eos else "the battery has failed"
        if self.faults.stalled:
            return "the motor is stalled"
        if self.faults.memory_error:
            return "a critical memory error stopped the pump"
        if not ignore_reservoir and self.reservoir_units <= 0:
            return "the reservoir is empty"
        return None

    @property
    def pumping(self) -> bool:
        """The motor is running (drug leaves the reservoir, reaching the patient unless occluded)."""
        return self.delivery_blocker(bolus_only=self.bolus is not None) is None

    @property
    def basal_pumping(self) -> bool:
        """The programmed basal rate is being delivered (the pump runs and is not stopped)."""
        return not self.stopped and self.pumping

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

    def _draw_flow_error(self) -> float:
        cfg = self.config
        return dosing.draw_flow_error(
            self.seed, self.totals.refills, cfg.flow_error_mean, cfg.flow_error_sd, cfg.flow_accuracy
        )

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

    # --- time ------------------------------------------------------------------------------------
    def advance_to(self, t_ms: int) -> None:
        """Integrate up to device time ``t_ms``, stopping at every breakpoint to log its events."""
        while self.now_ms < t_ms:
            pumping = self.pumping
            rate = self.program.schedule.rate_at(self.now_ms) if pumping and not self.stopped else 0
            bolus = self.bolus if pumping else None
            end = self._next_stop(t_ms, rate, bolus)
            self._integrate(end, rate, bolus)
            self._check()

    def _next_stop(self, t_ms: int, rate: int, bolus: ActiveBolus | None) -> int:
        """The next breakpoint after ``now_ms``, at most ``t_ms``; rates are constant until it."""
        now = self.now_ms
        stops = [t_ms]
        if rate or bolus:
            stops += [e for e in (self.program.schedule.next_edge(now), bolus and bolus.end_ms) if e]
        stops += [age for age in (self._age_eri, self._age_eos) if age and age > now]
        end = min(stops)
        low_need = self.reservoir_units - self.program.alarm_volume_ul * UNITS_PER_UL
        for need in (low_need, self.reservoir_units):
            if need > 0 and (hit := dosing.reach_in_segment(rate, bolus, now, end, need)) is not None:
                end = hit
        if self.powered:
            if self.reached.eri:  # the stop date fixed at ERI
                end = min(end, max(now + 1, self._eri_stop_ms()))
            for level_j in (self._eri_level_j(), 0.0):
                end = self._energy_stop(level_j, rate, bolus, end)
        return end

    def _program_power_w(self, pumping: bool) -> float:
        """The programmed average drain: electronics plus the motor at the schedule's daily volume."""
        cfg = self.config
        daily = self.program.schedule.daily_units() if pumping else 0
        return cfg.quiescent_power_w + cfg.motor_j_per_ul * daily / UNITS_PER_UL / (DAY_MS / 1000)

    def _eri_level_j(self) -> float:
        """Energy left at ERI: the reserve days at the programmed drain (at least the nominal one), so
        that the pump runs the ERI-to-stop interval at any flow rate."""
        cell = self.config.cell
        watts = max(cell.nominal_power_w, self._program_power_w(self.basal_pumping))
        return watts * cell.eri_reserve_days * DAY_MS / 1000

    def _eri_reserve_ms(self) -> int:
        """How long the pump runs on after ERI."""
        return round(self.config.cell.eri_reserve_days * DAY_MS)

    def _eri_stop_ms(self) -> int:
        """The device time the pump stops after its ERI (0 before ERI)."""
        return self.reached.eri + self._eri_reserve_ms() if self.reached.eri else 0

    def _battery_state(self) -> BatteryState:
        """OK, ERI or EOS: the cell's own rules (energy and age) with the ERI level of the programmed drain."""
        state = self.battery.state(self.now_ms)
        if state is BatteryState.EOS or (self.reached.eri and self.now_ms >= self._eri_stop_ms()):
            return BatteryState.EOS
        if state is BatteryState.ERI or self.battery.remaining_j <= self._eri_level_j():
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

    def _integrate(self, end: int, rate: int, bolus: ActiveBolus | None) -> None:
        """Move to ``end`` at constant rates; the battery follows from the integer totals."""
        totals = self.totals
        units = dosing.drained(rate, bolus, self.now_ms, end)
        true_before = self.true_reservoir_ul
        totals.since_refill += units
        totals.pumped += units
        if self.powered:
            totals.powered_ms += end - self.now_ms
        if self.faults.occluded:  # the motor turns, but the drug has nowhere to go
            totals.held_units += units
        else:
            totals.delivered_ul += true_before - self.true_reservoir_ul
        self.now_ms = end
        self._sync_battery()

    def _sync_battery(self) -> None:
        """Set the cell's energy from the integer totals, so any cut of time gives the same value."""
        used = self._energy_used(self.totals.powered_ms, self.totals.pumped)
        self.battery.remaining_j = max(0.0, self.config.cell.capacity_j - used)

    def _check(self) -> None:
        """Log what became true at ``now_ms``: bolus end, low/empty reservoir, ERI, EOS."""
        now = self.now_ms
        if self.bolus is not None and now >= self.bolus.end_ms:
            self._end_bolus()
        reservoir, alarm_ul = self.reservoir_units, self.program.alarm_volume_ul
        if reservoir <= alarm_ul * UNITS_PER_UL and not self.alarms.is_active(EventCode.LOW_RESERVOIR):
            self.alarms.raise_alarm(EventCode.LOW_RESERVOIR, now, self.reservoir_ul, alarm_ul)
            self.reached.low = now
        if reservoir <= 0 and not self.alarms.is_active(EventCode.EMPTY_RESERVOIR):
            self._end_bolus()
            self.alarms.raise_alarm(EventCode.EMPTY_RESERVOIR, now, 0, alarm_ul)
            self.reached.empty = now
        if not self.reached.eos and not self.faults.battery_failed:
            self._check_battery()

    def _check_battery(self) -> None:
        now, state = self.now_ms, self._battery_state()
        args = (round(self.battery.fraction * 10_000), self.battery.voltage_mv())
        if state >= state.ERI and not self.reached.eri:
            self.alarms.raise_alarm(EventCode.BATTERY_ERI, now, *args)
            self.reached.eri = now
        if state is state.EOS:
            self._end_bolus()
            self.alarms.raise_alarm(EventCode.BATTERY_EOS, now, *args)
            self.reached.eos = now

    # --- boluses ---------------------------------------------------------------------------------
    def _start_bolus(
        self, kind: BolusKind, volume_ul: int, duration_min: int, drugs: tuple[DrugConcentration, ...] | None = None
    ) -> BolusReply:
        """Start a bolus and record the drug it carries (``drugs``: the contents it pushes, if not the reservoir's)."""
        self.bolus = ActiveBolus(kind, volume_ul, self.now_ms, self.now_ms + duration_min * MINUTE_MS)
        given = doses.recent(self.totals.boluses_given, self.now_ms)
        carried = self.program.drugs if drugs is None else drugs
        self.totals.boluses_given = given + doses.given_rows(self.now_ms, volume_ul, carried)
        seq = self.events.append(self.now_ms, EventCode.BOLUS_STARTED, arg0=volume_ul, arg1=kind).seq
        return BolusReply(seq, volume_ul, self.bolus.end_ms)

    def _end_bolus(self) -> None:
        """Finish (or cut short) the running bolus; BOLUS_COMPLETE carries the µL actually pumped."""
        if self.bolus is None:
            return
        pumped = self.bolus.drained_by(self.now_ms) // UNITS_PER_UL
        self.events.append(self.now_ms, EventCode.BOLUS_COMPLETE, arg0=pumped, arg1=self.bolus.kind)
        self.bolus = None

    def _require_bolus_possible(
        self, volume_ul: int, reservoir_ul: int, ignore_reservoir: bool = False, from_stopped: bool = False
    ) -> None:
        blocker = self.delivery_blocker(ignore_reservoir, bolus_only=from_stopped)
        if blocker is None and self.bolus is not None:
            blocker = "a bolus is already running"
        if blocker is not None:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, f"no bolus: {blocker}")
        if volume_ul > reservoir_ul:
            raise DeviceRejected(
                ErrorCode.STATE_CONFLICT, "bolus larger than the reservoir holds", "volume_ul", volume_ul, reservoir_ul
            )

    def _basal_ul_per_day(self) -> int:
        """The programmed basal volume of a whole day (0 while the pump is stopped)."""
        return 0 if self.stopped else self.program.schedule.daily_ul()

    def _require_within_caps(self, volume_ul: int) -> None:
        """Refuse a bolus that would take a drug past its 24-hour cap with the basal dose and the
        boluses of the last 24 h (every kind counts)."""
        given = doses.recent(self.totals.boluses_given, self.now_ms)
        doses.check_bolus_cap(volume_ul, self.program.drugs, self._basal_ul_per_day(), given, self.config)

    def _require_patient_allowance(self) -> None:
        """Enforce lockout and boluses per 24 h; a denial is logged and refused."""
        now, starts = self.now_ms, self.totals.patient_boluses
        reason, wait = dosing.patient_bolus_wait(starts, now, self.program.patient_bolus)
        if not reason:
            try:
                self._require_within_caps(self.program.patient_bolus.dose_ul)
            except DeviceRejected as over:
                self.events.append(now, EventCode.PATIENT_BOLUS_DENIED, arg0=3, arg1=0)
                raise DeviceRejected(ErrorCode.STATE_CONFLICT, f"patient bolus denied: {over.reason}") from None
        if reason:
            minutes = dosing.ceil_div(wait, MINUTE_MS)
            self.events.append(now, EventCode.PATIENT_BOLUS_DENIED, arg0=reason, arg1=minutes)
            what = "the daily maximum is reached" if reason == 2 else "lockout"
            message = f"patient bolus denied: {what}, allowed in {minutes} min"
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, message, retry_after_ms=wait)
        self.totals.patient_boluses = [t for t in starts if t + DAY_MS > now] + [now]

    # --- commands --------------------------------------------------------------------------------
    def apply(self, message: Message, role: Actor = Actor.CLINICIAN) -> Message:
        """Apply a pump command, all or nothing (see ``model.DeviceModel.apply``).

        A patient's controller may only ask for a patient bolus (SPEC 3.8): a pump's infusion is
        started and stopped, and its other boluses given, by the clinician.
        """
        handlers = {
            DosingSet: self._apply_dosing,
            Bolus: self._apply_bolus,
            Refill: self._apply_refill,
            TherapySet: self._apply_therapy,
        }
        handler = handlers.get(type(message))
        if handler is None:
            raise unsupported(message, self.kind)
        if role is Actor.PATIENT:
            if not isinstance(message, Bolus):
                raise DeviceRejected(
                    ErrorCode.NOT_PERMITTED, f"the patient's controller may not send {type(message).__name__} to a pump"
                )
            if message.kind != BolusKind.PATIENT:
                kind = BolusKind(message.kind).name.lower()
                why = f"the patient's controller may give only a patient bolus, not a {kind} bolus"
                raise DeviceRejected(ErrorCode.NOT_PERMITTED, why, "kind", message.kind, BolusKind.PATIENT)
        return handler(message)

    def _apply_dosing(self, m: DosingSet) -> CommandAck:
        cfg = self.config
        schedule = dosing.validate_schedule(m, cfg)
        ptm = dosing.validate_patient_bolus(m.patient_bolus, cfg)
        require("alarm_volume_ul", m.alarm_volume_ul, cfg.min_alarm_ul, min(cfg.max_alarm_ul, cfg.capacity_ul), "µL")
        dosing.check_daily_dose(schedule, ptm, self.program.drugs, cfg)
        raised = self._check_ziconotide(self.program.drugs, schedule.daily_ul(), refill=False)
        if raised:
            self.totals.ziconotide_raised_ms = self.now_ms
        if schedule.mode is DosingMode.STOPPED:
            self._end_bolus()
        self.program.schedule, self.program.patient_bolus = schedule, ptm
        self.program.alarm_volume_ul = m.alarm_volume_ul
        rate = schedule.rate_at(self.now_ms)
        seq = self.events.append(self.now_ms, EventCode.DOSING_CHANGED, arg0=rate, arg1=schedule.mode).seq
        self._clear_reservoir_alarms()
        self._check()
        return CommandAck(seq)

    def _apply_bolus(self, m: Bolus) -> BolusReply:
        if m.kind == BolusKind.PATIENT:
            if not self.program.patient_bolus.enabled:
                raise DeviceRejected(ErrorCode.STATE_CONFLICT, "patient bolus is not enabled", "kind", m.kind)
            volume, duration = dosing.patient_bolus_size(m.volume_ul, m.duration_min, self.program.patient_bolus)
        else:
            dosing.validate_bolus_size(m.volume_ul, m.duration_min, self.config, priming=m.kind == BolusKind.PRIMING)
            volume, duration = m.volume_ul, m.duration_min
        # Only the clinician gives a single bolus from a stopped pump; the patient's needs therapy running.
        self._require_bolus_possible(volume, self.reservoir_ul, from_stopped=m.kind == BolusKind.CLINICIAN)
        if m.kind != BolusKind.PATIENT:  # the patient's is judged with its allowance, and a denial logged
            self._require_within_caps(volume)
        if m.kind == BolusKind.PATIENT:
            self._require_patient_allowance()
        return self._start_bolus(BolusKind(m.kind), volume, duration)

    def _apply_refill(self, m: Refill) -> RefillReply:
        drained = self.totals.since_refill
        drugs, expected = self._validate_refill(m)
        # The last check, so nothing has changed yet if it refuses.
        raised = self._check_ziconotide(drugs, self.program.schedule.daily_ul(), refill=True)
        old_drugs = self.program.drugs
        discrepancy = m.withdrawn_ul - expected
        flagged = refill.residual_flag(discrepancy, drained, self.config) is not None
        self.totals.refills += 1
        self.totals.fill_ul, self.totals.since_refill, self.totals.held_units = m.added_ul, 0, 0
        self.program.drugs = drugs
        if raised:
            self.totals.ziconotide_raised_ms = self.now_ms
        self._record_fill(drugs)
        self.flow_error = self._draw_flow_error()  # a new fill, a new error
        seq = self.events.append(self.now_ms, EventCode.REFILL, arg0=m.added_ul, arg1=discrepancy).seq
        if flagged:
            self.events.append(self.now_ms, EventCode.REFILL_DISCREPANCY, arg0=m.added_ul, arg1=discrepancy)
        self._clear_reservoir_alarms()
        if m.bridge_bolus:
            cfg = self.config
            self._start_bolus(BolusKind.BRIDGE, cfg.bridge_volume_ul, cfg.bridge_duration_min, old_drugs)
        self._check()
        return RefillReply(seq, expected, discrepancy, m.added_ul, self.projections().next_refill_ms)

    def _check_ziconotide(self, drugs: tuple[DrugConcentration, ...], daily_ul: int, refill: bool) -> bool:
        """Ziconotide's titration rule for new contents (``refill``: the refusal names the concentration)
        or a new daily volume (the refusal names the rate); True if the daily dose rises."""
        index, conc = next(((i, d.conc_ng_per_ml) for i, d in enumerate(drugs) if d.drug is Drug.ZICONOTIDE), (0, 0))
        old_conc = next((d.conc_ng_per_ml for d in self.program.drugs if d.drug is Drug.ZICONOTIDE), 0)
        old = doses.daily_ng(old_conc, self.program.schedule.daily_ul())
        new = doses.daily_ng(conc, daily_ul)
        if refill:  # the limit is a concentration
            field, value, limit_of = f"drugs[{index}].conc_ng_per_ml", conc, lambda ng: ng * 1000 // max(daily_ul, 1)
        else:  # the limit is a rate
            field, value, limit_of = "rate_ul_per_day", daily_ul, lambda ng: ng * 1000 // max(conc, 1)
        last = self.totals.ziconotide_raised_ms
        return doses.check_ziconotide_change(old, new, last, self.now_ms, field, value, limit_of, self.config)

    def _record_fill(self, drugs: tuple[DrugConcentration, ...]) -> None:
        """Date the new contents' stability limit, then remember them as held (docs/devices.md 2.6)."""
        totals = self.totals
        held = {Drug(d) for d in totals.drugs_held}
        totals.stable_until_ms = refill.stable_until_ms(self.now_ms, drugs, held, self.config)
        totals.drugs_held = sorted(held | {d.drug for d in drugs})

    def _validate_refill(self, m: Refill) -> tuple[tuple[DrugConcentration, ...], int]:
        """Every check of a refill; returns the new contents and the residual the device expected."""
        cfg = self.config
        if self.bolus is not None:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, "refill during a bolus: wait for it to end")
        if not m.concentration_confirmed:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, "confirm the new concentrations", "concentration_confirmed")
        require("withdrawn_ul", m.withdrawn_ul, 0, cfg.capacity_ul, "µL")
        require("added_ul", m.added_ul, 0, cfg.capacity_ul, "µL")
        drugs = dosing.validate_drugs(m.drugs, self.program.worst_daily_ul(), cfg)
        expected = self.reservoir_ul
        discrepancy = m.withdrawn_ul - expected
        reason = refill.residual_flag(discrepancy, self.totals.since_refill, cfg)
        if reason is not None and not m.discrepancy_accepted:
            allowed = min(cfg.refill_discrepancy_ul, refill.flow_band_ul(self.totals.since_refill, cfg))
            bound = expected + (allowed if discrepancy > 0 else -allowed)
            reason += ": investigate, then accept it"
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, reason, "withdrawn_ul", m.withdrawn_ul, bound)
        if m.bridge_bolus:
            self._require_bolus_possible(cfg.bridge_volume_ul, m.added_ul, ignore_reservoir=True)
            self._require_within_caps(cfg.bridge_volume_ul)  # it pushes out the old contents
        return drugs, expected

    def _clear_reservoir_alarms(self) -> None:
        """Clear LOW/EMPTY once the reservoir is above them again (a refill, a lower alarm volume)."""
        now, reservoir, alarm_ul = self.now_ms, self.reservoir_units, self.program.alarm_volume_ul
        if reservoir > alarm_ul * UNITS_PER_UL and self.alarms.is_active(EventCode.LOW_RESERVOIR):
            self.alarms.clear_condition(EventCode.LOW_RESERVOIR, now, self.reservoir_ul, alarm_ul)
            self.reached.low = 0
        if reservoir > 0 and self.alarms.is_active(EventCode.EMPTY_RESERVOIR):
            self.alarms.clear_condition(EventCode.EMPTY_RESERVOIR, now, self.reservoir_ul, alarm_ul)
            if self.alarms.is_active(EventCode.EMPTY_RESERVOIR):
                # EMPTY latches until acknowledged; the refill is the clinician's answer to it.
                self.alarms.acknowledge(EventCode.EMPTY_RESERVOIR, now)
            self.reached.empty = 0

    def _apply_therapy(self, m: TherapySet) -> CommandAck:
        if bool(m.on) == self.program.therapy_on:
            if not m.on and self.bolus is not None:  # stop, sent to a stopped pump: ends its single bolus
                self._end_bolus()
                return CommandAck(self.events.last_seq)
            return CommandAck(0)
        if m.on and not self.powered:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, "cannot start: the battery is at end of service or failed")
        if not m.on:
            self._end_bolus()
        self.program.therapy_on = bool(m.on)
        code = EventCode.PUMP_STARTED if m.on else EventCode.PUMP_STOPPED
        return CommandAck(self.events.append(self.now_ms, code).seq)

    # --- faults ----------------------------------------------------------------------------------
    def inject_fault(self, fault: str, params: dict[str, Any]) -> None:
        """Start or end a device fault (``FAULTS``); a clear of a fault that is not present does nothing.

        Only ``memory_error`` takes a parameter: ``critical`` (default true). A critical memory error
        raises MEMORY_ERROR (HIGH) and stops delivery; a non-critical one raises MEMORY_ERROR_MINOR
        (MEDIUM) and delivery goes on. ``clear_memory_error`` ends both (the device was reset).
        """
        if fault == "memory_error":
            self._memory_error(_flag(params, "critical", True))
            return
        handlers = {
            "motor_stall": self._stall,
            "clear_motor": self._clear_stall,
            "occlusion": self._occlude,
            "clear_occlusion": self._clear_occlusion,
            "battery_failure": self._fail_battery,
            "reduced_battery_performance": self._reduce_battery_performance,
            "clear_memory_error": self._clear_memory_error,
        }
        if fault not in handlers:
            raise ValueError(f"unknown pump fault {fault!r}; valid: {', '.join(self.FAULTS)}")
        if params:
            raise ValueError(f"pump fault {fault!r} takes no parameters, got {', '.join(sorted(params))}")
        handlers[fault]()

    def _memory_error(self, critical: bool) -> None:
        if critical:
            self._end_bolus()
            self.faults.memory_error = True
            self.alarms.raise_alarm(EventCode.MEMORY_ERROR, self.now_ms)
        else:
            self.faults.memory_error_minor = True
            self.alarms.raise_alarm(EventCode.MEMORY_ERROR_MINOR, self.now_ms)

    def _clear_memory_error(self) -> None:
        self.faults.memory_error = self.faults.memory_error_minor = False
        self.alarms.clear_condition(EventCode.MEMORY_ERROR, self.now_ms)
        self.alarms.clear_condition(EventCode.MEMORY_ERROR_MINOR, self.now_ms)

    def _stall(self) -> None:
        self._end_bolus()
        self.faults.stalled = True
        self.alarms.raise_alarm(EventCode.MOTOR_STALL, self.now_ms)

    def _clear_stall(self) -> None:
        if not self.faults.stalled:
            return
        self.faults.stalled = False
        self.events.append(self.now_ms, EventCode.MOTOR_STALL_RECOVERY)
        self.alarms.clear_condition(EventCode.MOTOR_STALL, self.now_ms)

    def _occlude(self) -> None:
        # A blocked catheter is not sensed by the pump: the clinician infers it from a residual larger
        # than expected [V Medtronic UK risks page; residual comparison, South Shore]. No alarm, and
        # status reads as normal; the refill check says so.
        self.faults.occluded = True

    def _clear_occlusion(self) -> None:
        self.faults.occluded = False

    def _fail_battery(self) -> None:
        self._end_bolus()
        self.faults.battery_failed = True
        pct = round(self.battery.fraction * 10_000)
        self.alarms.raise_alarm(EventCode.BATTERY_FAILURE, self.now_ms, pct, self.battery.voltage_mv())

    def _reduce_battery_performance(self) -> None:
        """The battery can no longer drive the programmed flow: the rate falls to the pump's minimum
        (a continuous program at ``min_rate_ul_per_day``), as the SynchroMed battery advisory describes."""
        self._end_bolus()
        rate = self.config.min_rate_ul_per_day
        self.program.schedule = dosing.Schedule(DosingMode.CONTINUOUS, rate)
        self.events.append(self.now_ms, EventCode.DOSING_CHANGED, arg0=rate, arg1=DosingMode.CONTINUOUS)
        pct = round(self.battery.fraction * 10_000)
        self.alarms.raise_alarm(EventCode.BATTERY_REDUCED_PERFORMANCE, self.now_ms, pct, self.battery.voltage_mv())

    # --- telemetry -------------------------------------------------------------------------------
    def projections(self) -> Projections:
        """Alarm, empty and refill dates if the program runs on unchanged (docs/devices.md 2.6); 0 = not applicable."""
        return self._projections(self.basal_pumping)

    def _projections(self, pumping: bool) -> Projections:
        reached, now = self.reached, self.now_ms
        if not pumping:
            return Projections(reached.low, reached.empty, 0, 0, now if reached.low else 0)
        dates = dosing.project(
            self.program, self.bolus, now, self.totals.fill_ul, self.totals.since_refill, self.config
        )
        if reached.low:  # once the low alarm has sounded, it is refill time
            return Projections(reached.low, dates.empty_ms, dates.empty_earliest_ms, dates.empty_latest_ms, now)
        stable = self.totals.stable_until_ms
        if stable and stable < dates.next_refill_ms:  # the drug expires before the threshold is reached
            return dates._replace(next_refill_ms=max(now, stable))
        return dates

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

    def status(self) -> PumpStatus:
        """The telemetry snapshot at ``now_ms``."""
        program, now, faults, battery = self.program, self.now_ms, self.faults, self.battery
        pumping = self.pumping  # asked once: it walks the delivery conditions
        basal = pumping and not self.stopped
        projected = self._projections(basal)
        rate = program.schedule.rate_at(now) if program.therapy_on else 0
        eri_ms, eos_ms = self._battery_dates(basal)
        motor = MotorState.STALLED if faults.stalled else MotorState.OK  # an occlusion is not sensed
        tones = self.alarms.tone_state(now)
        return PumpStatus(
            time_ms=now,
            mode=program.schedule.mode if program.therapy_on else DosingMode.STOPPED,
            infusing=pumping,
            reservoir_ul=self.reservoir_ul,
            capacity_ul=self.config.capacity_ul,
            alarm_volume_ul=program.alarm_volume_ul,
            rate_ul_per_day=rate,
            drugs=self._drug_levels(program.drugs, rate),
            patient_bolus=program.patient_bolus,
            patient_boluses_today=min(255, sum(t + DAY_MS > now for t in self.totals.patient_boluses)),
            bolus_active=self.bolus is not None,
            battery_state=BatteryState.FAILED if faults.battery_failed else self._battery_state(),
            battery_pct_x100=round(battery.fraction * 10_000),
            battery_mv=battery.voltage_mv(),
            eri_ms=eri_ms,
            eos_ms=eos_ms,
            motor_state=motor,
            low_alarm_ms=projected.low_alarm_ms,
            empty_ms=projected.empty_ms,
            empty_earliest_ms=projected.empty_earliest_ms,
            empty_latest_ms=projected.empty_latest_ms,
            next_refill_ms=projected.next_refill_ms,
            alarms=self.alarms.active(),
            last_event_seq=self.events.last_seq,
            tone=tones.tone,
            tone_code=tones.code,
            next_tone=tones.next_tone,
            next_tone_ms=tones.next_ms,
        )

    def _drug_levels(self, drugs: tuple[DrugConcentration, ...], rate: int) -> tuple[DrugLevel, ...]:
        """Each drug with its daily dose at ``rate``; kept while the contents and the rate stay the same."""
        kept = self._levels
        if kept is None or kept[0] is not drugs or kept[1] != rate:  # holding ``drugs`` keeps its identity unique
            levels = tuple(
                DrugLevel(d.drug, d.conc_ng_per_ml, min(_U32, d.conc_ng_per_ml * rate // 1000)) for d in drugs
            )
            kept = self._levels = (drugs, rate, levels)
        return kept[2]

    # --- persistence -----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, JSON-ready."""
        return {
            "config": self.config.to_dict(),
            "start_ms": self.start_ms,
            "seed": self.seed,
            "now_ms": self.now_ms,
            "program": asdict(self.program),
            "totals": asdict(self.totals),
            "faults": asdict(self.faults),
            "reached": asdict(self.reached),
            "bolus": asdict(self.bolus) if self.bolus else None,
            "events": self.events.to_state(),
            "alarms": self.alarms.to_state(),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> Pump:
        """Rebuild from ``to_state`` output; the pump resumes exactly where it was."""
        pump = cls.__new__(cls)
        config = PumpConfig.from_dict(data["config"])
        pump._setup(config, data["start_ms"], data["seed"], EventLog.from_state(data["events"]))
        pump.alarms.load_state(data["alarms"])
        pump.now_ms = data["now_ms"]
        pump.program = Program.from_dict(data["program"])
        pump.totals = _Totals(**data["totals"])
        pump.faults = _Faults(**data["faults"])
        pump.reached = _Reached(**data["reached"])
        bolus = data["bolus"]
        pump.bolus = ActiveBolus(**{**bolus, "kind": BolusKind(bolus["kind"])}) if bolus else None
        pump.flow_error = pump._draw_flow_error()
        pump._sync_battery()
        return pump


def _sounder(config: PumpConfig) -> Sounder:
    """The pump's alarm sounder from its config."""
    critical = TonePattern(ToneKind.DUAL, config.critical_tone_ms, config.critical_repeat_s * 1000)
    noncritical = TonePattern(ToneKind.SINGLE, config.noncritical_tone_ms, config.noncritical_repeat_s * 1000)
    return Sounder({Priority.HIGH: critical, Priority.MEDIUM: noncritical})


def _flag(params: dict[str, Any], name: str, default: bool) -> bool:
    """A boolean fault parameter; anything else in ``params`` is refused by name."""
    unknown = sorted(set(params) - {name})
    if unknown:
        raise ValueError(f"unknown fault parameter {', '.join(unknown)}; valid: {name}")
    value = params.get(name, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):  # --fault memory_error:critical=false
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"fault parameter {name} must be true or false, not {value!r}")
    return value
