"""The words a person reads on a page: every field, enum value, event and refusal, in one place.

Pages never show a wire name (``amplitude_ua``, ``LOW_RESERVOIR``) or a wire unit (µA where the
form is in mA, epoch milliseconds). A field's label comes from ``LABELS`` or, failing that, from
its name; its unit and scale come from the wire name's suffix (``_ua`` is µA, shown in mA), so a
field added to the schema reads as words without an entry here (the tests walk every message
field). An event's title and arguments come from ``EVENTS`` (every ``EventCode`` has one; a test
says so). Pure: no Dash, no link, no store; must not import ``device_mock``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from protocols.ctl_text import clock_time, utc_offset
from protocols.errors import ErrorCode
from protocols.messages import (
    Actor,
    AlarmState,
    BatteryState,
    BolusKind,
    DeviceKind,
    DiaryKind,
    DiarySource,
    DosingMode,
    EventCode,
    Lifecycle,
    MotorState,
    Priority,
)

__all__ = [
    "DIARY_SOURCE_WORDS",
    "DIARY_WORDS",
    "EVENTS",
    "LABELS",
    "LIFECYCLE_WORDS",
    "LINK_WORDS",
    "MESSAGE_WORDS",
    "Unit",
    "device_time",
    "enum_word",
    "event_args",
    "event_title",
    "field_label",
    "field_value",
    "flatten",
    "readback_rows",
    "refusal_text",
    "sentence",
]


@dataclass(frozen=True)
class Unit:
    """How a wire value is shown: multiplied by ``scale``, to ``places`` decimals, then ``symbol``."""

    symbol: str
    scale: float = 1.0
    places: int = 0


TIME = Unit("time")  # ms since epoch: shown as a date and time
# Wire-name suffixes, longest first: the unit a person reads and the scale from the wire unit.
SUFFIXES: tuple[tuple[str, Unit], ...] = (
    ("_ul_per_day", Unit("mL/day", 1e-3, 3)),
    ("_ng_per_ml", Unit("mg/mL", 1e-6, 4)),
    ("_ng_per_day", Unit("mg/day", 1e-6, 4)),
    ("_ng_24h", Unit("mg", 1e-6, 4)),
    ("_pct_x100", Unit("%", 1e-2, 2)),
    ("density_x100", Unit("µC/cm²", 1e-2, 2)),
    ("days_to_recharge_x100", Unit("days", 1e-2, 1)),
    ("_x100", Unit("", 1e-2, 2)),
    ("_ua", Unit("mA", 1e-3, 2)),
    ("_ul", Unit("mL", 1e-3, 3)),
    ("_us", Unit("µs")),
    ("_hz", Unit("Hz")),
    ("_ms", TIME),
    ("_mv", Unit("V", 1e-3, 2)),
    ("_ohm", Unit("Ω")),
    ("_uw", Unit("µW")),
    ("_min", Unit("min")),
    ("_pct", Unit("%")),
    ("_s", Unit("s")),
)
# Labels where the name alone would not say it; any other field reads as its name without the suffix.
LABELS: dict[str, str] = {
    "lifecycle": "Stage of the system",
    "diary_seq": "Newest diary entry",
    "amplitude_ua": "Amplitude",
    "patient_amp_max_ua": "Patient maximum",
    "pulse_width_us": "Pulse width",
    "rate_hz": "Rate",
    "anode_mask": "Anodes",
    "cathode_mask": "Cathodes",
    "burst_pulses": "Pulses per burst",
    "burst_rate_hz": "Rate within a burst",
    "cycle_on_s": "Cycling on",
    "cycle_off_s": "Cycling off",
    "ramp_s": "Ramp-up",
    "program": "Program",
    "active_program": "Active program",
    "therapy_on": "Therapy",
    "impedance_ohm": "Impedance",
    "rate_ul_per_day": "Rate",
    "alarm_volume_ul": "Low-reservoir alarm",
    "reservoir_ul": "Reservoir",
    "capacity_ul": "Capacity",
    "volume_ul": "Volume",
    "dose_ul": "Dose",
    "withdrawn_ul": "Withdrawn residual",
    "added_ul": "Volume added",
    "conc_ng_per_ml": "Concentration",
    "dose_ng_per_day": "Daily dose",
    "bolus_ng_24h": "Boluses in the last 24 h",
    "lockout_min": "Lockout",
    "max_per_day": "Boluses allowed per day",
    "start_min": "Start",
    "utc_offset_min": "Time zone",
    "next_refill_ms": "Next refill",
    "bolus_active": "Bolus running",
    "patient_boluses_today": "Patient boluses in the last 24 h",
    "concentration_confirmed": "New concentrations confirmed",
    "discrepancy_accepted": "Discrepancy accepted",
    "bridge_bolus": "Bridge bolus",
    "time_ms": "Device time",
    "mode": "Mode",
    "infusing": "Infusing",
    "alarms": "Alarms",
    "max_count": "Entries per page",
    "from_seq": "First entry",
    "code": "Alarm",
    "on": "On",
}
# What one item of a list field is called: ``areas[0]`` is "area 1".
ITEMS: dict[str, str] = {
    "areas": "area",
    "steps": "step",
    "drugs": "drug",
    "periodic_boluses": "periodic bolus",
    "impedance_ohm": "contact",
    "alarms": "alarm",
}
# Link states (``dashboard.link.LinkState`` values) as the pages say them.
LINK_WORDS = {"online": "Online", "stale": "Stale", "connecting": "Connecting", "offline": "Offline"}
# Enum values whose words differ from their name.
ENUM_WORDS: dict[tuple[type[IntEnum], int], str] = {
    (DeviceKind, DeviceKind.SCS): "Stimulator",
    (DeviceKind, DeviceKind.PUMP): "Pump",
    (DosingMode, DosingMode.FLEX): "Flex (time of day)",
    (BatteryState, BatteryState.OK): "OK",
    (BatteryState, BatteryState.ERI): "ERI (replace soon)",
    (BatteryState, BatteryState.EOS): "End of service",
    (MotorState, MotorState.OK): "OK",
    (ErrorCode, ErrorCode.OUT_OF_RANGE): "Out of range",
    (ErrorCode, ErrorCode.STATE_CONFLICT): "Not possible now",
    (ErrorCode, ErrorCode.UNSUPPORTED): "Not supported by this device",
    (ErrorCode, ErrorCode.NOT_PERMITTED): "Not permitted",
    (Priority, Priority.NONE): "",
    (AlarmState, AlarmState.NONE): "",
}
_WIRE_TOKEN = re.compile(r"\b[a-z]+(?:\[\d+\])?(?:[._][a-z0-9]+(?:\[\d+\])?)+\b")
_WIRE_ENUM = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
_MICRO = re.compile(r"(-?\d[\d,]*(?:\.\d+)?) ?(µL|µA|µL/day)\b")


def enum_word(value: IntEnum | str | None) -> str:
    """An enum value (or its name, as stored) as words: ``LOW_RESERVOIR`` -> "Low reservoir"."""
    if value is None:
        return ""
    if isinstance(value, EventCode) and value in EVENTS:
        return EVENTS[value][0]
    if isinstance(value, IntEnum):
        special = ENUM_WORDS.get((type(value), int(value)))
        if special is not None:
            return special
        text = value.name
    else:
        text = str(value)
        if text.startswith("0x"):
            return f"Unknown ({text})"
        for enum_cls in (EventCode, Priority, AlarmState, Actor, DosingMode, BolusKind, DeviceKind, ErrorCode):
            if text in enum_cls.__members__:
                return enum_word(enum_cls[text])
    if text.upper() == "SCS":
        return "Stimulator"
    return text.replace("_", " ").lower().capitalize()


def unit_of(name: str) -> Unit | None:
    """The display unit of a wire field name (None: a plain count, flag or name)."""
    for suffix, unit in SUFFIXES:
        if name.endswith(suffix):
            return unit
    return None


def _base(name: str) -> str:
    """The field name without its unit suffix, as words."""
    for suffix, _ in SUFFIXES:
        if name.endswith(suffix) and name != suffix.lstrip("_"):
            name = name[: -len(suffix)]
            break
    return name.replace("_", " ").strip().capitalize()


def field_label(path: str) -> str:
    """A field path of a refusal or a read-back as words: ``areas[0].amplitude_ua`` -> "Amplitude (area 1)"."""
    parts = path.split(".")
    where = []
    for part in parts[:-1]:
        match = re.fullmatch(r"(\w+)\[(\d+)\]", part)
        where.append(_item(match.group(1), int(match.group(2))) if match else LABELS.get(part, _base(part)).lower())
    last = parts[-1]
    match = re.fullmatch(r"(\w+)\[(\d+)\]", last)
    if match:
        label = f"{LABELS.get(match.group(1), _base(match.group(1)))}, {_item(match.group(1), int(match.group(2)))}"
    else:
        label = LABELS.get(last, _base(last))
    return label if not where else f"{label} ({', '.join(where)})"


def _item(list_name: str, index: int) -> str:
    """Item ``index`` of a list field: areas, steps and drugs count from 1, contacts from 0 as on the lead."""
    noun = ITEMS.get(list_name, "item")
    return f"{noun} {index if noun == 'contact' else index + 1}"


def device_time(time_ms: int) -> str:
    """Device time (ms since epoch, UTC) as ``YYYY-MM-DD HH:MM:SS``; empty for 0 or out of range."""
    if not time_ms:
        return ""
    try:
        return dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return ""


def when(time_ms: int) -> str:
    """Device time as a date and time with its zone; "never" for 0."""
    shown = device_time(time_ms)
    return f"{shown} UTC" if shown else "never"


def number(value: float, places: int) -> str:
    """``value`` to at most ``places`` decimals, trailing zeros dropped, thousands grouped."""
    text = f"{value:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _contacts(mask: int) -> str:
    listed = [str(n) for n in range(32) if mask >> n & 1]
    return ", ".join(listed) or "none"


def field_value(path: str, value: Any) -> str:
    """A field's value as a person reads it, in the field's display unit."""
    name = path.rsplit(".", 1)[-1]
    base = re.sub(r"\[\d+\]$", "", name)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return {"therapy_on": "on", "on": "on"}.get(base, "yes") if value else {"therapy_on": "off"}.get(base, "no")
    if isinstance(value, str):
        return enum_word(value)
    if base.endswith("_mask"):
        return _contacts(int(value))
    if base == "utc_offset_min":
        return utc_offset(value)
    if base == "start_min":
        return clock_time(value)
    if base == "impedance_ohm" and value == 65535:
        return "open"
    unit = unit_of(base)
    if isinstance(value, (list, tuple)):
        return ", ".join(field_value(f"{base}[{i}]", v) for i, v in enumerate(value)) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{field_label(k)} {field_value(k, v)}" for k, v in value.items())
    if unit is TIME:
        return when(int(value))
    if unit is None:
        return number(value, 0) if isinstance(value, int) else str(value)
    shown = number(value * unit.scale, unit.places)
    return f"{shown} {unit.symbol}".strip()


# Requests as a person names them (a device's reason may name the message it refused).
MESSAGE_WORDS = {
    "StimProgramSet": "a stimulation program",
    "TherapySet": "therapy on or off",
    "ImpedanceCheck": "an impedance check",
    "ProgramSelect": "a program change",
    "AmplitudeSet": "an amplitude change",
    "ChargingSet": "charging",
    "DosingSet": "dosing",
    "Bolus": "a bolus",
    "Refill": "a refill",
    "AlarmTest": "an alarm test",
    "ClockSet": "a clock change",
    "AlarmAck": "an alarm acknowledgement",
}
_CAMEL = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b")
_KINDS = re.compile(r"\b(SCS|PUMP)\b")


_LIMIT = re.compile(r"\(([a-z][\w\[\].]*)=(-?\d+), limit (-?\d+)\)")


def sentence(text: str) -> str:
    """A device's reason made readable: wire names as words, µL and µA in mL and mA, a capital."""
    text = _LIMIT.sub(
        lambda m: f"({field_label(m[1]).lower()} {field_value(m[1], int(m[2]))}, limit {field_value(m[1], int(m[3]))})",
        text,
    )
    text = _CAMEL.sub(
        lambda m: MESSAGE_WORDS.get(m.group(0), re.sub(r"(?<!^)([A-Z])", r" \1", m.group(0)).lower()), text
    )
    text = _KINDS.sub(lambda m: "stimulator" if m.group(1) == "SCS" else "pump", text)
    text = _MICRO.sub(_micro_to_milli, text)
    text = _WIRE_TOKEN.sub(lambda m: field_label(m.group(0)).lower() if "_" in m.group(0) else m.group(0), text)
    text = _WIRE_ENUM.sub(lambda m: enum_word(m.group(0)).lower(), text)
    return text[:1].upper() + text[1:] if text else text


