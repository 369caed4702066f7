"""Every message of the protocol: enums, records and one frozen dataclass per message type.

Each field is ``Annotated[type, WIRE_TYPE, "meaning, unit"]``: the one source of the byte layout,
the schema fingerprint and the field tables of SPEC.md. Units are integers scaled as named: µA,
µs, Hz, µL, ng (drug mass), 0.01 % (``_x100``), milliseconds since the Unix epoch on the device's
clock (``_ms``; 0 = not known or not applicable). Nothing here knows about frames or keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Annotated, ClassVar

from .errors import ErrorCode
from .fields import BOOL, I16, I32, I64, U8, U16, U32, U64, Blob, Enum, FixedBytes, ListOf, Record, Text

NONCE_SIZE = 16
OPEN_PROOF_SIZE = 16
MAX_AREAS = 4
MAX_CONTACTS = 32
MAX_ALARMS = 8
MAX_DRUGS = 4
MAX_FLEX_STEPS = 12
MAX_PERIODIC_BOLUSES = 12  # periodic boluses of a flex day, as many as its steps [E]
EVENTS_PER_PAGE = 8
DIGEST_SIZE = 16
MASKED_PROGRAMS = 16  # program numbers a u16 stored_programs mask can name
MAX_STORED_REPLY = 248  # 255 less CommandOutcome's other fields


class MsgType(IntEnum):
    """Message type byte. Requests are below 0x80; device replies and pushes are 0x80 and above."""

    IDENTIFY_REQUEST = 0x01
    SESSION_OPEN = 0x02
    SESSION_CONFIRM = 0x03
    SESSION_CLOSE = 0x04
    STATUS_REQUEST = 0x10
    EVENT_LOG_READ = 0x11
    ALARM_ACK = 0x12
    CLOCK_READ = 0x13
    CLOCK_SET = 0x14
    COMMAND_QUERY = 0x15
    ALARM_TEST = 0x16
    LIFECYCLE_SET = 0x17
    DIARY_READ = 0x18
    DIARY_ADD = 0x19
    STIM_PROGRAM_SET = 0x20
    THERAPY_SET = 0x21
    IMPEDANCE_CHECK = 0x22
    PROGRAM_SELECT = 0x23
    AMPLITUDE_SET = 0x24
    CHARGING_SET = 0x25
    PROGRAM_READ = 0x26
    MRI_MODE_SET = 0x27
    DOSING_SET = 0x30
    BOLUS = 0x31
    REFILL = 0x32
    SCHEDULE_READ = 0x33
    MRI_CHECK_DONE = 0x34
    IDENTIFY_REPLY = 0x81
    SESSION_CHALLENGE = 0x82
    COMMAND_ACK = 0x83
    SCS_STATUS = 0x90
    PUMP_STATUS = 0x91
    EVENT_LOG_PAGE = 0x92
    CLOCK_REPLY = 0x93
    COMMAND_OUTCOME = 0x94
    DIARY_PAGE = 0x95
    IMPEDANCE_REPLY = 0xA2
    PROGRAM_REPLY = 0xA6
    BOLUS_REPLY = 0xB1
    REFILL_REPLY = 0xB2
    SCHEDULE_REPLY = 0xB3
    EVENT_PUSH = 0xE0
    DIARY_PUSH = 0xE1
    ERROR_REPLY = 0xFF


class CommandFate(IntEnum):
    """What became of a mutating request (``CommandOutcome``)."""

    HANDLED = 1  # the device handled it once; the stored reply says how (an ErrorReply if refused)
    NOT_HANDLED = 2  # it never reached the handler; its command id is now retired, so it never will


class Actor(IntEnum):
    """Who acts: the role of a session (by the pairing key it proved), or the device itself."""

    DEVICE = 0  # the device's own doing (time, faults, scans); never a session's role
    CLINICIAN = 1  # the clinician's programmer: every command
    PATIENT = 2  # the patient's controller: the commands SPEC 3.8 lists, within the patient limits


class DeviceKind(IntEnum):
    """What the device is."""

    SCS = 1
    PUMP = 2


class Capability(IntFlag):
    """Bits of ``IdentifyReply.capabilities``."""

    STIMULATION = 0x01
    DRUG_DELIVERY = 0x02
    RECHARGEABLE = 0x04
    EVENT_PUSH = 0x08
    CLOCK_SET = 0x10
    IMPEDANCE = 0x20
    PATIENT_BOLUS = 0x40
    DIARY = 0x80  # the patient's controller diary is served on this link (SPEC 4.7)


class Priority(IntEnum):
    """Alarm priority after IEC 60601-1-8; NONE for events that are not alarms."""

    NONE = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class AlarmState(IntEnum):
    """Alarm condition state; NONE for events that are not alarms."""

    NONE = 0
    ACTIVE = 1
    ACKNOWLEDGED = 2
    CLEARED = 3


class EventCode(IntEnum):
    """Codes of event-log entries and alarms (u16). 0x00xx general, 0x01xx battery, 0x02xx SCS, 0x03xx pump."""

    DEVICE_RESET = 0x0001
    SESSION_OPENED = 0x0002
    SESSION_CLOSED = 0x0003
    SESSION_EXPIRED = 0x0004
    AUTH_FAILURE = 0x0005
    LOCKOUT = 0x0006
    CLOCK_SET = 0x0007
    ALARM_ACKNOWLEDGED = 0x0008
    COMM_ERROR = 0x0009
    TELEMETRY_FLOOD = 0x000A
    ALARM_TEST = 0x000B
    MEMORY_ERROR = 0x000C
    LIFECYCLE_CHANGED = 0x000D
    MEMORY_ERROR_MINOR = 0x0010
    BATTERY_LOW = 0x0100
    RECHARGE_NOW = 0x0101
    BATTERY_ERI = 0x0102
    BATTERY_EOS = 0x0103
    CHARGING_STARTED = 0x0104
    CHARGING_COMPLETE = 0x0105
    BATTERY_FAILURE = 0x0106
    BATTERY_REDUCED_PERFORMANCE = 0x0107
    REPLACEMENT_ADVISED = 0x0108
    BATTERY_DEEP_DISCHARGE = 0x0109
    THERAPY_ON = 0x0200
    THERAPY_OFF = 0x0201
    PROGRAM_CHANGED = 0x0202
    IMPEDANCE_MEASURED = 0x0203
    LEAD_OPEN = 0x0204
    LEAD_SHORT = 0x0205
    CHARGE_DENSITY_LIMIT = 0x0206
    DENSITY_OVERRIDE = 0x0207
    CONTACTS_DISABLED = 0x0208
    AMPLITUDE_CHANGED = 0x020B
    PROGRAM_SELECTED = 0x020C
    MRI_MODE_ON = 0x020D
    MRI_MODE_OFF = 0x020E
    LEAD_DISCONNECTED = 0x020F
    LOW_RESERVOIR = 0x0300
    EMPTY_RESERVOIR = 0x0301
    MOTOR_STALL = 0x0302
    MOTOR_STALL_RECOVERY = 0x0303
    OCCLUSION = 0x0304
    DOSING_CHANGED = 0x0305
    BOLUS_STARTED = 0x0306
    BOLUS_COMPLETE = 0x0307
    PATIENT_BOLUS_DENIED = 0x0308
    REFILL = 0x0309
    REFILL_DISCREPANCY = 0x030A
    PUMP_STOPPED = 0x030B
    PUMP_STARTED = 0x030C
    MRI_SUSPEND = 0x030D
    MRI_RESUME = 0x030E
    FAV_CLOSED = 0x030F
    FAV_RESET = 0x0310
    MRI_CHECKED = 0x0311


class ToneKind(IntEnum):
    """An alarm sound of a device with a sounder (SynchroMed-style pump)."""

    NONE = 0
    SINGLE = 1  # non-critical: one tone
    DUAL = 2  # critical: two alternating tones


class BatteryKind(IntEnum):
    """Primary cell or rechargeable."""

    PRIMARY = 1
    RECHARGEABLE = 2


class BatteryState(IntEnum):
    """Battery status as a programmer shows it."""

    OK = 0
    LOW = 1
    RECHARGE_NOW = 2
    ERI = 3
    EOS = 4
    FAILED = 5


class Waveform(IntEnum):
    """Stimulation waveform family of an area."""

    TONIC = 1
    BURST = 2
    HIGH_FREQUENCY = 3


class DosingMode(IntEnum):
    """Pump infusion mode."""

    STOPPED = 0
    CONTINUOUS = 1
    FLEX = 2


class BolusKind(IntEnum):
    """Who or what a bolus is for."""

    CLINICIAN = 1
    PATIENT = 2
    BRIDGE = 3
    PRIMING = 4


class MotorState(IntEnum):
    """Pump drive state."""

    OK = 0
    STALLED = 1
    OCCLUDED = 2


class Drug(IntEnum):
    """Intrathecal drugs the pump can hold."""

    MORPHINE = 1
    HYDROMORPHONE = 2
    BUPIVACAINE = 3
    CLONIDINE = 4
    ZICONOTIDE = 5
    BACLOFEN = 6
    SUFENTANIL = 7
    FENTANYL = 8


class Lifecycle(IntEnum):
    """Where the therapy system is in its life (SPEC 4.7)."""

    TRIAL = 1  # a trial: an external stimulator on temporary leads, or an intrathecal test dose
    IMPLANTED = 2
    TRIAL_ENDED = 3  # the trial ended without an implant: the trial system is removed
    EXPLANTED = 4  # the implanted system was removed


class DiaryKind(IntEnum):
    """The instrument a diary entry scores; the value's unit follows from it (SPEC 4.7)."""

    NRS = 1  # pain now, 0-10
    MEDICATION = 2  # analgesics taken today, mg morphine equivalents
    PGIC = 3  # Patient Global Impression of Change: 1 no change (or worse) .. 7 a great deal better
    ODI = 4  # Oswestry Disability Index, 0-100
    MAS = 5  # Modified Ashworth Scale grade 0, 1, 1+, 2, 3, 4 as index 0-5
    SIDE_EFFECTS = 6  # burden 0-10
    RELIEF = 7  # relief the patient reports, % (0-100)


