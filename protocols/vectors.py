"""Test vectors: one frame per message type with its fields, keys and nonces; bad frames with errors.

``python -m protocols.vectors --write`` regenerates ``vectors.json`` beside this file;
``--check`` fails when the file and the codec disagree. Everything is deterministic: fixed
pairing key, nonces, session id, counters and command ids, so a client written from SPEC.md can
reproduce every byte.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .auth import Session, derive_session_keys, session_open
from .codec import SCHEMA_FINGERPRINT, encode_payload, schema_text, to_json
from .crc import CRC_CHECK
from .errors import ErrorCode
from .framing import PROTOCOL_VERSION, Frame, FrameFlags, encode_frame, pack_header
from .messages import (
    ActiveAlarm,
    Actor,
    AlarmAck,
    AlarmState,
    AlarmTest,
    AmplitudeSet,
    Area,
    BatteryKind,
    BatteryState,
    Bolus,
    BolusKind,
    BolusReply,
    ChargingSet,
    ClockRead,
    ClockReply,
    ClockSet,
    CommandAck,
    CommandFate,
    CommandOutcome,
    CommandQuery,
    DeviceKind,
    DiaryAdd,
    DiaryKind,
    DiaryPage,
    DiaryPush,
    DiaryRead,
    DiaryRecord,
    DiarySource,
    DosingMode,
    DosingSet,
    Drug,
    DrugConcentration,
    DrugLevel,
    ErrorReply,
    EventCode,
    EventLogPage,
    EventLogRead,
    EventPush,
    EventRecord,
    FlexStep,
    IdentifyReply,
    IdentifyRequest,
    ImpedanceCheck,
    ImpedanceReply,
    Lifecycle,
    LifecycleSet,
    Message,
    MotorState,
    MriCheckDone,
    MriModeSet,
    PatientBolusSettings,
    PeriodicBolus,
    Priority,
    ProgramRead,
    ProgramReply,
    ProgramSelect,
    PumpStatus,
    Refill,
    RefillReply,
    ScheduleRead,
    ScheduleReply,
    ScsStatus,
    SessionChallenge,
    SessionClose,
    SessionConfirm,
    StatusRequest,
    StimProgramSet,
    TherapySet,
    ToneKind,
    Waveform,
)
from .replies import request_digest

VECTORS_PATH = Path(__file__).with_name("vectors.json")
PAIRING_KEY = bytes(range(0x40, 0x60))
HOST_NONCE = bytes(range(0xA0, 0xB0))
DEVICE_NONCE = bytes(range(0xC0, 0xD0))
SESSION_ID = 0x5EC0_0001
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z in ms

_AREA = Area(0x0000_0001, 0x0000_0006, 3500, 300, 50, Waveform.TONIC, 0, 0, 0, 0)
_BURST = Area(0x0000_0100, 0x0000_0200, 600, 1000, 40, Waveform.BURST, 5, 500, 30, 90)
_PTM = PatientBolusSettings(True, 50, 10, 120, 4)
_STEPS = (FlexStep(0, 400), FlexStep(480, 600))  # local time, UTC+1 below
_PERIODIC = (PeriodicBolus(720, 150, 30),)  # 150 µL over 30 min at noon: 7,200 µL/day on top
_ALARM = ActiveAlarm(EventCode.LOW_RESERVOIR, Priority.MEDIUM, AlarmState.ACTIVE)
_EVENT = EventRecord(
    42, T0 + 3_600_000, EventCode.LOW_RESERVOIR, Priority.MEDIUM, AlarmState.ACTIVE, 2000, 0, Actor.DEVICE
)
_BOLUS = Bolus(BolusKind.CLINICIAN, 100, 30)
_BOLUS_REPLY = BolusReply(50, 100, T0 + 1_800_000)
_PUSHED = EventRecord(
    52, T0 + 7_200_000, EventCode.BOLUS_COMPLETE, Priority.NONE, AlarmState.NONE, 100, 1, Actor.PATIENT
)

# (direction, message, plain) in exchange order; plain frames carry no session and no tag.
EXCHANGE: list[tuple[str, Message, bool]] = [
    ("host", IdentifyRequest(), True),
    (
        "device",
        IdentifyReply(
            DeviceKind.PUMP, "IT-Pump 40", "PMP-000123", "2.1.0", PROTOCOL_VERSION, SCHEMA_FINGERPRINT, 0x5A, 255
        ),
        True,
    ),
    ("host", session_open(PAIRING_KEY, HOST_NONCE), True),
    ("device", SessionChallenge(DEVICE_NONCE, 300, 3600, Actor.CLINICIAN), False),
    ("host", SessionConfirm(), False),
    ("device", CommandAck(40), False),
    ("host", StatusRequest(), False),
    (
        "device",
        PumpStatus(
            time_ms=T0,
            mode=DosingMode.CONTINUOUS,
            infusing=True,
            reservoir_ul=18_500,
            capacity_ul=40_000,
            alarm_volume_ul=2_000,
            rate_ul_per_day=500,
            drugs=(
                DrugLevel(Drug.MORPHINE, 10_000_000, 5_000_000, 500_000),  # a 50 µL patient bolus today
                DrugLevel(Drug.BUPIVACAINE, 20_000_000, 10_000_000, 1_000_000),
            ),
            patient_bolus=_PTM,
            patient_boluses_today=1,
            bolus_active=False,
            battery_state=BatteryState.OK,
            battery_pct_x100=7_512,
            battery_mv=3_050,
            eri_ms=T0 + 3 * 365 * 86_400_000,
            eos_ms=T0 + (3 * 365 + 90) * 86_400_000,
            motor_state=MotorState.OK,
            low_alarm_ms=T0 + 33 * 86_400_000,
            empty_ms=T0 + 37 * 86_400_000,
            empty_earliest_ms=T0 + 32 * 86_400_000,
            empty_latest_ms=T0 + 43 * 86_400_000,
            next_refill_ms=T0 + 30 * 86_400_000,
            alarms=(),
            last_event_seq=41,
            tone=ToneKind.NONE,
            tone_code=0,
            next_tone=ToneKind.NONE,
            next_tone_ms=0,
            mri_suspended=False,
            mri_check_due=False,
            valve_closed=False,
            replacement_ms=T0 + (3 * 365 + 90 - 182) * 86_400_000,
        ),
        False,
    ),
    ("host", EventLogRead(42, 8), False),  # status said 41: read what is new
    ("device", EventLogPage(1, 42, (_EVENT,)), False),
    ("host", AlarmAck(EventCode.LOW_RESERVOIR), False),
    ("device", CommandAck(43), False),
    ("host", AlarmTest(), False),
    ("device", CommandAck(44), False),
    ("host", ClockRead(), False),
    ("device", ClockReply(T0, 1_000_000), False),
    ("host", ClockSet(T0 + 60_000), False),
    ("device", CommandAck(45), False),
    ("host", TherapySet(False), False),
    ("device", CommandAck(46), False),
    ("host", TherapySet(True), False),
    ("device", CommandAck(47), False),
    ("host", DosingSet(DosingMode.FLEX, 500, _STEPS, _PTM, 2_000, _PERIODIC, 60), False),
    ("device", CommandAck(49), False),
    ("host", ScheduleRead(), False),
    ("device", ScheduleReply(DosingMode.FLEX, 0, _STEPS, _PERIODIC, 60, _PTM, 2_000, 684, 61), False),
    ("host", _BOLUS, False),
    ("device", _BOLUS_REPLY, False),
    (
        "host",
        Refill(1_500, 38_000, (DrugConcentration(Drug.MORPHINE, 10_000_000),), True, False, False),
        False,
    ),
    ("device", RefillReply(51, 1_700, -200, 38_000, T0 + 70 * 86_400_000), False),
    ("device", EventPush(_PUSHED), False),
    ("host", Bolus(BolusKind.CLINICIAN, 90_000, 30), False),
    ("device", ErrorReply(ErrorCode.OUT_OF_RANGE, "volume_ul", 90_000, 18_500, 0, "bolus exceeds reservoir"), False),
    ("host", MriCheckDone(), False),  # the clinician's check after a scan (SPEC 4.5)
    ("device", CommandAck(53), False),
    ("host", SessionClose(), False),
    ("device", CommandAck(54), False),
    ("host", StatusRequest(), True),
    ("device", ErrorReply(ErrorCode.NO_SESSION, "", 0, 0, 0, "StatusRequest needs an authenticated session"), True),
]
FIRST_COMMAND_ID = 0x0000_1000

# A stimulator's programmer (CLINICIAN) and then its patient's controller (PATIENT, SPEC 3.8), each
# in a session of its own with its own pairing key, nonces and session id.
SCS_PAIRING_KEY = bytes(range(0x60, 0x80))
SCS_PATIENT_KEY = bytes(range(0x80, 0xA0))
SCS_SESSION_ID = 0x5EC0_0002
SCS_PATIENT_SESSION_ID = 0x5EC0_0003
SCS_HOST_NONCE, SCS_DEVICE_NONCE = bytes(range(0xD0, 0xE0)), bytes(range(0xE0, 0xF0))
PATIENT_HOST_NONCE, PATIENT_DEVICE_NONCE = bytes(range(0x10, 0x20)), bytes(range(0x20, 0x30))
_SCS_IDENTITY = IdentifyReply(
    DeviceKind.SCS, "IT-Stim 16R", "SCS-000456", "3.0.1", PROTOCOL_VERSION, SCHEMA_FINGERPRINT, 0x2D, 255
)
_STORED = StimProgramSet(2, True, (_AREA,), 5_000, 2)
# 31.7 µC/cm²/phase on a device with 0.06 cm² contacts: above the 30 µC/cm² warning, under Shannon's k (SPEC 4.4).
_DENSE = Area(0x0000_0010, 0x0000_0020, 3_800, 500, 50, Waveform.TONIC, 0, 0, 0, 0)
_OVER_DENSITY = (
    "areas[0].amplitude_ua 3800: 31.7 µC/cm²/phase is above the 30 µC/cm²/phase limit; "
    "needs an explicit override (density_override), else 3600 µA"
)
_OFF_STEP = "areas[0].amplitude_ua 3510 µA is between steps of 50 µA: nearest valid 3500 or 3550 µA"
SCS_EXCHANGE: list[tuple[str, Message, bool]] = [
    ("host", IdentifyRequest(), True),
    ("device", _SCS_IDENTITY, True),
    ("host", session_open(SCS_PAIRING_KEY, SCS_HOST_NONCE), True),
    ("device", SessionChallenge(SCS_DEVICE_NONCE, 300, 3600, Actor.CLINICIAN), False),
    ("host", SessionConfirm(), False),
    ("device", CommandAck(10), False),
    ("host", StatusRequest(), False),
    (
        "device",
        ScsStatus(
            time_ms=T0 + 1_000,
            therapy_on=True,
            active_program=1,
            areas=(_AREA, _BURST),
            patient_amp_max_ua=6_000,
            battery_kind=BatteryKind.RECHARGEABLE,
            battery_state=BatteryState.OK,
            battery_pct_x100=8_250,
            battery_mv=3_920,
            charging=False,
            coupling_pct=0,
            capacity_pct_x100=9_800,
            days_to_recharge_x100=2_150,
            eri_ms=T0 + 9 * 365 * 86_400_000,
            eos_ms=T0 + 10 * 365 * 86_400_000,
            tissue_power_uw=450,
            charge_density_x100=854,
            impedance_ohm=(525, 610, 580, 65535, 700, 690, 640, 600),
            alarms=(ActiveAlarm(EventCode.LEAD_OPEN, Priority.MEDIUM, AlarmState.ACTIVE),),
            last_event_seq=12,  # the session opened as #10; #11 and #12 are the device's own
            stored_programs=0b101,
            mri_mode=False,
            shannon_k_x100=95,  # _AREA: 1.05 µC on one contact of 0.123 cm², k = log 8.54 + log 1.05
            disabled_contacts=0,
        ),
        False,
    ),
    ("host", _STORED, False),
    ("device", CommandAck(13), False),
    ("host", StimProgramSet(3, False, (_DENSE,), 4_000, 2), False),
    ("device", ErrorReply(ErrorCode.OVERRIDE_REQUIRED, "areas[0].amplitude_ua", 3_800, 3_600, 0, _OVER_DENSITY), False),
    ("host", StimProgramSet(3, False, (_DENSE,), 4_000, 2, density_override=True), False),
    ("device", CommandAck(14), False),  # PROGRAM_CHANGED; DENSITY_OVERRIDE follows it
    (
        "device",
        EventPush(
            EventRecord(
                15,
                T0 + 30_000,
                EventCode.DENSITY_OVERRIDE,
                Priority.NONE,
                AlarmState.NONE,
                3_167,
                3_000,
                Actor.CLINICIAN,
            )
        ),
        False,
    ),
    ("host", StimProgramSet(4, False, (Area(0x1, 0x6, 3_510, 300, 50, Waveform.TONIC, 0, 0, 0, 0),), 5_000, 2), False),
    ("device", ErrorReply(ErrorCode.OFF_STEP, "areas[0].amplitude_ua", 3_510, 3_500, 0, _OFF_STEP), False),
    ("host", ProgramRead(2), False),
    ("device", ProgramReply(2, True, (_AREA,), 5_000, 2), False),
    ("host", ImpedanceCheck(), False),
    ("device", ImpedanceReply(T0, (525, 610, 580, 65535), 16), False),
    ("host", MriModeSet(True), False),  # the check just found contact 3 open: MRI mode is refused
    (
        "device",
        ErrorReply(
            ErrorCode.STATE_CONFLICT,
            "on",
            1,
            0,
            0,
            "cannot enter MRI mode: contact 3 measured 65535 Ω (lead open): MRI is not advised with a lead problem",
        ),
        False,
    ),
    ("host", SessionClose(), False),
    ("device", CommandAck(17), False),
]
PATIENT_EXCHANGE: list[tuple[str, Message, bool]] = [
    ("host", session_open(SCS_PATIENT_KEY, PATIENT_HOST_NONCE), True),
    ("device", SessionChallenge(PATIENT_DEVICE_NONCE, 300, 3600, Actor.PATIENT), False),
    ("host", SessionConfirm(), False),
    ("device", CommandAck(18), False),
    ("host", ProgramSelect(1), False),
    ("device", CommandAck(19), False),
    ("host", AmplitudeSet(0, 4_200), False),
    ("device", CommandAck(20), False),
    (
        "device",
        EventPush(
            EventRecord(
                20, T0 + 60_000, EventCode.AMPLITUDE_CHANGED, Priority.NONE, AlarmState.NONE, 0, 4_200, Actor.PATIENT
            )
        ),
        False,
    ),
    ("host", AmplitudeSet(0, 7_000), False),
    (
        "device",
        ErrorReply(
            ErrorCode.OUT_OF_RANGE,
            "amplitude_ua",
            7_000,
            6_000,
            0,
            "7 mA is above the patient maximum of 6 mA set for program 1",
        ),
        False,
    ),
    ("host", ChargingSet(True), False),
    ("device", CommandAck(21), False),
    ("host", TherapySet(False), False),
    ("device", CommandAck(22), False),
    ("host", ImpedanceCheck(), False),
    (
        "device",
        ErrorReply(
            ErrorCode.NOT_PERMITTED,
            "",
            0,
            0,
            0,
            "the patient's controller may not send ImpedanceCheck: it needs the clinician's",
        ),
        False,
    ),
    ("host", SessionClose(), False),
    ("device", CommandAck(23), False),
]


def _insert_fate_query(exchange: list[tuple[str, Message, bool]]) -> None:
    """After the bolus reply, the host asks what became of the bolus (SPEC 4.2) and learns its reply."""
    at = next(i for i, (_, message, _) in enumerate(exchange) if message is _BOLUS_REPLY) + 1
    bolus_id = FIRST_COMMAND_ID + sum(1 for direction, _, _ in exchange[:at] if direction == "host")
    digest = request_digest(_BOLUS.TYPE, encode_payload(_BOLUS))
    stored_reply = encode_payload(_BOLUS_REPLY)
    exchange[at:at] = [
        ("host", CommandQuery(bolus_id, int(_BOLUS.TYPE), digest), False),
        ("device", CommandOutcome(bolus_id, CommandFate.HANDLED, int(_BOLUS_REPLY.TYPE), stored_reply), False),
    ]


_insert_fate_query(EXCHANGE)


# A trial stimulator (lifecycle TRIAL, Capability.DIARY) and its patient's controller: the diary read
# from the start, a score the patient types, a controller entry pushed, and the patient refused the
# clinician's LifecycleSet (SPEC 4.7).
TRIAL_PATIENT_KEY = bytes(range(0xA0, 0xC0))
TRIAL_SESSION_ID = 0x5EC0_0004
TRIAL_HOST_NONCE, TRIAL_DEVICE_NONCE = bytes(range(0x30, 0x40)), bytes(range(0x40, 0x50))
_TRIAL_DAY = T0 + 7 * 86_400_000  # the trial's first day, after a week of baseline diary
_TRIAL_IDENTITY = IdentifyReply(
    DeviceKind.SCS, "EMU-ETS16", "ETS-0000A1", "1.0.0", PROTOCOL_VERSION, SCHEMA_FINGERPRINT, 0xBD, 255, Lifecycle.TRIAL
)
TRIAL_EXCHANGE: list[tuple[str, Message, bool]] = [
    ("host", IdentifyRequest(), True),
    ("device", _TRIAL_IDENTITY, True),
    ("host", session_open(TRIAL_PATIENT_KEY, TRIAL_HOST_NONCE), True),
    ("device", SessionChallenge(TRIAL_DEVICE_NONCE, 300, 3600, Actor.PATIENT), False),
    ("host", SessionConfirm(), False),
    ("device", CommandAck(3), False),
    ("host", DiaryRead(1, 3), False),
    (
        "device",
        DiaryPage(
            1,
            16,
            (
                DiaryRecord(1, T0, DiaryKind.ODI, 52, DiarySource.CONTROLLER),
                DiaryRecord(2, T0 + 8 * 3_600_000, DiaryKind.NRS, 7, DiarySource.CONTROLLER),
                DiaryRecord(3, T0 + 20 * 3_600_000, DiaryKind.NRS, 8, DiarySource.CONTROLLER),
            ),
        ),
        False,
    ),
    ("host", DiaryAdd(DiaryKind.NRS, 4, 0), False),  # 0: the score is for now
    (
        "device",
        DiaryPage(1, 17, (DiaryRecord(17, _TRIAL_DAY + 3_600_000, DiaryKind.NRS, 4, DiarySource.PATIENT),)),
        False,
    ),
    ("host", DiaryAdd(DiaryKind.NRS, 11, 0), False),
    (
        "device",
        ErrorReply(ErrorCode.OUT_OF_RANGE, "value", 11, 10, 0, "value 11 is above the maximum 10"),
        False,
    ),
    (
        "device",
        DiaryPush(DiaryRecord(18, _TRIAL_DAY + 8 * 3_600_000, DiaryKind.NRS, 3, DiarySource.CONTROLLER)),
        False,
    ),
    ("host", LifecycleSet(Lifecycle.IMPLANTED), False),
    (
        "device",
        ErrorReply(
            ErrorCode.NOT_PERMITTED,
            "",
            0,
            0,
            0,
            "the patient's controller may not send LifecycleSet: it needs the clinician's",
        ),
        False,
    ),
    ("host", SessionClose(), False),
    ("device", CommandAck(4), False),
]


def _frames(
    exchange: list[tuple[str, Message, bool]], keys: Any, session_id: int, first_command_id: int
) -> list[dict[str, Any]]:
    """The frames of one session's exchange, each with its parts and decoded fields."""
    host = Session(session_id, keys, is_device=False, opened_at=0, last_rx_at=0)
    device = Session(session_id, keys, is_device=True, opened_at=0, last_rx_at=0)
    command_id = first_command_id
    messages = []
    for direction, message, plain in exchange:
        is_push = isinstance(message, EventPush | DiaryPush)
        if direction == "host":
            command_id += 1
        cid = 0 if is_push else command_id
        payload = encode_payload(message)
        if plain:
            flags = FrameFlags.FROM_DEVICE if direction == "device" else FrameFlags(0)
            frame = Frame(message.TYPE, flags, 0, 0, cid, payload)
        else:
            frame = (device if direction == "device" else host).seal(message.TYPE, cid, payload, push=is_push)
        messages.append(
            {
                "name": type(message).__name__,
                "direction": direction,
                "msg_type": int(message.TYPE),
                "flags": int(frame.flags),
                "session_id": frame.session_id,
                "counter": frame.counter,
                "command_id": frame.command_id,
                "fields": to_json(message),
                "payload_hex": payload.hex(),
                "header_hex": pack_header(frame).hex(),
                "tag_hex": frame.tag.hex(),
                "frame_hex": encode_frame(frame).hex(),
            }
        )
    return messages


