"""``implant-ctl``'s text output: every reply in the units and words a person reads.

Owns the human rendering only (mL, mg/mL, mg/day, %, V, mA, ISO dates, names instead of enum
values). The wire values and names stay in ``--json`` (SPEC.md section 11). Imports only
``protocols.messages``; nothing here talks to a device.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from .messages import (
    ActiveAlarm,
    Actor,
    Area,
    BatteryKind,
    BolusReply,
    Capability,
    ClockReply,
    CommandAck,
    CommandOutcome,
    DiaryKind,
    DiaryPage,
    DiaryRecord,
    DiarySource,
    DosingMode,
    DrugLevel,
    EventPush,
    EventRecord,
    IdentifyReply,
    ImpedanceReply,
    PatientBolusSettings,
    ProgramReply,
    PumpStatus,
    RefillReply,
    ScheduleReply,
    ScsStatus,
    ToneKind,
    stored_program_numbers,
)

OPEN_OHM = 65535  # SPEC.md: 65535 = open circuit
NG_PER_MG = 1_000_000
UL_PER_ML = 1000


def name(value: IntEnum) -> str:
    """An enum value as words: ``LOW_RESERVOIR`` -> ``low reservoir``."""
    return value.name.lower().replace("_", " ")


def iso(ms: int) -> str:
    """Device time (ms since epoch, UTC) as ISO 8601 to the millisecond; ``never`` for 0 or beyond year 9999."""
    if ms <= 0:
        return "never"
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return "never"


def _num(value: float, places: int) -> str:
    """``value`` to at most ``places`` decimals, trailing zeros dropped (20.000 -> 20, 18.860 -> 18.86)."""
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def ml(ul: int) -> str:
    """µL as mL, to the µL."""
    return _num(ul / UL_PER_ML, 3)


def mg(ng: int, per: str) -> str:
    """ng per ``per`` as mg; below 1 mg the µg figure follows, since ziconotide and low-dose opioids live there."""
    text = f"{_num(ng / NG_PER_MG, 6)} mg/{per}"
    return text if ng >= NG_PER_MG or ng == 0 else f"{text} ({_num(ng / 1000, 3)} µg/{per})"


def _pct(x100: int) -> str:
    return f"{_num(x100 / 100, 2)} %"


def _battery(pct_x100: int, mv: int) -> str:
    return f"{_pct(pct_x100)} ({mv / 1000:.2f} V)"


def _contacts(mask: int) -> str:
    return "+".join(str(n) for n in range(32) if mask >> n & 1) or "none"


def _area(area: Area) -> str:
    text = (
        f"anodes {_contacts(area.anode_mask)}, cathodes {_contacts(area.cathode_mask)}: "
        f"{_num(area.amplitude_ua / 1000, 3)} mA, {area.pulse_width_us} µs, {area.rate_hz} Hz, {name(area.waveform)}"
    )
    if area.burst_pulses:
        text += f", {area.burst_pulses} pulses per burst at {area.burst_rate_hz} Hz"
    if area.cycle_on_s:
        text += f", cycling {area.cycle_on_s} s on / {area.cycle_off_s} s off"
    return text


def _alarms(alarms: tuple[ActiveAlarm, ...]) -> str:
    return "; ".join(f"{name(a.code)} ({name(a.priority)} priority, {name(a.state)})" for a in alarms) or "none"


def _drug(level: DrugLevel) -> str:
    text = f"{name(level.drug)} {mg(level.conc_ng_per_ml, 'mL')}, {mg(level.dose_ng_per_day, 'day')}"
    if level.bolus_ng_24h:
        text += f", boluses {mg(level.bolus_ng_24h, '24 h')}"
    return text


def clock_time(minute: int) -> str:
    """A minute of the day as ``HH:MM``."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def utc_offset(minutes: int) -> str:
    """Minutes east of UTC as ``UTC+05:30`` (``UTC`` for 0)."""
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    return f"UTC{sign}{clock_time(abs(minutes))}"


def _ptm(ptm: PatientBolusSettings) -> str:
    if not ptm.enabled:
        return "off"
    return (
        f"{ml(ptm.dose_ul)} mL over {ptm.duration_min} min, lockout {ptm.lockout_min} min, "
        f"up to {ptm.max_per_day} per day"
    )


def schedule(s: ScheduleReply) -> str:
    """The pump's dosing program as it reads back."""
    rows = [("Mode", name(s.mode)), ("Local time", f"{utc_offset(s.utc_offset_min)}, now {clock_time(s.local_minute)}")]
    if s.mode is DosingMode.CONTINUOUS:
        rows.append(("Rate", f"{ml(s.rate_ul_per_day)} mL/day"))
    rows += [(f"From {clock_time(step.start_min)}", f"{ml(step.rate_ul_per_day)} mL/day") for step in s.steps]
    rows += [
        (f"Bolus {clock_time(b.start_min)}", f"{ml(b.volume_ul)} mL over {b.duration_min} min, daily")
        for b in s.periodic_boluses
    ]
    rows += [
        ("Day's volume", f"{ml(s.daily_ul)} mL"),
        ("Patient bolus", _ptm(s.patient_bolus)),
        ("Low alarm at", f"{ml(s.alarm_volume_ul)} mL"),
    ]
    return _rows("Dosing program", rows)