class DiarySource(IntEnum):
    """Who wrote a diary entry."""

    CONTROLLER = 0  # the patient, through their controller (the emulator plays both)
    PATIENT = 1  # typed into a host in a patient session
    CLINICIAN = 2  # typed into a host in a clinician session


# --- records (inline structures, not messages) ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class Area:
    """One stimulation area: contact polarities and pulse parameters."""

    anode_mask: Annotated[int, U32, "bit n set: contact n is an anode"]
    cathode_mask: Annotated[int, U32, "bit n set: contact n is a cathode"]
    amplitude_ua: Annotated[int, U16, "amplitude, µA"]
    pulse_width_us: Annotated[int, U16, "pulse width, µs"]
    rate_hz: Annotated[int, U16, "pulse (tonic, HF) or burst (burst) rate, Hz"]
    waveform: Annotated[Waveform, Enum(Waveform), "waveform family"]
    burst_pulses: Annotated[int, U8, "pulses per burst (burst only, else 0)"]
    burst_rate_hz: Annotated[int, U16, "intra-burst pulse rate, Hz (burst only, else 0)"]
    cycle_on_s: Annotated[int, U16, "cycling on time, s (0 = continuous)"]
    cycle_off_s: Annotated[int, U16, "cycling off time, s"]


@dataclass(frozen=True, slots=True)
class ActiveAlarm:
    """An alarm that is active or acknowledged (not yet cleared)."""

    code: Annotated[EventCode, Enum(EventCode, "H"), "alarm condition"]
    priority: Annotated[Priority, Enum(Priority), "priority"]
    state: Annotated[AlarmState, Enum(AlarmState), "ACTIVE or ACKNOWLEDGED"]


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the device's numbered, non-volatile event log."""

    seq: Annotated[int, U32, "sequence number, from 1, no gaps"]
    time_ms: Annotated[int, U64, "device time of the event, ms since epoch"]
    code: Annotated[EventCode, Enum(EventCode, "H"), "what happened"]
    priority: Annotated[Priority, Enum(Priority), "alarm priority, NONE for plain events"]
    state: Annotated[AlarmState, Enum(AlarmState), "alarm state this entry records"]
    arg0: Annotated[int, I32, "first argument, meaning by code (SPEC.md)"]
    arg1: Annotated[int, I32, "second argument, meaning by code (SPEC.md)"]
    actor: Annotated[Actor, Enum(Actor), "who made it happen: the session's role, DEVICE for the device's own"]


