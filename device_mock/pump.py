"""The intrathecal drug pump model: reservoir, drugs, dosing, boluses, refills, alarms and battery.

A pure ``DeviceModel`` (see ``model.py``): no I/O and no clock reads. Time moves only through
``advance_to``, which integrates in closed form between breakpoints (flex step edges, bolus ends,
the low-reservoir and empty crossings, battery ERI/EOS by energy and by age, a magnetic field's end,
a stalled motor's restart, a valve's leak limit) and logs each event at
its exact device millisecond. Numbers come from docs/devices.md part 2; each default names its source and
confidence tag, and every one is a ``PumpConfig`` field.

Two reservoir volumes are kept apart, as in a real pump: the device's *estimate* drains at the
programmed rate and drives the alarms and what the programmer sees; the *true* volume drains at the
programmed rate times (1 + flow error), an error drawn once per fill from the seed. Their difference
is what the residual comparison at the next refill reveals, together with any drug a magnetic
field let past a valve-gated pump's valves (``pump_magnet``), which the estimate does not meter.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    Actor,
    BatteryState,
    Bolus,
    BolusKind,
    Capability,
    CommandAck,
    DeviceKind,
    DosingMode,
    DosingSet,
    DrugConcentration,
    DrugLevel,
    EventCode,
    Lifecycle,
    Message,
    MotorState,
    MriCheckDone,
    Priority,
    PumpStatus,
    Refill,
    ScheduleRead,
    ScheduleReply,
    TherapySet,
    ToneKind,
)

from . import pump_doses as doses
from . import pump_dosing as dosing
from .alarm_tones import Sounder, TonePattern
from .alarms import AlarmManager, EventLog
from .battery import PrimaryBattery
from .model import require, unsupported
from .pump_boluses import PumpBoluses
from .pump_config import DrugLimit, PumpConfig
from .pump_dosing import DAY_MS, UNITS_PER_UL, ActiveBolus, Program, Projections
from .pump_faults import PumpFaults
from .pump_magnet import PumpMagnet
from .pump_power import PumpPower
from .pump_refilling import PumpRefilling
from .pump_schedule import Schedule, validate_schedule
from .pump_state import Faults, Magnet, Reached, Totals
from .treatment import Treatment

__all__ = ["DrugLimit", "Pump", "PumpConfig"]
_U32 = 0xFFFF_FFFF


class Pump(PumpPower, PumpBoluses, PumpRefilling, PumpFaults, PumpMagnet):
    """An intrathecal drug pump meeting the ``DeviceModel`` contract.

    ``TherapySet`` starts and stops the pump; ``DosingSet`` programs it (mode STOPPED also stops it).
    A bolus runs on top of the basal rate and is cut short by anything that stops delivery; its
    BOLUS_COMPLETE then carries the volume actually pumped. A clinician bolus may also be given
    from a stopped pump (the "single bolus" mode of docs/devices.md 2.4): the motor runs for the bolus
    alone, then the pump is stopped again.
    """

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
        schedule = Schedule(DosingMode.CONTINUOUS, config.initial_rate_ul_per_day)
        self.program = Program(schedule, dosing.NO_PATIENT_BOLUS, config.alarm_volume_ul, config.initial_drugs)
        self.totals = Totals(config.initial_fill_ul)
        self._record_fill(config.initial_drugs)
        self.faults = Faults()
        self.magnet = Magnet()
        self.reached = Reached()
        self.bolus: ActiveBolus | None = None
        self.flow_error = self._draw_flow_error()
        self.treatment: Treatment | None = None  # the virtual patient it treats, if any
        self.lifecycle = Lifecycle.IMPLANTED  # SPEC 4.7 (device_mock.lifecycle)
        self._levels: tuple[tuple[DrugConcentration, ...], tuple[Any, ...], tuple[DrugLevel, ...]] | None = None
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

        Drug an occluded catheter did not take stays in the reservoir, unknown to the device's estimate;
        drug a magnetic field let past the valves (``pump_magnet``) left it, unmetered, also unknown.
        """
        totals = self.totals
        drained = totals.since_refill - totals.held_units
        left = totals.fill_ul - ((1.0 + self.flow_error) * drained + totals.leak_units) / UNITS_PER_UL
        return max(0.0, left)

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
        magnet = self._magnet_blocker()
        if magnet:
            return magnet
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

    def _draw_flow_error(self) -> float:
        cfg = self.config
        return dosing.draw_flow_error(
            self.seed, self.totals.refills, cfg.flow_error_mean, cfg.flow_error_sd, cfg.flow_accuracy
        )

    # --- time ------------------------------------------------------------------------------------
    def advance_to(self, t_ms: int) -> None:
        """Integrate up to device time ``t_ms``, stopping at every breakpoint to log its events."""
        while self.now_ms < t_ms:
            pumping = self.pumping
            rate = self.program.schedule.rate_at(self.now_ms) if pumping and not self.stopped else 0
            bolus = self.bolus if pumping else None
            leak, start = self._leak_rate(), self.now_ms
            end = self._magnet_stop(self._next_stop(t_ms, rate, bolus), leak)
            self._integrate(end, rate, bolus)
            self._leak(start, end, leak)
            self._check()

    def _next_stop(self, t_ms: int, rate: int, bolus: ActiveBolus | None) -> int:
        """The next breakpoint after ``now_ms``, at most ``t_ms``; rates are constant until it."""
        now = self.now_ms
        stops = [t_ms]
        if rate or bolus:
            stops += [e for e in (self.program.schedule.next_edge(now), bolus and bolus.end_ms) if e]
        stops += [age for age in (self._age_eri, self._age_eos) if age and age > now]
        stops += [t for t in self._replacement_stops_ms() if t > now]
        end = min(stops)
        low_need = self.reservoir_units - self.program.alarm_volume_ul * UNITS_PER_UL
        for need in (low_need, self.reservoir_units):
            if need > 0 and (hit := dosing.reach_in_segment(rate, bolus, now, end, need)) is not None:
                end = hit
        if self.powered:
            if self.reached.eri:  # the stop date fixed at ERI
                end = min(end, max(now + 1, self._eri_stop_ms()))
            for level_j in self._stop_levels_j():
                end = self._energy_stop(level_j, rate, bolus, end)
        return end

    def _integrate(self, end: int, rate: int, bolus: ActiveBolus | None) -> None:
        """Move to ``end`` at constant rates; the battery follows from the integer totals."""
        totals = self.totals
        units = dosing.drained(rate, bolus, self.now_ms, end)
        true_before = self.true_reservoir_ul
        totals.since_refill += units
        totals.pumped += units
        if self.powered:
            totals.powered_ms += end - self.now_ms
        delivered = 0.0
        if self.faults.occluded:  # the motor turns, but the drug has nowhere to go
            totals.held_units += units
        else:
            delivered = true_before - self.true_reservoir_ul
            totals.delivered_ul += delivered
        if self.treatment is not None:
            self.treatment.infused(end, delivered, self.program.drugs)
        self.now_ms = end
        self._sync_battery()

    def _check(self) -> None:
        """Log what became true at ``now_ms``: a field's effects, bolus end, low/empty reservoir, ERI, EOS."""
        now = self.now_ms
        self._check_magnet()
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

    # --- commands --------------------------------------------------------------------------------
    def apply(self, message: Message, role: Actor = Actor.CLINICIAN) -> Message:
        """Apply a pump command, all or nothing (see ``model.DeviceModel.apply``).

        A patient's controller may only ask for a patient bolus (SPEC 3.8): a pump's infusion is
        started and stopped, and its other boluses given, by the clinician.
        """
        if isinstance(message, ScheduleRead):  # a read: either role may ask
            return self.schedule_reply()
        handlers = {
            DosingSet: self._apply_dosing,
            Bolus: self._apply_bolus,
            Refill: self._apply_refill,
            TherapySet: self._apply_therapy,
            MriCheckDone: self._apply_mri_check,
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
        schedule = validate_schedule(m, cfg)
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

    def status(self) -> PumpStatus:
        """The telemetry snapshot at ``now_ms``."""
        program, now, faults, battery = self.program, self.now_ms, self.faults, self.battery
        pumping = self.pumping  # asked once: it walks the delivery conditions
        basal = pumping and not self.stopped
        projected = self._projections(basal)
        rate = program.schedule.rate_at(now) if program.therapy_on else 0
        eri_ms, eos_ms = self._battery_dates(basal)
        # An occlusion is not sensed; a motor the MRI magnet holds is stalled.
        motor = MotorState.STALLED if faults.stalled or self.magnet.suspended_ms else MotorState.OK
        tones = self.alarms.tone_state(now)
        return PumpStatus(
            lifecycle=self.lifecycle,
            diary_seq=self.treatment.last_seq if self.treatment is not None else 0,
            time_ms=now,
            mode=program.schedule.mode if program.therapy_on else DosingMode.STOPPED,
            infusing=pumping,
            reservoir_ul=self.reservoir_ul,
            capacity_ul=self.config.capacity_ul,
            alarm_volume_ul=program.alarm_volume_ul,
            rate_ul_per_day=rate,
            # Nothing infused (stopped, empty, stalled, held by a field): a daily dose of 0.
            drugs=self._drug_levels(program.drugs, program.schedule.daily_ul() if basal else 0),
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
            mri_suspended=self.mri_suspended,
            mri_check_due=self.magnet.check_due,
            valve_closed=self.magnet.valve_closed,
            replacement_ms=self._replacement_date(basal),
        )

    def _drug_levels(self, drugs: tuple[DrugConcentration, ...], daily_ul: int) -> tuple[DrugLevel, ...]:
        """Each drug with the basal dose of the programmed 24 h and its boluses of the last 24 h.

        Kept while the contents, the daily volume and the boluses stay the same.
        """
        given = doses.recent(self.totals.boluses_given, self.now_ms)
        key = (daily_ul, tuple(map(tuple, given)))
        kept = self._levels
        if kept is None or kept[0] is not drugs or kept[1] != key:  # holding ``drugs`` keeps its identity unique
            levels = tuple(
                DrugLevel(
                    d.drug,
                    d.conc_ng_per_ml,
                    min(_U32, doses.daily_ng(d.conc_ng_per_ml, daily_ul)),
                    min(_U32, sum(ng for _, drug, ng in given if drug == d.drug)),
                )
                for d in drugs
            )
            kept = self._levels = (drugs, key, levels)
        return kept[2]

    def schedule_reply(self) -> ScheduleReply:
        """The dosing program as a programmer reads it back."""
        program, schedule = self.program, self.program.schedule
        stopped = self.stopped
        return ScheduleReply(
            mode=DosingMode.STOPPED if stopped else schedule.mode,
            rate_ul_per_day=schedule.rate_ul_per_day,
            steps=schedule.steps,
            periodic_boluses=schedule.boluses,
            utc_offset_min=schedule.utc_offset_min,
            patient_bolus=program.patient_bolus,
            alarm_volume_ul=program.alarm_volume_ul,
            daily_ul=0 if stopped else schedule.daily_ul(),
            local_minute=schedule.local_minute(self.now_ms),
        )

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
            "magnet": asdict(self.magnet),
            "reached": asdict(self.reached),
            "bolus": asdict(self.bolus) if self.bolus else None,
            "events": self.events.to_state(),
            "alarms": self.alarms.to_state(),
            "treatment": self.treatment.to_state() if self.treatment is not None else None,
            "lifecycle": int(self.lifecycle),
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
        pump.totals = Totals(**data["totals"])
        pump.faults = Faults(**data["faults"])
        pump.magnet = Magnet(**data.get("magnet", {}))  # absent from states saved before MRI scans
        pump.reached = Reached(**data["reached"])
        bolus = data["bolus"]
        pump.bolus = ActiveBolus(**{**bolus, "kind": BolusKind(bolus["kind"])}) if bolus else None
        pump.flow_error = pump._draw_flow_error()
        pump.treatment = Treatment.from_state(data.get("treatment"))
        pump.lifecycle = Lifecycle(data.get("lifecycle", Lifecycle.IMPLANTED))
        pump._sync_battery()
        return pump


def _sounder(config: PumpConfig) -> Sounder:
    """The pump's alarm sounder from its config."""
    critical = TonePattern(ToneKind.DUAL, config.critical_tone_ms, config.critical_repeat_s * 1000)
    noncritical = TonePattern(ToneKind.SINGLE, config.noncritical_tone_ms, config.noncritical_repeat_s * 1000)
    return Sounder({Priority.HIGH: critical, Priority.MEDIUM: noncritical})