def _impedance(values: tuple[int, ...]) -> str:
    return ", ".join(f"{n}: {'open' if ohm == OPEN_OHM else f'{ohm} Ω'}" for n, ohm in enumerate(values)) or "none"


def _disabled(mask: int) -> str:
    """Contacts the last impedance check found shorted and turned off (SPEC 4.4)."""
    return f"{_contacts(mask)} (shorted at the last check)" if mask else "none"


def _rows(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join([title, *(f"  {label.ljust(width)}  {value}" for label, value in rows)])


def scs_status(s: ScsStatus) -> str:
    """A stimulator's telemetry snapshot."""
    battery = f"{name(s.battery_kind)}, {name(s.battery_state)}, {_battery(s.battery_pct_x100, s.battery_mv)}"
    if s.charging:
        battery += f", charging at {s.coupling_pct} % coupling"
    rows = [
        ("Therapy", f"{'on' if s.therapy_on else 'off'}, program {s.active_program}"),
        ("MRI mode", "on: programming and therapy on refused until it ends" if s.mri_mode else "off"),
        ("Stored programs", ", ".join(str(n) for n in stored_program_numbers(s.stored_programs)) or "none"),
        *((f"Area {n}", _area(a)) for n, a in enumerate(s.areas, 1)),
        ("Patient max", f"{_num(s.patient_amp_max_ua / 1000, 3)} mA"),
        ("Battery", battery),
        ("Capacity", f"{_pct(s.capacity_pct_x100)} of new"),
    ]
    if s.battery_kind is BatteryKind.RECHARGEABLE:
        rows.append(("Recharge due", f"in {_num(s.days_to_recharge_x100 / 100, 2)} days"))
    rows += [
        ("ERI", iso(s.eri_ms)),
        ("End of service", iso(s.eos_ms)),
        ("Tissue power", f"{_num(s.tissue_power_uw / 1000, 3)} mW"),
        ("Charge density", f"{_num(s.charge_density_x100 / 100, 2)} µC/cm²/phase"),
        ("Shannon k", _num(s.shannon_k_x100 / 100, 2) if any(a.amplitude_ua for a in s.areas) else "none (no charge)"),
        ("Impedance", _impedance(s.impedance_ohm)),
        ("Contacts off", _disabled(s.disabled_contacts)),
        ("Alarms", _alarms(s.alarms)),
        ("Last event", f"#{s.last_event_seq}"),
    ]
    return _rows(f"Stimulator at {iso(s.time_ms)}", rows)


def pump_status(s: PumpStatus) -> str:
    """A pump's telemetry snapshot."""
    bolus = _ptm(s.patient_bolus)
    if s.patient_bolus.enabled:
        bolus += f"; {s.patient_boluses_today} in the last 24 h"
    ptm = s.patient_bolus
    bolus = (
        f"{ml(ptm.dose_ul)} mL over {ptm.duration_min} min, lockout {ptm.lockout_min} min, "
        f"up to {ptm.max_per_day} per day; {s.patient_boluses_today} in the last 24 h"
        if ptm.enabled
        else "off"
    )
    mri = [
        text
        for flag, text in (
            (s.mri_suspended, "delivery held by a magnetic field"),
            (s.valve_closed, "flow-activated valve closed"),
            (s.mri_check_due, "check after the scan due (mri-check)"),
        )
        if flag
    ]
    tone = "silent" if s.tone is ToneKind.NONE else f"{name(s.tone)} tone for code 0x{s.tone_code:04x}"
    if s.next_tone is not ToneKind.NONE:
        tone += f"; next: {name(s.next_tone)} tone at {iso(s.next_tone_ms)}"
    rows = [
        ("Mode", f"{name(s.mode)}, {'infusing' if s.infusing else 'not infusing'}"),
        ("Rate now", f"{ml(s.rate_ul_per_day)} mL/day"),
        ("Reservoir", f"{ml(s.reservoir_ul)} of {ml(s.capacity_ul)} mL (alarm at {ml(s.alarm_volume_ul)} mL)"),
        *(("Drug", _drug(level)) for level in s.drugs),
        ("Patient bolus", bolus),
        ("Bolus running", "yes" if s.bolus_active else "no"),
        ("Battery", f"{name(s.battery_state)}, {_battery(s.battery_pct_x100, s.battery_mv)}"),
        ("ERI", iso(s.eri_ms)),
        ("End of service", iso(s.eos_ms)),
        ("Replacement", iso(s.replacement_ms)),
        ("Motor", name(s.motor_state)),
        ("MRI", "; ".join(mri) or "nothing pending"),
        ("Low alarm", iso(s.low_alarm_ms)),
        ("Empty", f"{iso(s.empty_ms)} (between {iso(s.empty_earliest_ms)} and {iso(s.empty_latest_ms)})"),
        ("Next refill", iso(s.next_refill_ms)),
        ("Alarms", _alarms(s.alarms)),
        ("Tone", tone),
        ("Last event", f"#{s.last_event_seq}"),
    ]
    return _rows(f"Pump at {iso(s.time_ms)}", rows)


def event(e: EventRecord) -> str:
    """One event-log entry on one line (arguments as logged; their meaning by code is in SPEC.md)."""
    alarm = f"  {name(e.priority)} priority, {name(e.state)}" if e.priority or e.state else ""
    who = "" if e.actor is Actor.DEVICE else f"  by the {name(e.actor)}"
    return f"#{e.seq}  {iso(e.time_ms)}  {name(e.code)}{alarm}{who}  (args {e.arg0}, {e.arg1})"


def program(p: ProgramReply) -> str:
    """One stored stimulation program."""
    rows = [
        *((f"Area {n}", _area(a)) for n, a in enumerate(p.areas, 1)),
        ("Patient max", f"{_num(p.patient_amp_max_ua / 1000, 3)} mA"),
        ("Ramp", f"{p.ramp_s} s"),
    ]
    return _rows(f"Program {p.program}{' (active)' if p.active else ''}", rows)


def identify(i: IdentifyReply) -> str:
    """Who the device is."""
    capabilities = ", ".join(name(c) for c in Capability if i.capabilities & c) or "none"
    rows = [
        ("Model", i.model),
        ("Serial", i.serial),
        ("Firmware", i.firmware),
        ("Protocol", f"version {i.protocol_version}, schema 0x{i.schema_fingerprint:08x}"),
        ("Capabilities", capabilities),
        ("Largest payload", f"{i.max_payload} bytes"),
        ("Lifecycle", name(i.lifecycle)),
    ]
    return _rows("Stimulator" if i.kind.name == "SCS" else "Pump", rows)


# What a diary value means, by instrument (SPEC 4.7).
_DIARY_UNITS = {
    DiaryKind.NRS: ("Pain", "/10"),
    DiaryKind.MEDICATION: ("Analgesics", " mg morphine equivalents"),
    DiaryKind.PGIC: ("PGIC", "/7"),
    DiaryKind.ODI: ("ODI", "/100"),
    DiaryKind.SIDE_EFFECTS: ("Side effects", "/10"),
    DiaryKind.RELIEF: ("Relief reported", " %"),
}
_ASHWORTH = ("0", "1", "1+", "2", "3", "4")


def diary_entry(e: DiaryRecord) -> str:
    """One diary entry on one line."""
    if e.kind is DiaryKind.MAS:
        score = f"Ashworth {_ASHWORTH[e.value] if e.value < len(_ASHWORTH) else e.value}"
    else:
        label, unit = _DIARY_UNITS[e.kind]
        score = f"{label} {e.value}{unit}"
    who = {DiarySource.CONTROLLER: "", DiarySource.PATIENT: "  typed by the patient"}.get(
        e.source, "  typed by the clinician"
    )
    return f"#{e.seq}  {iso(e.time_ms)}  {score}{who}"


def _done(event_seq: int) -> str:
    return f"Done (event #{event_seq})" if event_seq else "Done (no event logged)"


def render(value: Any) -> str:
    """Any reply ``implant-ctl`` prints, as text."""
    if isinstance(value, list):
        return "\n".join(render(item) for item in value) if value else "No events."
    if isinstance(value, ScsStatus):
        return scs_status(value)
    if isinstance(value, PumpStatus):
        return pump_status(value)
    if isinstance(value, EventRecord):
        return event(value)
    if isinstance(value, DiaryRecord):
        return diary_entry(value)
    if isinstance(value, DiaryPage):
        return "\n".join(diary_entry(e) for e in value.entries) or "No diary entries."
    if isinstance(value, EventPush):
        return event(value.event)
    if isinstance(value, IdentifyReply):
        return identify(value)
    if isinstance(value, ClockReply):
        return f"Device time {iso(value.time_ms)}"
    if isinstance(value, CommandAck):
        return _done(value.event_seq)
    if isinstance(value, ProgramReply):
        return program(value)
    if isinstance(value, ScheduleReply):
        return schedule(value)
    if isinstance(value, ImpedanceReply):
        return f"Impedance at {iso(value.time_ms)} (event #{value.event_seq}): {_impedance(value.impedance_ohm)}"
    if isinstance(value, BolusReply):
        return f"Bolus of {ml(value.volume_ul)} mL started (event #{value.event_seq}), ends {iso(value.ends_ms)}"
    if isinstance(value, RefillReply):
        return (
            f"Refill recorded (event #{value.event_seq}): residual expected {ml(value.expected_residual_ul)} mL, "
            f"withdrawn minus expected {value.discrepancy_ul / UL_PER_ML:+.3f} mL; reservoir now "
            f"{ml(value.reservoir_ul)} mL; next refill {iso(value.next_refill_ms)}"
        )
    if isinstance(value, CommandOutcome):
        return f"Command 0x{value.command_id:08x}: {name(value.fate)}"
    if isinstance(value, str):
        return value
    return f"{type(value).__name__}: {value}"