@dataclass(frozen=True, slots=True)
class DiaryRecord:
    """One entry of the patient's diary, numbered like the event log (SPEC 4.7)."""

    seq: Annotated[int, U32, "sequence number, from 1, no gaps"]
    time_ms: Annotated[int, U64, "device time the score is for, ms since epoch"]
    kind: Annotated[DiaryKind, Enum(DiaryKind), "instrument"]
    value: Annotated[int, U16, "score in the instrument's unit"]
    source: Annotated[DiarySource, Enum(DiarySource), "who wrote it"]


@dataclass(frozen=True, slots=True)
class DrugLevel:
    """A drug in the reservoir with its concentration and the daily dose the current rate gives."""

    drug: Annotated[Drug, Enum(Drug), "drug"]
    conc_ng_per_ml: Annotated[int, U32, "concentration, ng/mL"]
    dose_ng_per_day: Annotated[int, U32, "dose of the programmed 24 h (flex steps, periodic boluses), ng/day"]
    bolus_ng_24h: Annotated[int, U32, "boluses started in the last 24 h, ng (they count against the daily cap)"]


@dataclass(frozen=True, slots=True)
class DrugConcentration:
    """A drug of a refill and its concentration."""

    drug: Annotated[Drug, Enum(Drug), "drug"]
    conc_ng_per_ml: Annotated[int, U32, "concentration, ng/mL"]


@dataclass(frozen=True, slots=True)
class FlexStep:
    """One step of a daily flex schedule: from ``start_min`` on, infuse at ``rate_ul_per_day``."""

    start_min: Annotated[int, U16, "minute of day the step starts, 0-1439"]
    rate_ul_per_day: Annotated[int, U32, "rate during the step, µL/day"]


@dataclass(frozen=True, slots=True)
class PeriodicBolus:
    """A bolus of a flex day: ``volume_ul`` over ``duration_min`` from ``start_min`` (local time), daily."""

    start_min: Annotated[int, U16, "minute of the local day the bolus starts, 0-1439"]
    volume_ul: Annotated[int, U32, "volume, µL"]
    duration_min: Annotated[int, U16, "delivery time, min"]


@dataclass(frozen=True, slots=True)
class PatientBolusSettings:
    """Patient-activated bolus (PTM) settings."""

    enabled: Annotated[bool, BOOL, "patient bolus allowed"]
    dose_ul: Annotated[int, U32, "volume per bolus, µL"]
    duration_min: Annotated[int, U16, "bolus duration, min"]
    lockout_min: Annotated[int, U16, "minimum time between boluses, min"]
    max_per_day: Annotated[int, U8, "boluses allowed per 24 h"]


# --- messages ------------------------------------------------------------------------------------
class Message:
    """Base of all messages. ``TYPE`` is the type byte; requests also name their reply types."""

    TYPE: ClassVar[MsgType]
    NEEDS_SESSION: ClassVar[bool] = True
    MUTATING: ClassVar[bool] = False
    # A PATIENT session may send every request that changes nothing, and the mutating ones that
    # set this (SPEC 3.8); the device then holds them to the patient's limits.
    PATIENT_MAY: ClassVar[bool] = False
    REPLIES: ClassVar[tuple[MsgType, ...]] = (MsgType.COMMAND_ACK,)


@dataclass(frozen=True, slots=True)
class IdentifyRequest(Message):
    """Ask the device who it is. Answered without a session (so is SessionOpen, section 3.5)."""

    TYPE = MsgType.IDENTIFY_REQUEST
    NEEDS_SESSION = False
    REPLIES = (MsgType.IDENTIFY_REPLY,)


@dataclass(frozen=True, slots=True)
class IdentifyReply(Message):
    """Who the device is, and which protocol and schema it speaks."""

    TYPE = MsgType.IDENTIFY_REPLY
    kind: Annotated[DeviceKind, Enum(DeviceKind), "device kind"]
    model: Annotated[str, Text(24), "model name"]
    serial: Annotated[str, Text(16), "serial number"]
    firmware: Annotated[str, Text(16), "firmware version"]
    protocol_version: Annotated[int, U8, "protocol version spoken"]
    schema_fingerprint: Annotated[int, U32, "schema fingerprint (SPEC.md)"]
    capabilities: Annotated[int, U32, "Capability bits"]
    max_payload: Annotated[int, U16, "largest payload accepted, bytes"]
    lifecycle: Annotated[Lifecycle, Enum(Lifecycle), "trial, implanted, trial ended or explanted (SPEC 4.7)"] = (
        Lifecycle.IMPLANTED
    )


