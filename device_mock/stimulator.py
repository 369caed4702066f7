"""The spinal cord stimulator model: programs and their limits, impedance, battery drain and charging.

Pure (no I/O, no clock reads). Between breakpoints the draw is constant: each active area takes
k_phase · I² · Z · PW per pulse at its mean rate over the cycling period (cycling periods are
seconds to minutes, battery time scales are days to years), so a segment integrates in closed form.
``advance_to`` stops at every breakpoint (battery thresholds, charge start and end, scheduled
impedance scans, impedance drift steps) and logs each event at its device time, rounded up to the
millisecond. The next breakpoint is computed once per segment and kept, so advancing in one call or
in many small steps gives the same event log; ``to_state`` keeps it too, so a restored model
resumes identically. The safety rules a program meets beyond its ranges are in ``stim_safety``.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any, NamedTuple

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    Actor,
    AmplitudeSet,
    Area,
    BatteryKind,
    BatteryState,
    Capability,
    ChargingSet,
    CommandAck,
    DeviceKind,
    EventCode,
    ImpedanceCheck,
    ImpedanceReply,
    Lifecycle,
    Message,
    MriModeSet,
    ProgramRead,
    ProgramReply,
    ProgramSelect,
    ScsStatus,
    StimProgramSet,
    TherapySet,
    Waveform,
    stored_programs_mask,
)

from .alarms import AlarmManager, EventLog
from .battery import DAY_S
from .model import unsupported
from .stim_cells import make_drive
from .stim_leads import OPEN_READING, StimLeads
from .stim_mri import StimMri
from .stim_patient import stored_program, with_amplitude
from .stim_physics import (
    ScsConfig,
    battery_pulse_power_w,
    load_ohm,
    tissue_power_w,
    validate_program,
)
from .stim_power import StimPower
from .stim_safety import validate_safety
from .treatment import Treatment

__all__ = ["FAULTS", "OPEN_READING", "ScsConfig", "Stimulator"]

FAULTS = (
    *("lead_open", "lead_short", "clear_lead", "battery_failure", "charge", "stop_charge"),
    *("lead_disconnected", "lead_reconnected", "lead_migration"),
)
_PERSISTED = (  # plain JSON values kept as they are by to_state / from_state
    *("seed", "now_ms", "_active", "_therapy", "_battery_stopped", "_failed", "_telemetry", "_charging"),
    *("_auto_retry_ms", "_readings", "_checks", "_next_scan_ms", "tissue_energy_j", "battery_energy_j", "_next_ms"),
    *("wakeups", "wake_energy_j", "_checked_ms", "_mri", "_flat_ms", "_deep_discharged", "_implant_ms"),
    *("lifecycle", "_migration"),
)
# Absent from older saved states: their defaults (R10's wake-ups; MRI mode, which then needs a new
# impedance check; the deep-discharge window).
_ADDED_LATER = {
    "lifecycle": int(Lifecycle.IMPLANTED),
    "_migration": 0.0,
    "wakeups": 0,
    "wake_energy_j": 0.0,
    "_checked_ms": None,
    "_mri": None,
    "_flat_ms": 0,
    "_deep_discharged": False,
}
_NEVER = 1 << 62  # "no breakpoint": an int, so the cached value stays JSON-ready


class Stimulator(StimMri, StimPower, StimLeads):
    """An SCS implant: the ``DeviceModel`` of kind SCS."""

    kind = DeviceKind.SCS
    FAULTS = FAULTS

    def __init__(self, config: ScsConfig, start_ms: int, seed: int, events: EventLog | None = None) -> None:
        self._setup(config, start_ms, seed, events)
        self._measure_impedance()  # the implant procedure ends with an impedance check (docs/devices.md 1.4)
        self._evaluate()

    def _setup(self, config: ScsConfig, start_ms: int, seed: int, events: EventLog | None) -> None:
        self.config, self.seed, self.now_ms = config, seed, start_ms
        self._implant_ms = start_ms  # impedance drifts from here (docs/devices.md 1.4)
        self.model_name, self.serial, self.firmware = config.model_name, config.serial, config.firmware
        self.capabilities = Capability.STIMULATION | Capability.IMPEDANCE | Capability.EVENT_PUSH | Capability.CLOCK_SET
        if config.battery_kind is BatteryKind.RECHARGEABLE:
            self.capabilities |= Capability.RECHARGEABLE
        self.events = events if events is not None else EventLog()
        self.alarms = AlarmManager(self.events)
        self.cell = make_drive(config, start_ms)
        rng = random.Random(f"scs-baseline:{seed}")  # str seeds hash with SHA-512: stable across runs
        self._baseline = [float(round(rng.uniform(*config.impedance_ohm))) for _ in range(config.contacts)]
        self._programs: dict[int, StimProgramSet] = {}
        self._active = 0
        self._therapy = self._battery_stopped = self._failed = self._telemetry = False
        # {"coupling": %, "end_ms": ms, 0 = until full; "full_ms": when the cell got full, 0 = not yet}
        self._charging: dict[str, int] | None = None
        self._auto_retry_ms = 0
        self._flat_ms = 0  # when a rechargeable cell went flat (0 = not flat): its deep-discharge window runs
        self._deep_discharged = False  # left flat past the window: damaged for good (and ``_failed``)
        self._leads: dict[int, str] = {}  # injected lead faults: contact -> "open" | "short"
        self._readings = [0] * config.contacts
        self._checks = 0
        self._checked_ms: int | None = None  # the last impedance check (stim_leads), which MRI mode needs
        self._mri: dict[str, Any] | None = None  # MRI mode: what entry found (stim_mri)
        scan_ms = round(config.impedance_scan_h * 3_600_000)
        self._next_scan_ms = start_ms + scan_ms if scan_ms > 0 else 0
        self._reached: dict[int, int] = {}  # battery alarm code -> device time its condition began
        self.tissue_energy_j = self.battery_energy_j = 0.0
        self.wakeups, self.wake_energy_j = 0, 0.0  # receiver wake-ups outside a session, and their energy
        self._next_ms: int | None = None  # cached next breakpoint of the current segment
        self._segment: tuple[float, float, float] | None = None  # its (draw, tissue, charger) W
        self._held: _Held | None = None  # what status() shows that only a state change alters
        self.treatment: Treatment | None = None  # the virtual patient it treats, if any
        self.lifecycle = Lifecycle.IMPLANTED  # SPEC 4.7 (device_mock.lifecycle)
        self._migration = 0.0  # a lead migration (stim_leads), contact spacings

    # --- power -----------------------------------------------------------------------------------
    def _area_powers(self) -> list[tuple[float, float]]:
        """(tissue W, battery W) of each area of the active program, 0 for an area lost to an open lead or
        turned off by a short."""
        program = self._programs.get(self._active)
        # Programs are immutable: only the program, a lead fault, a drift step, a short found or a lead
        # migration changes them.
        key = (program, tuple(self._leads.items()), self._drift_index(), self._disabled_mask(), self._migration)
        if key != getattr(self, "_area_cache_key", None):
            self._area_cache_key, self._area_cache = key, self._compute_area_powers(program)
        return self._area_cache

    def _compute_area_powers(self, program: StimProgramSet | None) -> list[tuple[float, float]]:
        if program is None:
            return []
        ohms, c, disabled = self._true_ohm(), self.config, self._disabled_mask()
        powers = []
        for area in program.areas:
            z = load_ohm(area, ohms)  # inf: an open contact, the area's stimulation is lost
            if math.isinf(z) or (area.anode_mask | area.cathode_mask) & disabled:
                powers.append((0.0, 0.0))
            else:
                powers.append((tissue_power_w(area, z, c.k_phase), battery_pulse_power_w(area, z, c)))
        return powers

    def tissue_power_w(self) -> float:
        """Power delivered to tissue now, W."""
        return sum(p[0] for p in self._area_powers()) if self._therapy else 0.0

    def program_power_w(self) -> float:
        """Battery draw of the active program with therapy on, without telemetry (the ERI rule's drain)."""
        return sum(p[1] for p in self._area_powers()) + self.config.quiescent_w

    def battery_power_w(self) -> float:
        """What the device draws now, W: pulses / η + quiescent (+ telemetry while a session is open)."""
        if self._failed or (self.cell.empty() and not self._charging):
            return 0.0
        return self._running_power_w()

    def _running_power_w(self) -> float:
        """The draw while the cell can run the device."""
        pulses = sum(p[1] for p in self._area_powers()) if self._therapy else 0.0
        return pulses + self.config.quiescent_w + (self.config.telemetry_w if self._telemetry else 0.0)

    def _charge_in_w(self) -> float:
        if not self._charging:
            return 0.0
        return self.config.rechargeable.charge_power_w * self._charging["coupling"] / 100.0

    def set_telemetry_active(self, active: bool) -> None:
        """A telemetry session opened or closed at ``now_ms`` (advance first): the radio's drain."""
        if active != self._telemetry:
            self._telemetry = active
            self._state_changed()

    def charge_wakeups(self, count: int) -> None:
        """Take ``count`` receiver wake-ups (R10) from the cell at ``now_ms`` (advance first), as one lump.

        The lump changes the charge the current segment started from, so its next breakpoint is worked
        out again, and a threshold the lump itself crossed is handled now, at this millisecond.
        """
        if count <= 0 or self._failed:
            return
        taken = self.cell.take(count * self.config.wake_j)
        self.wakeups += count
        self.wake_energy_j += taken
        self.battery_energy_j += taken
        self._evaluate()

    # --- time ------------------------------------------------------------------------------------
    def advance_to(self, t_ms: int) -> None:
        """Integrate to ``t_ms``, stopping at every breakpoint on the way."""
        while self.now_ms < t_ms:
            breakpoint_ms = self._next_breakpoint()
            end = min(t_ms, breakpoint_ms)
            self._integrate(end)
            if end == breakpoint_ms:
                self._next_ms = None
                self._evaluate()

    def _next_breakpoint(self) -> int:
        if self._next_ms is None:
            times = [t for t in self._scheduled_ms() if t > self.now_ms]
            if not self._failed:
                draw, _, charger = self._powers()
                seconds = self.cell.crossings_s(draw, charger, self.now_ms, self.program_power_w())
                times += [self.now_ms + max(1, math.ceil(s * 1000)) for s in seconds]
            self._next_ms = min(times, default=_NEVER)
        return self._next_ms

    def _scheduled_ms(self) -> list[int]:
        return [
            self._next_scan_ms,
            self._auto_retry_ms,
            self._next_drift_ms(),
            *self.cell.scheduled_ms(),
            *self._power_stops_ms(),
        ]

    def place_leads_afresh(self) -> None:
        """The permanent leads of an implant go where the trial's were meant to be: no migration."""
        self._migration = 0.0
        self._evaluate()

    def _delivered_program(self) -> StimProgramSet | None:
        """What reaches the patient now: the active program's areas that still stimulate, or None."""
        program = self._programs.get(self._active)
        if program is None or not self._therapy or self.battery_power_w() <= 0:
            return None
        live = tuple(a for a, (tissue, _) in zip(program.areas, self._area_powers(), strict=True) if tissue > 0)
        return replace(program, areas=live) if live else None

    def _powers(self) -> tuple[float, float, float]:
        """(draw, tissue, charger) W of the current segment, computed once: they change only at breakpoints."""
        if self._segment is None:
            self._segment = (self.battery_power_w(), self.tissue_power_w(), self._charge_in_w())
        return self._segment

    def _integrate(self, end_ms: int) -> None:
        if self.treatment is not None:
            self.treatment.stimulated(end_ms, self._delivered_program(), self._disabled_mask(), self._migration)
        seconds = (end_ms - self.now_ms) / 1000.0
        if not self._failed:
            draw, tissue, charger = self._powers()
            self.cell.integrate(draw, charger, seconds, end_ms)
            self.battery_energy_j += draw * seconds
            self.tissue_energy_j += tissue * seconds
        self.now_ms = end_ms

    def _evaluate(self) -> None:
        """Bring alarms, therapy, charging and scans in line with the state at ``now_ms``."""
        self._update_deep_discharge()
        self._update_battery_alarms()
        self._stop_if_battery_cannot()
        self._update_charging()
        if self._next_scan_ms and self.now_ms >= self._next_scan_ms:
            self._measure_impedance()
            self._next_scan_ms += round(self.config.impedance_scan_h * 3_600_000)
        self._update_density_alarm()
        self._state_changed()

    def _state_changed(self) -> None:
        """Drop what was derived from the old state: a new segment, new status values.

        Every change of program, therapy, leads, readings, charging, failure or telemetry ends here.
        """
        self._next_ms = self._segment = self._held = None

    # --- commands --------------------------------------------------------------------------------
    def apply(self, message: Message, role: Actor = Actor.CLINICIAN) -> Message:
        """An SCS command or program read of a ``role`` session; all or nothing.

        The endpoint already refused what the role may not send at all (SPEC 3.8); what is left
        here is how far a patient may go (the patient maximum), and MRI mode's refusals.
        """
        self._check_mri_allows(message)
        if isinstance(message, MriModeSet):
            return self._set_mri_mode(message.on)
        if isinstance(message, StimProgramSet):
            return self._set_program(message)
        if isinstance(message, TherapySet):
            return self._set_therapy(message.on)
        if isinstance(message, ImpedanceCheck):
            seq = self._measure_impedance()
            self._evaluate()
            return ImpedanceReply(self.now_ms, tuple(self._readings), seq)
        if isinstance(message, ProgramSelect):
            return self._select_program(message.program)
        if isinstance(message, AmplitudeSet):
            return self._set_amplitude(message, role)
        if isinstance(message, ChargingSet):
            return self._set_charging(message.on)
        if isinstance(message, ProgramRead):
            p = stored_program(self._programs, message.program, self.config.max_programs)
            return ProgramReply(p.program, p.program == self._active, p.areas, p.patient_amp_max_ua, p.ramp_s)
        raise unsupported(message, self.kind)

    def _select_program(self, number: int) -> CommandAck:
        program = stored_program(self._programs, number, self.config.max_programs)
        if number == self._active:
            return CommandAck(0)
        self._check_programmable(program)  # a contact flagged since it was stored keeps it off
        previous, self._active = self._active, number
        seq = self.events.append(self.now_ms, EventCode.PROGRAM_SELECTED, arg0=number, arg1=previous).seq
        self._evaluate()
        return CommandAck(seq)

    def _set_amplitude(self, request: AmplitudeSet, role: Actor) -> CommandAck:
        changed = with_amplitude(self._programs.get(self._active), request, role, self.config)
        validate_program(changed, self.config)
        self._check_programmable(changed)
        overridden = validate_safety(changed, self.config, self._measured_ohm())
        self._programs[changed.program] = changed
        code, area = EventCode.AMPLITUDE_CHANGED, request.area
        seq = self.events.append(self.now_ms, code, arg0=area, arg1=request.amplitude_ua).seq
        if overridden:
            self._log_density_override(overridden)
        self._evaluate()
        return CommandAck(seq)

    def _set_program(self, message: StimProgramSet) -> CommandAck:
        validate_program(message, self.config)
        self._check_programmable(message)
        overridden = validate_safety(message, self.config, self._measured_ohm())
        self._programs[message.program] = message
        if message.activate:
            self._active = message.program
        amplitude = message.areas[0].amplitude_ua
        seq = self.events.append(self.now_ms, EventCode.PROGRAM_CHANGED, arg0=message.program, arg1=amplitude).seq
        if overridden:
            self._log_density_override(overridden)
        self._evaluate()
        return CommandAck(seq)

    def _set_therapy(self, on: bool) -> CommandAck:
        if on == self._therapy:
            return CommandAck(0)
        if on:
            if self._active not in self._programs:
                raise DeviceRejected(ErrorCode.STATE_CONFLICT, "no active program to deliver", "on", 1)
            blocked = self._battery_blocks()
            if blocked:
                raise DeviceRejected(ErrorCode.STATE_CONFLICT, f"cannot stimulate: {blocked}", "on", 1)
        self._therapy, self._battery_stopped = on, False
        seq = self.events.append(self.now_ms, EventCode.THERAPY_ON if on else EventCode.THERAPY_OFF).seq
        self._evaluate()
        return CommandAck(seq)

    # --- faults ----------------------------------------------------------------------------------
    def inject_fault(self, fault: str, params: dict[str, Any]) -> None:
        """Start or end a device fault (see ``FAULTS``); ``ValueError`` for an unknown one or bad parameters."""
        handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "lead_open": lambda p: self._set_lead(p, "open"),
            "lead_short": lambda p: self._set_lead(p, "short"),
            "clear_lead": lambda p: self._set_lead(p, None),
            "battery_failure": lambda p: self._fail_battery(),
            "charge": self._charge_fault,
            "stop_charge": lambda p: self._charging and self._end_charge(self.cell.full(self.now_ms)),
            "lead_disconnected": lambda p: self._disconnect_lead(p, connected=False),
            "lead_reconnected": lambda p: self._disconnect_lead(p, connected=True),
            "lead_migration": self._migrate_lead,
        }
        if fault not in handlers:
            raise ValueError(f"unknown SCS fault {fault!r}; valid: {', '.join(FAULTS)}")
        handlers[fault](params)
        self._evaluate()

    # --- telemetry -------------------------------------------------------------------------------
    def status(self) -> ScsStatus:
        """The telemetry snapshot at ``now_ms``."""
        held, now, charging = self._held or self._hold(), self.now_ms, self._charging
        draw = 0.0 if self._failed or (not charging and self.cell.empty()) else held.running_w  # = battery_power_w
        fraction, mv, state, capacity, to_recharge_s, eri_ms, eos_ms = self.cell.snapshot(now, draw, held.program_w)
        if self._failed:
            state, eri_ms, eos_ms = BatteryState.FAILED, 0, 0
        elif self._reached:
            eri_ms, eos_ms = self._reached_or_projected(eri_ms, eos_ms)
        return ScsStatus(
            lifecycle=Lifecycle(self.lifecycle),
            diary_seq=self.treatment.last_seq if self.treatment is not None else 0,
            time_ms=now,
            therapy_on=self._therapy,
            active_program=self._active,
            areas=held.areas,
            patient_amp_max_ua=held.patient_amp_max_ua,
            battery_kind=self.cell.kind,
            battery_state=state,
            battery_pct_x100=round(fraction * 10_000),
            battery_mv=mv,
            charging=charging is not None,
            coupling_pct=charging["coupling"] if charging else 0,
            capacity_pct_x100=round(capacity * 10_000),
            days_to_recharge_x100=min(0xFFFF_FFFF, round(to_recharge_s / DAY_S * 100)),
            eri_ms=eri_ms,
            eos_ms=eos_ms,
            tissue_power_uw=held.tissue_power_uw,
            charge_density_x100=held.charge_density_x100,
            impedance_ohm=held.impedance_ohm,
            alarms=self.alarms.active(),
            last_event_seq=self.events.last_seq,
            stored_programs=held.stored_programs,
            mri_mode=self._mri is not None,
            shannon_k_x100=held.shannon_k_x100,
            disabled_contacts=held.disabled_contacts,
        )

    def _hold(self) -> _Held:
        """Work out the status values that stay until the next ``_state_changed``."""
        program = self._programs.get(self._active)
        density = max(self._densities(at_patient_max=False), default=0.0)
        self._held = _Held(
            areas=program.areas if program else (),
            patient_amp_max_ua=program.patient_amp_max_ua if program else 0,
            program_w=self.program_power_w(),
            running_w=self._running_power_w(),
            tissue_power_uw=round(self.tissue_power_w() * 1e6),
            charge_density_x100=min(0xFFFF, round(density * 100)),
            impedance_ohm=tuple(self._readings),
            stored_programs=stored_programs_mask(self._programs),
            shannon_k_x100=self._shannon_k_x100(),
            disabled_contacts=self._disabled_mask(),
        )
        return self._held

    def _reached_or_projected(self, eri_ms: int, eos_ms: int) -> tuple[int, int]:
        """ERI and EOS times: when they began if reached, else the projections given."""
        eri_code, eos_code = int(EventCode.BATTERY_ERI), int(EventCode.BATTERY_EOS)
        eos_ms = self._reached.get(eos_code, eos_ms)
        return self._reached.get(eri_code, eos_ms if eos_code in self._reached else eri_ms), eos_ms

    # --- persistence -----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, JSON-ready (event log and alarms included)."""
        data = {name: copy.copy(getattr(self, name)) for name in _PERSISTED}  # lists and dicts: not shared
        data.update(
            config=self.config.to_dict(),
            cell=self.cell.to_state(),
            programs=[_program_to_dict(p) for p in self._programs.values()],
            leads=sorted(self._leads.items()),
            reached=sorted(self._reached.items()),
            events=self.events.to_state(),
            alarms=self.alarms.to_state(),
            treatment=self.treatment.to_state() if self.treatment is not None else None,
        )
        return data

    @classmethod
    def from_state(cls, data: dict[str, Any], events: EventLog | None = None) -> Stimulator:
        """Rebuild from ``to_state`` output (``events``: a log the caller restored itself)."""
        model = cls.__new__(cls)
        config = ScsConfig(**data["config"])
        log = events if events is not None else EventLog.from_state(data["events"])  # an empty log is falsy
        model._setup(config, data["now_ms"], data["seed"], log)
        saved = {**_ADDED_LATER, "_implant_ms": data["now_ms"], **data}  # no implant time saved: drift from now
        for name in _PERSISTED:
            setattr(model, name, copy.copy(saved[name]))
        model.alarms.load_state(data["alarms"])
        model.cell = make_drive(config, data["now_ms"], data["cell"])
        model._programs = {p["program"]: _program_from_dict(p) for p in data["programs"]}
        model._leads = {int(k): v for k, v in data["leads"]}
        model._reached = {int(k): v for k, v in data["reached"]}
        model.treatment = Treatment.from_state(data.get("treatment"))
        return model


class _Held(NamedTuple):
    """Status values of one state of the stimulator (see ``Stimulator._hold``)."""

    areas: tuple[Area, ...]
    patient_amp_max_ua: int
    program_w: float  # program_power_w()
    running_w: float  # battery_power_w() while the cell can run the device
    tissue_power_uw: int
    charge_density_x100: int
    impedance_ohm: tuple[int, ...]
    stored_programs: int
    shannon_k_x100: int
    disabled_contacts: int


def _program_to_dict(program: StimProgramSet) -> dict[str, Any]:
    data = asdict(program)
    data["areas"] = [{**area, "waveform": int(area["waveform"])} for area in data["areas"]]
    return data


def _program_from_dict(data: dict[str, Any]) -> StimProgramSet:
    areas = tuple(Area(**{**area, "waveform": Waveform(area["waveform"])}) for area in data["areas"])
    override = data.get("density_override", False)  # absent from programs saved before the override existed
    return StimProgramSet(
        data["program"], data["activate"], areas, data["patient_amp_max_ua"], data["ramp_s"], override
    )