def _session(
    name: str, key: bytes, host_nonce: bytes, device_nonce: bytes, session_id: int, exchange: Any, first_id: int
) -> dict[str, Any]:
    """One further exchange of ``vectors.json``: its own key, nonces, session and frames."""
    keys = derive_session_keys(key, host_nonce, device_nonce, session_id)
    return {
        "name": name,
        "pairing_key_hex": key.hex(),
        "host_nonce_hex": host_nonce.hex(),
        "device_nonce_hex": device_nonce.hex(),
        "session_id": session_id,
        "session_key_host_to_device_hex": keys.host_to_device.hex(),
        "session_key_device_to_host_hex": keys.device_to_host.hex(),
        "messages": _frames(exchange, keys, session_id, first_id),
    }


def build_vectors() -> dict[str, Any]:
    """Every vector, computed from the codec."""
    keys = derive_session_keys(PAIRING_KEY, HOST_NONCE, DEVICE_NONCE, SESSION_ID)
    messages = _frames(EXCHANGE, keys, SESSION_ID, FIRST_COMMAND_ID)
    scs_clinician = _session(
        "stimulator, clinician",
        SCS_PAIRING_KEY,
        SCS_HOST_NONCE,
        SCS_DEVICE_NONCE,
        SCS_SESSION_ID,
        SCS_EXCHANGE,
        0x0000_2000,
    )
    scs_patient = _session(
        "stimulator, patient controller",
        SCS_PATIENT_KEY,
        PATIENT_HOST_NONCE,
        PATIENT_DEVICE_NONCE,
        SCS_PATIENT_SESSION_ID,
        PATIENT_EXCHANGE,
        0x0000_3000,
    )
    trial_patient = _session(
        "trial stimulator, patient controller",
        TRIAL_PATIENT_KEY,
        TRIAL_HOST_NONCE,
        TRIAL_DEVICE_NONCE,
        TRIAL_SESSION_ID,
        TRIAL_EXCHANGE,
        0x0000_4000,
    )
    return {
        "description": "implant-telemetry protocol test vectors; see SPEC.md, section Test vectors",
        "protocol_version": PROTOCOL_VERSION,
        "schema_fingerprint": f"0x{SCHEMA_FINGERPRINT:08x}",
        "schema_text": schema_text(),
        "crc32c_check": f"0x{CRC_CHECK:08x}",
        "pairing_key_hex": PAIRING_KEY.hex(),
        "host_nonce_hex": HOST_NONCE.hex(),
        "device_nonce_hex": DEVICE_NONCE.hex(),
        "session_id": SESSION_ID,
        "session_key_host_to_device_hex": keys.host_to_device.hex(),
        "session_key_device_to_host_hex": keys.device_to_host.hex(),
        "messages": messages,
        "bad_frames": _bad_frames(messages, keys),
        "exchanges": [scs_clinician, scs_patient, trial_patient],
    }