@dataclass(frozen=True, slots=True)
class SessionOpen(Message):
    """Step 1 of the handshake: the host's nonce and its proof of the pairing key (SPEC 3.5).

    Sent without a session and without a tag. ``open_proof`` lets the device tell a key holder
    from a guessing attacker before it creates a session or applies its lockout.
    """

    TYPE = MsgType.SESSION_OPEN
    NEEDS_SESSION = False
    REPLIES = (MsgType.SESSION_CHALLENGE,)
    host_nonce: Annotated[bytes, FixedBytes(NONCE_SIZE), "random host nonce, never used before"]
    open_proof: Annotated[
        bytes, FixedBytes(OPEN_PROOF_SIZE), 'first 16 bytes of HMAC-SHA256(K, "implant-telemetry/1 open" || host_nonce)'
    ]


@dataclass(frozen=True, slots=True)
class SessionChallenge(Message):
    """Step 2: the device's nonce and limits, tagged with the new session's device key."""

    TYPE = MsgType.SESSION_CHALLENGE
    device_nonce: Annotated[bytes, FixedBytes(NONCE_SIZE), "random device nonce"]
    idle_timeout_s: Annotated[int, U16, "session ends after this long without a valid frame, s"]
    absolute_timeout_s: Annotated[int, U16, "session ends this long after opening, s"]
    role: Annotated[Actor, Enum(Actor), "the session's role: whose pairing key the open proved"]


@dataclass(frozen=True, slots=True)
class SessionConfirm(Message):
    """Step 3: empty, tagged with the host key; proves the host holds the pairing key."""

    TYPE = MsgType.SESSION_CONFIRM


@dataclass(frozen=True, slots=True)
class SessionClose(Message):
    """End the session."""

    TYPE = MsgType.SESSION_CLOSE


@dataclass(frozen=True, slots=True)
class CommandAck(Message):
    """Success reply of a command with nothing else to report."""

    TYPE = MsgType.COMMAND_ACK
    event_seq: Annotated[int, U32, "event-log entry recording the command, 0 if none"]


@dataclass(frozen=True, slots=True)
class StatusRequest(Message):
    """Ask for a full telemetry snapshot."""

    TYPE = MsgType.STATUS_REQUEST
    REPLIES = (MsgType.SCS_STATUS, MsgType.PUMP_STATUS)


@dataclass(frozen=True, slots=True)
class ScsStatus(Message):
    """Telemetry snapshot of a spinal cord stimulator."""

    TYPE = MsgType.SCS_STATUS
    time_ms: Annotated[int, U64, "device time, ms since epoch"]
    therapy_on: Annotated[bool, BOOL, "stimulation delivered"]
    active_program: Annotated[int, U8, "active program number"]
    areas: Annotated[tuple[Area, ...], ListOf(Area, MAX_AREAS), "areas of the active program"]
    patient_amp_max_ua: Annotated[int, U16, "highest amplitude the patient may select, µA"]
    battery_kind: Annotated[BatteryKind, Enum(BatteryKind), "battery kind"]
    battery_state: Annotated[BatteryState, Enum(BatteryState), "battery state"]
    battery_pct_x100: Annotated[int, U16, "state of charge (rechargeable) or remaining capacity, 0.01 %"]
    battery_mv: Annotated[int, U16, "cell voltage, mV"]
    charging: Annotated[bool, BOOL, "a charging session is running"]
    coupling_pct: Annotated[int, U8, "charger coupling, %, 0 when not charging"]
    capacity_pct_x100: Annotated[int, U16, "capacity left after fade, 0.01 % of new"]
    days_to_recharge_x100: Annotated[int, U32, "days until a recharge is due, 0.01 d (0 for primary)"]
    eri_ms: Annotated[int, U64, "projected ERI time, ms since epoch"]
    eos_ms: Annotated[int, U64, "projected end-of-service time, ms since epoch"]
    tissue_power_uw: Annotated[int, U32, "power delivered to tissue, µW"]
    charge_density_x100: Annotated[int, U16, "highest charge density, 0.01 µC/cm²/phase"]
    impedance_ohm: Annotated[tuple[int, ...], ListOf(U16, MAX_CONTACTS), "last impedance per contact, Ω (65535 = open)"]
    alarms: Annotated[tuple[ActiveAlarm, ...], ListOf(ActiveAlarm, MAX_ALARMS), "alarms not cleared"]
    last_event_seq: Annotated[int, U32, "newest event-log sequence number"]
    stored_programs: Annotated[int, U16, "bit n-1 set: program n is stored (ProgramRead reads it)"]
    mri_mode: Annotated[bool, BOOL, "MRI mode is on (SPEC 4.5): programming and therapy on are refused"]
    shannon_k_x100: Annotated[int, I16, "highest Shannon k of the active program's areas, 0.01 (0 = none)"] = 0
    disabled_contacts: Annotated[int, U32, "bit n set: contact n is off, its last check read a short"] = 0
    lifecycle: Annotated[Lifecycle, Enum(Lifecycle), "trial, implanted, trial ended or explanted (SPEC 4.7)"] = (
        Lifecycle.IMPLANTED
    )
    diary_seq: Annotated[int, U32, "newest diary entry's sequence number, 0 if none (SPEC 4.7)"] = 0