def _micro_to_milli(match: re.Match[str]) -> str:
    value = float(match.group(1).replace(",", ""))
    unit = {"µL": "mL", "µA": "mA", "µL/day": "mL/day"}[match.group(2)]
    return f"{number(value / 1000, 3)} {unit}"


def refusal_text(code: str, message: str, field: str | None, value: int | None, limit: int | None) -> str:
    """Why the device refused, as a sentence in the form's units.

    With a field and numbers: "Amplitude (area 1) 30 mA is above the maximum 25.5 mA"; the device's
    own reason follows when it says more than that. Without: the device's reason, made readable.
    """
    reason = sentence(message or "")
    if not field or value is None or limit is None or (value == limit == 0):
        return reason or enum_word(code)
    label, shown, bound = field_label(field), field_value(field, value), field_value(field, limit)
    if field.endswith("patient_amp_max_ua") and value < limit:
        head = f"{label} {shown} is below the amplitude {bound}: the patient maximum must be at least the amplitude"
    elif unit_of(field.rsplit(".", 1)[-1]) is None and not isinstance(value, int):
        return reason
    elif value > limit:
        head = f"{label} {shown} is above the maximum {bound}"
    elif value < limit:
        head = f"{label} {shown} is below the minimum {bound}"
    else:
        head = f"{label} {shown} is not allowed"
    generic = re.match(rf"^{re.escape(field)} -?\d", message or "") is not None
    return head if generic or not reason else f"{head}: {reason[:1].lower()}{reason[1:]}"