def _bad_frames(messages: list[dict[str, Any]], keys: Any) -> list[dict[str, str]]:
    status = next(m for m in messages if m["name"] == "StatusRequest")
    good = bytes.fromhex(status["frame_hex"])
    raw_good = bytes.fromhex(status["header_hex"] + status["payload_hex"] + status["tag_hex"])
    from cobs import cobs

    from .crc import crc32c

    def wire(raw: bytes, fix_crc: bool = True) -> str:
        body = raw + crc32c(raw).to_bytes(4, "little") if fix_crc else raw
        return (b"\x00" + cobs.encode(body) + b"\x00").hex()

    flipped = bytearray(raw_good + crc32c(raw_good).to_bytes(4, "little"))
    flipped[30] ^= 0x04
    forged = bytearray(raw_good)
    forged[-1] ^= 0x80
    v2 = bytearray(raw_good)
    v2[0] = 2
    bad_flags = bytearray(raw_good)
    bad_flags[2] |= 0x80
    bad_len = bytearray(raw_good)
    bad_len[19] = 5
    late_host = Session(SESSION_ID, keys, is_device=False, opened_at=0, last_rx_at=0, tx_counter=1000)
    unknown = encode_frame(late_host.seal(0x7E, 0x2000, b""))
    unsigned = encode_frame(Frame(int(StatusRequest.TYPE), FrameFlags(0), 0, 0, 0x2001, b""))
    return [
        {"description": "one bit flipped in the tag", "frame_hex": wire(bytes(flipped), False), "error": "CrcError"},
        {
            "description": "COBS code byte points past the end",
            "frame_hex": "00" + "09414243" + "00",
            "error": "MalformedFrame",
        },
        {"description": "shorter than header plus CRC", "frame_hex": wire(b"\x01\x10\x00"), "error": "MalformedFrame"},
        {"description": "protocol version 2", "frame_hex": wire(bytes(v2)), "error": "UnsupportedVersion"},
        {"description": "reserved flag bit 7 set", "frame_hex": wire(bytes(bad_flags)), "error": "MalformedFrame"},
        {
            "description": "payload_len disagrees with frame size",
            "frame_hex": wire(bytes(bad_len)),
            "error": "MalformedFrame",
        },
        {
            "description": "valid CRC, tag altered: passes framing, refused by the session",
            "frame_hex": wire(bytes(forged)),
            "error": "MacError",
        },
        {
            "description": "valid CRC and tag (counter 1001), unknown message type 0x7e",
            "frame_hex": unknown.hex(),
            "error": "UnknownMessageType",
        },
        {
            "description": "StatusRequest without session or tag",
            "frame_hex": unsigned.hex(),
            "error": "NoSession",
        },
        {
            "description": "the StatusRequest frame again, same counter: refused as a replay",
            "frame_hex": good.hex(),
            "error": "ReplayError",
        },
    ]


def main(argv: list[str] | None = None) -> int:
    """Write or check vectors.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="regenerate vectors.json")
    parser.add_argument("--check", action="store_true", help="fail if vectors.json is out of date")
    args = parser.parse_args(argv)
    text = json.dumps(build_vectors(), indent=1, ensure_ascii=False) + "\n"
    if args.write:
        VECTORS_PATH.write_text(text, encoding="utf-8")
        print(f"wrote {VECTORS_PATH.name}")
        return 0
    if VECTORS_PATH.read_text(encoding="utf-8") != text:
        print(f"{VECTORS_PATH.name} is out of date: run `make vectors`", file=sys.stderr)
        return 1
    print(f"{VECTORS_PATH.name} is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