def stored_program_numbers(mask: int) -> list[int]:
    """The program numbers an ``ScsStatus.stored_programs`` mask names (bit n-1: program n)."""
    return [n for n in range(1, MASKED_PROGRAMS + 1) if mask >> (n - 1) & 1]


def stored_programs_mask(numbers: Iterable[int]) -> int:
    """The ``ScsStatus.stored_programs`` mask of these program numbers (1 to 16)."""
    mask = 0
    for number in numbers:
        mask |= 1 << (number - 1)
    return mask


@dataclass(frozen=True, slots=True)
class PumpStatus(Message):
    """Telemetry snapshot of an intrathecal drug pump."""

    TYPE = MsgType.PUMP_STATUS
    time_ms: Annotated[int, U64, "device time, ms since epoch"]
    mode: Annotated[DosingMode, Enum(DosingMode), "dosing mode"]
    infusing: Annotated[bool, BOOL, "drug is being delivered now"]
    reservoir_ul: Annotated[int, U32, "drug left in the reservoir, µL"]
    capacity_ul: Annotated[int, U32, "reservoir capacity, µL"]
    alarm_volume_ul: Annotated[int, U32, "low-reservoir alarm volume, µL"]
    rate_ul_per_day: Annotated[int, U32, "current programmed rate, µL/day"]
    drugs: Annotated[tuple[DrugLevel, ...], ListOf(DrugLevel, MAX_DRUGS), "drugs, concentrations, daily doses"]
    patient_bolus: Annotated[PatientBolusSettings, Record(PatientBolusSettings), "patient bolus settings"]
    patient_boluses_today: Annotated[int, U8, "patient boluses delivered in the last 24 h"]
    bolus_active: Annotated[bool, BOOL, "a bolus is being delivered"]
    battery_state: Annotated[BatteryState, Enum(BatteryState), "battery state"]
    battery_pct_x100: Annotated[int, U16, "remaining battery capacity, 0.01 %"]
    battery_mv: Annotated[int, U16, "cell voltage, mV"]
    eri_ms: Annotated[int, U64, "projected (or reached) ERI time, ms since epoch"]
    eos_ms: Annotated[int, U64, "projected end-of-service time, ms since epoch"]
    motor_state: Annotated[MotorState, Enum(MotorState), "drive state"]
    low_alarm_ms: Annotated[int, U64, "projected low-reservoir alarm time, ms since epoch"]
    empty_ms: Annotated[int, U64, "projected empty time at nominal flow, ms since epoch"]
    empty_earliest_ms: Annotated[int, U64, "empty time at the fast end of the accuracy band"]
    empty_latest_ms: Annotated[int, U64, "empty time at the slow end of the accuracy band"]
    next_refill_ms: Annotated[int, U64, "recommended refill date, ms since epoch"]
    alarms: Annotated[tuple[ActiveAlarm, ...], ListOf(ActiveAlarm, MAX_ALARMS), "alarms not cleared"]
    last_event_seq: Annotated[int, U32, "newest event-log sequence number"]
    tone: Annotated[ToneKind, Enum(ToneKind), "alarm tone sounding now"]
    tone_code: Annotated[int, U16, "event code of the alarm sounding now (ALARM_TEST during a test), 0 if silent"]
    next_tone: Annotated[ToneKind, Enum(ToneKind), "pattern of the next alarm tone to start"]
    next_tone_ms: Annotated[int, U64, "when the next alarm tone starts, ms since epoch; 0 if none will"]
    mri_suspended: Annotated[bool, BOOL, "a magnetic field holds delivery (SPEC 4.5): the motor stalled or the valves"]
    mri_check_due: Annotated[bool, BOOL, "a scan stopped delivery: the clinician must check the pump (MriCheckDone)"]
    valve_closed: Annotated[bool, BOOL, "the flow-activated valve shut in a field: no delivery until MriCheckDone"]
    replacement_ms: Annotated[int, U64, "replacement advised (reached or projected), ms since epoch; 0 if failed"]
    lifecycle: Annotated[Lifecycle, Enum(Lifecycle), "trial, implanted, trial ended or explanted (SPEC 4.7)"] = (
        Lifecycle.IMPLANTED
    )
    diary_seq: Annotated[int, U32, "newest diary entry's sequence number, 0 if none (SPEC 4.7)"] = 0


@dataclass(frozen=True, slots=True)
class EventLogRead(Message):
    """Read event-log entries from ``from_seq`` on (a page at a time)."""

    TYPE = MsgType.EVENT_LOG_READ
    REPLIES = (MsgType.EVENT_LOG_PAGE,)
    from_seq: Annotated[int, U32, "first sequence number wanted"]
    max_count: Annotated[int, U8, f"entries wanted, 1-{EVENTS_PER_PAGE}"]


@dataclass(frozen=True, slots=True)
class EventLogPage(Message):
    """Entries from the asked sequence number on, oldest first."""

    TYPE = MsgType.EVENT_LOG_PAGE
    first_seq: Annotated[int, U32, "oldest sequence number still stored"]
    last_seq: Annotated[int, U32, "newest sequence number"]
    entries: Annotated[tuple[EventRecord, ...], ListOf(EventRecord, EVENTS_PER_PAGE), "entries"]


@dataclass(frozen=True, slots=True)
class AlarmAck(Message):
    """Acknowledge an active alarm."""

    TYPE = MsgType.ALARM_ACK
    MUTATING = True
    code: Annotated[EventCode, Enum(EventCode, "H"), "alarm to acknowledge"]