def flatten(path: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    """Nested JSON (records, lists of records) as ``{field path: leaf value}`` added to ``out``."""
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(f"{path}.{key}" if path else key, item, out)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            flatten(f"{path}[{i}]", item, out)
    else:
        out[path] = value
    return out


def readback_rows(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(setting, before, after) for each setting the read-back shows changed, in the form's units."""
    flat_before: dict[str, Any] = {}
    flat_after: dict[str, Any] = {}
    for key in after:
        flatten(key, before.get(key), flat_before)
        flatten(key, after[key], flat_after)

    def emptied(path: str, other: dict[str, Any]) -> bool:  # an empty list on one side, its items on the other
        return any(key.startswith((f"{path}[", f"{path}.")) for key in other)

    rows = []
    for path, new in flat_after.items():
        old = flat_before.get(path)
        if old != new and not (old is None and emptied(path, flat_before)):
            rows.append((field_label(path), field_value(path, old), field_value(path, new)))
    for path, old in flat_before.items():
        if path not in flat_after and old is not None and not emptied(path, flat_after):
            rows.append((field_label(path), field_value(path, old), "—"))
    return rows


# --- events --------------------------------------------------------------------------------------
def _battery(arg0: int, arg1: int) -> str:
    return f"battery {number(arg0 / 100, 1)} %, {arg1 / 1000:.2f} V"


def _none(arg0: int, arg1: int) -> str:
    return ""


def _session(arg0: int, arg1: int) -> str:
    return f"session {arg0 & 0xFFFF_FFFF:08x}"


def _ml(ul: int) -> str:
    return f"{number(ul / 1000, 3)} mL"


def _clock(arg0: int, arg1: int) -> str:
    moved = -arg0  # arg0 is old - new, s
    size = _duration(abs(moved))
    return f"clock moved {size} {'forward' if moved >= 0 else 'back'}"


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86_400:
        return f"{number(seconds / 3600, 1)} h"
    return f"{number(seconds / 86_400, 1)} days"


def _bolus_kind(arg1: int) -> str:
    try:
        return f"{BolusKind(arg1).name.lower()} bolus"
    except ValueError:
        return "bolus"


def _denied(arg0: int, arg1: int) -> str:
    why = {1: "lockout", 2: "the daily maximum is reached", 3: "a drug's 24-hour cap would be passed"}
    text = why.get(arg0, "refused")
    return f"{text}, allowed in {arg1} min" if arg1 else text


def _refill(arg0: int, arg1: int) -> str:
    if arg1 == 0:
        return f"reservoir {_ml(arg0)}, residual as expected"
    return f"reservoir {_ml(arg0)}, residual {_ml(abs(arg1))} {'more' if arg1 > 0 else 'less'} than expected"


def _mode(value: int) -> str:
    try:
        return enum_word(DosingMode(value)).lower()
    except ValueError:
        return f"mode {value}"


def _code(value: int) -> str:
    try:
        return event_title(EventCode(value)).lower()
    except ValueError:
        return f"event 0x{value:04x}"


def _flood(arg0: int, arg1: int) -> str:
    if arg1:
        return f"{arg0} frames dropped over {_duration(arg1)}"
    return f"more than {arg0} frames a second outside the session"


Args = Callable[[int, int], str]
# Title and the meaning of arg0/arg1 (SPEC section 9) for every event code.
# The words of a diary entry (SPEC 4.7): what it scores, and its value in that instrument's terms.
_ASHWORTH = ("0", "1", "1+", "2", "3", "4")
_PGIC = (
    "",
    "no change",
    "almost the same",
    "a little better",
    "somewhat better",
    "moderately better",
    "better",
    "a great deal better",
)
DIARY_WORDS: dict[DiaryKind, tuple[str, Callable[[int], str]]] = {
    DiaryKind.NRS: ("Pain", lambda v: f"{v} of 10"),
    DiaryKind.MEDICATION: ("Analgesics", lambda v: f"{v} mg morphine equivalents a day"),
    DiaryKind.PGIC: ("Impression of change", lambda v: f"{v} of 7 ({_PGIC[v] if 0 < v < 8 else 'out of range'})"),
    DiaryKind.ODI: ("Disability (ODI)", lambda v: f"{v} of 100"),
    DiaryKind.MAS: ("Spasticity (Ashworth)", lambda v: f"grade {_ASHWORTH[v] if 0 <= v < 6 else v}"),
    DiaryKind.SIDE_EFFECTS: ("Side effects", lambda v: f"{v} of 10"),
    DiaryKind.RELIEF: ("Relief the patient reports", lambda v: f"{v} %"),
}
DIARY_SOURCE_WORDS = {
    DiarySource.CONTROLLER: "Patient's controller",
    DiarySource.PATIENT: "Typed by the patient",
    DiarySource.CLINICIAN: "Typed by a clinician",
}

# The words of a Lifecycle (SPEC 4.7).
LIFECYCLE_WORDS = {
    Lifecycle.TRIAL: "In a trial",
    Lifecycle.IMPLANTED: "Implanted",
    Lifecycle.TRIAL_ENDED: "Trial ended without an implant",
    Lifecycle.EXPLANTED: "Explanted",
}


def _lifecycle(new: int, old: int) -> str:
    words = {int(k): v.lower() for k, v in LIFECYCLE_WORDS.items()}
    if not old:
        return f"a new system, {words.get(new, 'unknown')}"
    return f"{words.get(old, 'unknown')} -> {words.get(new, 'unknown')}"


EVENTS: dict[EventCode, tuple[str, Args]] = {
    EventCode.DEVICE_RESET: ("Device reset", _none),
    EventCode.SESSION_OPENED: ("Session opened", _session),
    EventCode.SESSION_CLOSED: ("Session closed", _session),
    EventCode.SESSION_EXPIRED: ("Session expired", _session),
    EventCode.AUTH_FAILURE: ("Authentication failed", _session),
    EventCode.LOCKOUT: ("Locked out after failed log-ins", lambda a, b: f"for {_duration(a)}"),
    EventCode.CLOCK_SET: ("Clock set", _clock),
    EventCode.LIFECYCLE_CHANGED: ("Stage of the system changed", _lifecycle),
    EventCode.ALARM_ACKNOWLEDGED: ("Alarm acknowledged", lambda a, b: _code(a)),
    EventCode.COMM_ERROR: ("Communication error", _none),
    EventCode.TELEMETRY_FLOOD: ("Too many frames outside the session", _flood),
    EventCode.ALARM_TEST: ("Alarm test", lambda a, b: f"tones for {number(a / 1000, 1)} s"),
    EventCode.MEMORY_ERROR: ("Critical memory error: delivery stopped", _none),
    EventCode.MEMORY_ERROR_MINOR: ("Memory error (delivery goes on)", _none),
    EventCode.BATTERY_LOW: ("Battery low", _battery),
    EventCode.RECHARGE_NOW: ("Recharge now", _battery),
    EventCode.BATTERY_ERI: ("Battery ERI: replace soon", _battery),
    EventCode.BATTERY_EOS: ("Battery end of service: therapy stopped", _battery),
    EventCode.CHARGING_STARTED: ("Charging started", _battery),
    EventCode.CHARGING_COMPLETE: ("Charging ended", _battery),
    EventCode.BATTERY_FAILURE: ("Battery failure", _battery),
    EventCode.BATTERY_REDUCED_PERFORMANCE: ("Battery cannot drive the flow: rate at minimum", _battery),
    EventCode.THERAPY_ON: ("Stimulation on", _none),
    EventCode.THERAPY_OFF: ("Stimulation off", _none),
    EventCode.PROGRAM_CHANGED: (
        "Program stored",
        lambda a, b: f"program {a}, amplitude {number(b / 1000, 2)} mA",
    ),
    EventCode.IMPEDANCE_MEASURED: ("Impedance measured", _none),
    EventCode.LEAD_OPEN: ("Lead open", lambda a, b: f"contact {a}, {'open' if b == 65535 else f'{b:,} Ω'}"),
    EventCode.LEAD_SHORT: ("Lead short", lambda a, b: f"contact {a}, {b:,} Ω"),
    EventCode.LEAD_DISCONNECTED: (
        "Trial lead disconnected",
        lambda a, b: f"lead {a + 1}, {b} contacts without current",
    ),
    EventCode.CHARGE_DENSITY_LIMIT: ("Charge density could pass the limit at the patient maximum", _none),
    EventCode.AMPLITUDE_CHANGED: ("Amplitude changed", lambda a, b: f"area {a + 1}, {number(b / 1000, 2)} mA"),
    EventCode.PROGRAM_SELECTED: (
        "Program selected",
        lambda a, b: f"program {a}" + (f" (was {b})" if b else ""),
    ),
    EventCode.LOW_RESERVOIR: ("Low reservoir", lambda a, b: f"reservoir {_ml(a)}, alarm at {_ml(b)}"),
    EventCode.EMPTY_RESERVOIR: ("Empty reservoir: delivery stopped", lambda a, b: f"alarm at {_ml(b)}"),
    EventCode.MOTOR_STALL: ("Motor stalled: delivery stopped", _none),
    EventCode.MOTOR_STALL_RECOVERY: ("Motor running again", _none),
    EventCode.OCCLUSION: ("Catheter occlusion", _none),
    EventCode.DOSING_CHANGED: (
        "Dosing changed",
        lambda a, b: f"{number(a / 1000, 3)} mL/day, {_mode(b)}",
    ),
    EventCode.BOLUS_STARTED: ("Bolus started", lambda a, b: f"{_ml(a)}, {_bolus_kind(b)}"),
    EventCode.BOLUS_COMPLETE: ("Bolus ended", lambda a, b: f"{_ml(a)} delivered, {_bolus_kind(b)}"),
    EventCode.PATIENT_BOLUS_DENIED: ("Patient bolus denied", _denied),
    EventCode.REFILL: ("Refilled", _refill),
    EventCode.REFILL_DISCREPANCY: ("Refill discrepancy accepted", _refill),
    EventCode.PUMP_STOPPED: ("Pump stopped", _none),
    EventCode.PUMP_STARTED: ("Pump started", _none),
    EventCode.MRI_MODE_ON: (
        "MRI mode on",
        lambda a, b: f"program {a}, stimulation {'stays on' if b else 'off'} during the scan",
    ),
    EventCode.MRI_MODE_OFF: ("MRI mode off", lambda a, b: f"program {a}, stimulation {'on' if b else 'off'}"),
    EventCode.MRI_SUSPEND: (
        "Motor stopped by a magnetic field (MRI)",
        lambda a, b: f"scan of {a} min" if a else "until the scan is ended",
    ),
    EventCode.MRI_RESUME: ("Motor running again after the MRI", lambda a, b: f"delivery held {_duration(a)}"),
    EventCode.FAV_CLOSED: ("Flow-activated valve closed (MRI)", lambda a, b: f"{number(a / 1000, 3)} mL passed first"),
    EventCode.FAV_RESET: ("Flow-activated valve reset", lambda a, b: f"{number(a / 1000, 3)} mL passed in the field"),
    EventCode.MRI_CHECKED: ("Pump checked after the MRI", _none),
    EventCode.DENSITY_OVERRIDE: (
        "Charge density limit overridden by the clinician",
        lambda a, b: f"{number(a / 100, 2)} µC/cm² per phase, limit {number(b / 100, 2)}",
    ),
    EventCode.CONTACTS_DISABLED: (
        "Contacts turned off after a short",
        lambda a, b: f"contacts {_contacts(a)} off" if a else "every contact on again",
    ),
    EventCode.REPLACEMENT_ADVISED: (
        "Replacement advised: plan the surgery",
        lambda a, b: f"{a} days to the projected stop, battery {number(b / 100, 1)} %",
    ),
    EventCode.BATTERY_DEEP_DISCHARGE: (
        "Battery damaged: left flat too long",
        lambda a, b: f"flat for {a} days, {b / 1000:.2f} V",
    ),
}


def event_title(code: EventCode | int | str) -> str:
    """What an event is called on a page."""
    if isinstance(code, str):
        if code in EventCode.__members__:
            code = EventCode[code]
        else:
            return enum_word(code)
    try:
        code = EventCode(code)
    except ValueError:
        return f"Unknown event (0x{int(code):04x})"
    entry = EVENTS.get(code)
    return entry[0] if entry else enum_word(code)


def event_args(code: EventCode | int | str, arg0: int, arg1: int) -> str:
    """What an event's two arguments mean, as words ("battery 25 %, 3.50 V"); empty when they mean nothing."""
    try:
        code = EventCode[code] if isinstance(code, str) else EventCode(code)
    except (KeyError, ValueError):
        return f"{arg0}, {arg1}" if arg0 or arg1 else ""
    entry = EVENTS.get(code)
    if entry is None:
        return f"{arg0}, {arg1}" if arg0 or arg1 else ""
    return entry[1](arg0, arg1)