@dataclass(frozen=True, slots=True)
class ClockRead(Message):
    """Read the device clock."""

    TYPE = MsgType.CLOCK_READ
    REPLIES = (MsgType.CLOCK_REPLY,)


@dataclass(frozen=True, slots=True)
class ClockReply(Message):
    """The device clock and how fast it runs."""

    TYPE = MsgType.CLOCK_REPLY
    time_ms: Annotated[int, U64, "device time, ms since epoch"]
    speed_x1000: Annotated[int, U32, "device seconds per wall second, x1000 (1000 = real time)"]


@dataclass(frozen=True, slots=True)
class ClockSet(Message):
    """Set the device clock forward (the event log is in time order, so never back).

    A device bounds one step (the emulator: 366 days, `OUT_OF_RANGE` beyond with the latest
    time it accepts as `limit`), so that one command cannot make it integrate decades at once.
    """

    TYPE = MsgType.CLOCK_SET
    MUTATING = True
    time_ms: Annotated[int, U64, "new device time, ms since epoch"]


@dataclass(frozen=True, slots=True)
class CommandQuery(Message):
    """Ask what became of a mutating request whose reply never arrived (SPEC 4.2)."""

    TYPE = MsgType.COMMAND_QUERY
    REPLIES = (MsgType.COMMAND_OUTCOME,)
    command_id: Annotated[int, U32, "command_id of the request in question"]
    request_type: Annotated[int, U8, "its message type"]
    request_digest: Annotated[bytes, FixedBytes(DIGEST_SIZE), "first 16 bytes of SHA-256(type byte || payload)"]


@dataclass(frozen=True, slots=True)
class CommandOutcome(Message):
    """What became of the request a ``CommandQuery`` names."""

    TYPE = MsgType.COMMAND_OUTCOME
    command_id: Annotated[int, U32, "command_id of the request in question"]
    fate: Annotated[CommandFate, Enum(CommandFate), "handled, or never handled and now never will be"]
    reply_type: Annotated[int, U8, "HANDLED: message type of the reply it got; 0 otherwise"]
    reply: Annotated[bytes, Blob(MAX_STORED_REPLY), "HANDLED: that reply's payload, as first sent; empty otherwise"]


@dataclass(frozen=True, slots=True)
class AlarmTest(Message):
    """Sound every alarm tone once, highest priority first (the clinician's alarm test).

    Answered with ``CommandAck`` naming the ALARM_TEST entry; a device without a sounder refuses
    it with UNSUPPORTED. Status shows the test's tones while they sound.
    """

    TYPE = MsgType.ALARM_TEST
    MUTATING = True


@dataclass(frozen=True, slots=True)
class StimProgramSet(Message):
    """Store a stimulation program, and make it the active one if asked. All or nothing."""

    TYPE = MsgType.STIM_PROGRAM_SET
    MUTATING = True
    program: Annotated[int, U8, "program number"]
    activate: Annotated[bool, BOOL, "make it the active program"]
    areas: Annotated[tuple[Area, ...], ListOf(Area, MAX_AREAS), "areas, 1 to 4"]
    patient_amp_max_ua: Annotated[int, U16, "highest amplitude the patient may select, µA"]
    ramp_s: Annotated[int, U8, "ramp-up time at therapy on, s"]
    density_override: Annotated[
        bool, BOOL, "the clinician accepts areas above the charge-density warning (SPEC 4.4)"
    ] = False


@dataclass(frozen=True, slots=True)
class TherapySet(Message):
    """Turn therapy (stimulation or infusion) on or off."""

    TYPE = MsgType.THERAPY_SET
    MUTATING = True
    PATIENT_MAY = True
    on: Annotated[bool, BOOL, "therapy on"]


@dataclass(frozen=True, slots=True)
class ImpedanceCheck(Message):
    """Measure every contact's impedance now."""

    TYPE = MsgType.IMPEDANCE_CHECK
    MUTATING = True
    REPLIES = (MsgType.IMPEDANCE_REPLY,)


@dataclass(frozen=True, slots=True)
class ImpedanceReply(Message):
    """Impedance per contact."""

    TYPE = MsgType.IMPEDANCE_REPLY
    time_ms: Annotated[int, U64, "device time of the measurement, ms since epoch"]
    impedance_ohm: Annotated[tuple[int, ...], ListOf(U16, MAX_CONTACTS), "impedance per contact, Ω (65535 = open)"]
    event_seq: Annotated[int, U32, "event-log entry of the measurement"]


@dataclass(frozen=True, slots=True)
class ProgramSelect(Message):
    """Make a stored program the active one (what a patient's controller offers)."""

    TYPE = MsgType.PROGRAM_SELECT
    MUTATING = True
    PATIENT_MAY = True
    program: Annotated[int, U8, "stored program number"]


@dataclass(frozen=True, slots=True)
class AmplitudeSet(Message):
    """Change one area's amplitude in the active program, kept in the stored program.

    A PATIENT session stays at or below the program's ``patient_amp_max_ua``; a CLINICIAN session
    within the device's limits, as for ``StimProgramSet``.
    """

    TYPE = MsgType.AMPLITUDE_SET
    MUTATING = True
    PATIENT_MAY = True
    area: Annotated[int, U8, "area index in the active program, from 0"]
    amplitude_ua: Annotated[int, U16, "new amplitude, µA"]


@dataclass(frozen=True, slots=True)
class ChargingSet(Message):
    """Start or stop a charging session of a rechargeable stimulator (the charger placed or removed)."""

    TYPE = MsgType.CHARGING_SET
    MUTATING = True
    PATIENT_MAY = True
    on: Annotated[bool, BOOL, "charging on"]


@dataclass(frozen=True, slots=True)
class ProgramRead(Message):
    """Read one stored stimulation program."""

    TYPE = MsgType.PROGRAM_READ
    REPLIES = (MsgType.PROGRAM_REPLY,)
    program: Annotated[int, U8, "program number"]


@dataclass(frozen=True, slots=True)
class ProgramReply(Message):
    """A stored program as the device holds it (amplitudes as last set, by either role)."""

    TYPE = MsgType.PROGRAM_REPLY
    program: Annotated[int, U8, "program number"]
    active: Annotated[bool, BOOL, "it is the active program"]
    areas: Annotated[tuple[Area, ...], ListOf(Area, MAX_AREAS), "areas, 1 to 4"]
    patient_amp_max_ua: Annotated[int, U16, "highest amplitude the patient may select, µA"]
    ramp_s: Annotated[int, U8, "ramp-up time at therapy on, s"]


@dataclass(frozen=True, slots=True)
class MriModeSet(Message):
    """Put a stimulator into MRI mode or take it out (SPEC 4.5); the clinician's only.

    Entry needs a recent impedance check without an open or shorted contact, and switches
    stimulation off unless the model allows it at the active program; exit restores the program
    and therapy state as they were at entry.
    """

    TYPE = MsgType.MRI_MODE_SET
    MUTATING = True
    on: Annotated[bool, BOOL, "MRI mode on"]


@dataclass(frozen=True, slots=True)
class DosingSet(Message):
    """Program the pump's dosing. All or nothing."""

    TYPE = MsgType.DOSING_SET
    MUTATING = True
    mode: Annotated[DosingMode, Enum(DosingMode), "dosing mode"]
    rate_ul_per_day: Annotated[int, U32, "continuous rate, µL/day"]
    steps: Annotated[tuple[FlexStep, ...], ListOf(FlexStep, MAX_FLEX_STEPS), "flex schedule (FLEX mode)"]
    patient_bolus: Annotated[PatientBolusSettings, Record(PatientBolusSettings), "patient bolus settings"]
    alarm_volume_ul: Annotated[int, U32, "low-reservoir alarm volume, µL"]
    periodic_boluses: Annotated[
        tuple[PeriodicBolus, ...], ListOf(PeriodicBolus, MAX_PERIODIC_BOLUSES), "periodic boluses (FLEX mode)"
    ] = ()
    utc_offset_min: Annotated[int, I16, "local time of the schedule: minutes east of UTC, -720 to 840"] = 0


@dataclass(frozen=True, slots=True)
class ScheduleRead(Message):
    """Read back the pump's dosing program as it holds it."""

    TYPE = MsgType.SCHEDULE_READ
    REPLIES = (MsgType.SCHEDULE_REPLY,)


@dataclass(frozen=True, slots=True)
class ScheduleReply(Message):
    """The dosing program the pump runs: what ``DosingSet`` stored, with its 24-hour volume."""

    TYPE = MsgType.SCHEDULE_REPLY
    mode: Annotated[DosingMode, Enum(DosingMode), "dosing mode (STOPPED also when therapy is off)"]
    rate_ul_per_day: Annotated[int, U32, "continuous rate, µL/day (0 in FLEX mode)"]
    steps: Annotated[tuple[FlexStep, ...], ListOf(FlexStep, MAX_FLEX_STEPS), "flex steps, local time"]
    periodic_boluses: Annotated[
        tuple[PeriodicBolus, ...], ListOf(PeriodicBolus, MAX_PERIODIC_BOLUSES), "periodic boluses, local time"
    ]
    utc_offset_min: Annotated[int, I16, "local time of the schedule: minutes east of UTC"]
    patient_bolus: Annotated[PatientBolusSettings, Record(PatientBolusSettings), "patient bolus settings"]
    alarm_volume_ul: Annotated[int, U32, "low-reservoir alarm volume, µL"]
    daily_ul: Annotated[int, U32, "volume of the programmed 24 h, µL, rounded up (0 when stopped)"]
    local_minute: Annotated[int, U16, "the device's local minute of the day now, 0-1439"]


@dataclass(frozen=True, slots=True)
class Bolus(Message):
    """Deliver a bolus."""

    TYPE = MsgType.BOLUS
    MUTATING = True
    PATIENT_MAY = True  # a PATIENT-kind bolus only
    REPLIES = (MsgType.BOLUS_REPLY,)
    kind: Annotated[BolusKind, Enum(BolusKind), "bolus kind"]
    volume_ul: Annotated[int, U32, "volume, µL"]
    duration_min: Annotated[int, U16, "delivery time, min"]


@dataclass(frozen=True, slots=True)
class BolusReply(Message):
    """A bolus was started."""

    TYPE = MsgType.BOLUS_REPLY
    event_seq: Annotated[int, U32, "event-log entry of the bolus"]
    volume_ul: Annotated[int, U32, "volume being delivered, µL"]
    ends_ms: Annotated[int, U64, "device time the bolus ends, ms since epoch"]


@dataclass(frozen=True, slots=True)
class Refill(Message):
    """Record a refill: residual withdrawn, volume added, new contents. All or nothing."""

    TYPE = MsgType.REFILL
    MUTATING = True
    REPLIES = (MsgType.REFILL_REPLY,)
    withdrawn_ul: Annotated[int, U32, "residual volume withdrawn, µL"]
    added_ul: Annotated[int, U32, "volume added, µL"]
    drugs: Annotated[tuple[DrugConcentration, ...], ListOf(DrugConcentration, MAX_DRUGS), "new contents"]
    concentration_confirmed: Annotated[bool, BOOL, "clinician confirmed the new concentrations"]
    discrepancy_accepted: Annotated[bool, BOOL, "clinician accepts a residual discrepancy"]
    bridge_bolus: Annotated[bool, BOOL, "push the old drug out of the tubing at the old rate"]


@dataclass(frozen=True, slots=True)
class RefillReply(Message):
    """Result of a refill."""

    TYPE = MsgType.REFILL_REPLY
    event_seq: Annotated[int, U32, "event-log entry of the refill"]
    expected_residual_ul: Annotated[int, U32, "residual the device expected, µL"]
    discrepancy_ul: Annotated[int, I32, "withdrawn minus expected, µL"]
    reservoir_ul: Annotated[int, U32, "reservoir after the refill, µL"]
    next_refill_ms: Annotated[int, U64, "recommended next refill, ms since epoch"]


@dataclass(frozen=True, slots=True)
class MriCheckDone(Message):
    """The clinician has checked a pump after an MRI scan (SPEC 4.5); the clinician's only.

    Clears ``mri_check_due``: a peristaltic pump whose motor did not restart by itself restarts it
    (MRI_RESUME), and MRI_CHECKED is logged; a valve-gated pump's closed flow-activated valve is
    reset open (FAV_RESET). Refused while the pump is still in the field.
    """

    TYPE = MsgType.MRI_CHECK_DONE
    MUTATING = True


@dataclass(frozen=True, slots=True)
class EventPush(Message):
    """Unsolicited: a new event-log entry (alarms among them), sent while a session is open."""

    TYPE = MsgType.EVENT_PUSH
    event: Annotated[EventRecord, Record(EventRecord), "the new entry"]


@dataclass(frozen=True, slots=True)
class LifecycleSet(Message):
    """Move the therapy system on in its life (SPEC 4.7): the clinician's only."""

    TYPE = MsgType.LIFECYCLE_SET
    MUTATING = True
    lifecycle: Annotated[Lifecycle, Enum(Lifecycle), "the new stage"]


@dataclass(frozen=True, slots=True)
class DiaryRead(Message):
    """Read the patient's diary from ``from_seq`` on (a page at a time), like the event log."""

    TYPE = MsgType.DIARY_READ
    REPLIES = (MsgType.DIARY_PAGE,)
    from_seq: Annotated[int, U32, "first sequence number wanted"]
    max_count: Annotated[int, U8, f"entries wanted, 1-{EVENTS_PER_PAGE}"]


@dataclass(frozen=True, slots=True)
class DiaryPage(Message):
    """Diary entries from the asked sequence number on, oldest first."""

    TYPE = MsgType.DIARY_PAGE
    first_seq: Annotated[int, U32, "oldest sequence number still kept"]
    last_seq: Annotated[int, U32, "newest sequence number"]
    entries: Annotated[tuple[DiaryRecord, ...], ListOf(DiaryRecord, EVENTS_PER_PAGE), "entries"]


@dataclass(frozen=True, slots=True)
class DiaryAdd(Message):
    """Add a score a person typed (the session's role is its source); answered with a page of it."""

    TYPE = MsgType.DIARY_ADD
    MUTATING = True
    PATIENT_MAY = True
    REPLIES = (MsgType.DIARY_PAGE,)
    kind: Annotated[DiaryKind, Enum(DiaryKind), "instrument"]
    value: Annotated[int, U16, "score in the instrument's unit (SPEC 4.7 gives each range)"]
    time_ms: Annotated[int, U64, "device time the score is for, ms since epoch; 0 = now"]


@dataclass(frozen=True, slots=True)
class DiaryPush(Message):
    """Unsolicited: a new diary entry, sent while a session is open."""

    TYPE = MsgType.DIARY_PUSH
    entry: Annotated[DiaryRecord, Record(DiaryRecord), "the new entry"]


@dataclass(frozen=True, slots=True)
class ErrorReply(Message):
    """The request was refused or could not be read. Nothing was applied."""

    TYPE = MsgType.ERROR_REPLY
    code: Annotated[ErrorCode, Enum(ErrorCode), "error code"]
    field: Annotated[str, Text(32), "offending field, empty if none"]
    value: Annotated[int, I64, "offending value (field units)"]
    limit: Annotated[int, I64, "the limit it broke (field units)"]
    retry_after_ms: Annotated[int, U32, "when to retry (LOCKED_OUT, BUSY), ms"]
    message: Annotated[str, Text(160), "human-readable reason"]


MESSAGES: tuple[type[Message], ...] = (
    IdentifyRequest,
    IdentifyReply,
    SessionOpen,
    SessionChallenge,
    SessionConfirm,
    SessionClose,
    CommandAck,
    StatusRequest,
    ScsStatus,
    PumpStatus,
    EventLogRead,
    EventLogPage,
    AlarmAck,
    ClockRead,
    ClockReply,
    ClockSet,
    CommandQuery,
    CommandOutcome,
    AlarmTest,
    LifecycleSet,
    DiaryRead,
    DiaryPage,
    DiaryAdd,
    DiaryPush,
    StimProgramSet,
    TherapySet,
    ImpedanceCheck,
    ImpedanceReply,
    ProgramSelect,
    AmplitudeSet,
    ChargingSet,
    ProgramRead,
    ProgramReply,
    MriModeSet,
    DosingSet,
    Bolus,
    BolusReply,
    Refill,
    RefillReply,
    ScheduleRead,
    ScheduleReply,
    MriCheckDone,
    EventPush,
    ErrorReply,
)
