"""Clean-room host client for the implant-telemetry wire protocol, version 1.

Written from ``protocols/SPEC.md`` and ``protocols/vectors.json`` alone. It uses only the Python
standard library (COBS and CRC-32C are implemented here from SPEC sections 2.2 and 2.3) and must
never import ``protocols``, ``device_mock`` or ``dashboard``.

Layers, bottom up:

* ``crc32c``, ``cobs_encode`` / ``cobs_decode``           (SPEC 2.2, 2.3)
* ``pack_header`` / ``parse_header``, ``encode_frame``,
  ``decode_raw`` / ``decode_frame``, ``FrameDecoder``     (SPEC 2.1, 2.4)
* ``derive_session_keys``, ``compute_tag``, ``Session``    (SPEC 3.2 - 3.4)
* ``encode_payload`` / ``decode_payload``                  (SPEC 1, 10)
* ``CleanroomClient``                                      (SPEC 3.5, 4)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# --------------------------------------------------------------------------------------------
# Constants (SPEC 2.1, 3.2, 5)

PROTOCOL_VERSION = 1
HEADER_LEN = 21
TAG_LEN = 16
CRC_LEN = 4
MAX_PAYLOAD = 255
MIN_RAW = HEADER_LEN + CRC_LEN  # 25
MAX_RAW = HEADER_LEN + MAX_PAYLOAD + TAG_LEN + CRC_LEN  # 296
MAX_ENCODED = 298  # without delimiters

FLAG_AUTH = 0x01
FLAG_FROM_DEVICE = 0x02
FLAG_PUSH = 0x04
FLAG_RESERVED = 0xF8

HKDF_INFO_PREFIX = b"implant-telemetry/1 session"
# SPEC 5 does not define the canonical schema text, so the fingerprint cannot be recomputed
# from the spec; it is taken from vectors.json (``schema_fingerprint``).
SCHEMA_FINGERPRINT = 0x378CACF7

_HEADER = struct.Struct("<BBBIQIH")


# --------------------------------------------------------------------------------------------
# Errors


class ProtocolError(Exception):
    """Base class of everything this module raises about the protocol."""


class FrameError(ProtocolError):
    """A received run was dropped by the framing rules (SPEC 2.4)."""


class MalformedFrame(FrameError):
    pass


class OversizeFrame(MalformedFrame):
    pass


class CrcError(FrameError):
    pass


class UnsupportedVersion(FrameError):
    pass


class MalformedPayload(ProtocolError):
    """The payload does not decode (length, enum, bool, text, list count)."""


class UnknownMessageType(ProtocolError):
    pass


class AuthError(ProtocolError):
    pass


class MacError(AuthError):
    pass


class ReplayError(AuthError):
    pass


class NoSessionError(ProtocolError):
    """The client has no session for a request that needs one."""


class SchemaMismatch(ProtocolError):
    pass


class UnexpectedReply(ProtocolError):
    pass


class ClientTimeout(ProtocolError, TimeoutError):
    pass


class DeviceError(ProtocolError):
    """The device answered with an ErrorReply."""

    def __init__(self, fields: dict[str, Any], command_id: int, tagged: bool) -> None:
        self.fields = fields
        self.code = fields.get("code")
        self.command_id = command_id
        self.tagged = tagged
        detail = f"ErrorReply {self.code}"
        if fields.get("field"):
            detail += f" field={fields['field']} value={fields.get('value')} limit={fields.get('limit')}"
        if fields.get("retry_after_ms"):
            detail += f" retry_after_ms={fields['retry_after_ms']}"
        if fields.get("message"):
            detail += f": {fields['message']}"
        super().__init__(detail)


# --------------------------------------------------------------------------------------------
# CRC-32C (SPEC 2.2): reflected polynomial 0x82F63B78, init and xor-out 0xFFFFFFFF


def _make_crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _make_crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --------------------------------------------------------------------------------------------
# COBS (SPEC 2.3)


def cobs_encode(data: bytes) -> bytes:
    """Encode ``data``; the result contains no 0x00 byte.

    Standard COBS: code 0xFF always means "254 bytes, no implied zero", so a run of 254 non-zero
    bytes followed by a zero encodes as 0xFF + run, then 0x01. A final run of exactly 254 bytes is
    sent as 0xFF + run without a trailing 0x01 (SPEC 2.3 does not say; ``cobs_decode`` accepts both).
    """
    out = bytearray()
    block = bytearray()
    for b in data:
        if b == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(b)
            if len(block) == 254:
                out.append(0xFF)
                out += block
                block.clear()
    if block or not data or data[-1] == 0:
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise MalformedFrame("zero byte inside a COBS frame")
        end = i + code
        if end > n:
            raise MalformedFrame("COBS code byte points past the end")
        block = data[i + 1 : end]
        if 0 in block:
            raise MalformedFrame("zero byte inside a COBS frame")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Header and frames (SPEC 2.1, 2.4)


def pack_header(msg_type: int, flags: int, session_id: int, counter: int, command_id: int, payload_len: int) -> bytes:
    if not 0 <= payload_len <= MAX_PAYLOAD:
        raise ValueError(f"payload_len {payload_len} out of 0..{MAX_PAYLOAD}")
    return _HEADER.pack(PROTOCOL_VERSION, msg_type, flags, session_id, counter, command_id, payload_len)


def parse_header(header: bytes) -> dict[str, int]:
    if len(header) < HEADER_LEN:
        raise MalformedFrame("short header")
    version, msg_type, flags, session_id, counter, command_id, payload_len = _HEADER.unpack_from(header)
    return {
        "version": version,
        "msg_type": msg_type,
        "flags": flags,
        "session_id": session_id,
        "counter": counter,
        "command_id": command_id,
        "payload_len": payload_len,
    }


@dataclass(frozen=True)
class Frame:
    """A well-formed frame (SPEC 2.4 step 7): framing passed, not yet authenticated."""

    version: int
    msg_type: int
    flags: int
    session_id: int
    counter: int
    command_id: int
    payload_len: int
    header: bytes
    payload: bytes
    tag: bytes

    @property
    def auth(self) -> bool:
        return bool(self.flags & FLAG_AUTH)

    @property
    def from_device(self) -> bool:
        return bool(self.flags & FLAG_FROM_DEVICE)

    @property
    def push(self) -> bool:
        return bool(self.flags & FLAG_PUSH)


def compute_tag(key: bytes, header: bytes, payload: bytes) -> bytes:
    """SPEC 3.3: first 16 bytes of HMAC-SHA256(K_dir, header || payload)."""
    return hmac.new(key, header + payload, hashlib.sha256).digest()[:TAG_LEN]


def build_raw(
    msg_type: int,
    flags: int,
    session_id: int,
    counter: int,
    command_id: int,
    payload: bytes,
    key: bytes | None = None,
) -> bytes:
    """header | payload | tag (if AUTH) | crc, before stuffing."""
    if flags & FLAG_RESERVED:
        raise ValueError("reserved flag bits set")
    header = pack_header(msg_type, flags, session_id, counter, command_id, len(payload))
    body = header + payload
    if flags & FLAG_AUTH:
        if key is None:
            raise ValueError("AUTH frame needs a key")
        body += compute_tag(key, header, payload)
    return body + struct.pack("<I", crc32c(body))


def encode_frame(
    msg_type: int,
    flags: int,
    session_id: int,
    counter: int,
    command_id: int,
    payload: bytes,
    key: bytes | None = None,
) -> bytes:
    """Wire bytes, with a 0x00 delimiter before and after (SPEC 2.3)."""
    raw = build_raw(msg_type, flags, session_id, counter, command_id, payload, key)
    return b"\x00" + cobs_encode(raw) + b"\x00"


def decode_raw(encoded: bytes) -> Frame:
    """Apply SPEC 2.4 steps 1-6 to one run of bytes found between delimiters."""
    if len(encoded) > MAX_ENCODED:
        raise OversizeFrame(f"run of {len(encoded)} bytes exceeds {MAX_ENCODED}")
    raw = cobs_decode(encoded)
    if len(raw) < MIN_RAW:
        raise MalformedFrame(f"frame of {len(raw)} bytes is shorter than {MIN_RAW}")
    body, crc_bytes = raw[:-CRC_LEN], raw[-CRC_LEN:]
    if crc32c(body) != struct.unpack("<I", crc_bytes)[0]:
        raise CrcError("CRC-32C mismatch")
    h = parse_header(raw)
    if h["version"] != PROTOCOL_VERSION:
        raise UnsupportedVersion(f"protocol version {h['version']}")
    if h["flags"] & FLAG_RESERVED:
        raise MalformedFrame(f"reserved flag bits set: 0x{h['flags']:02x}")
    if h["payload_len"] > MAX_PAYLOAD:  # SPEC 2.1 says 0..255; step 6 does not list it (see report)
        raise MalformedFrame(f"payload_len {h['payload_len']} above {MAX_PAYLOAD}")
    tag_len = TAG_LEN if h["flags"] & FLAG_AUTH else 0
    if HEADER_LEN + h["payload_len"] + tag_len + CRC_LEN != len(raw):
        raise MalformedFrame("payload_len disagrees with the frame size")
    end = HEADER_LEN + h["payload_len"]
    return Frame(
        header=raw[:HEADER_LEN],
        payload=raw[HEADER_LEN:end],
        tag=raw[end : end + tag_len],
        **h,
    )


def _strip_delimiters(wire: bytes) -> bytes:
    inner = wire.strip(b"\x00")
    if b"\x00" in inner:
        raise MalformedFrame("more than one frame")
    if not inner:
        raise MalformedFrame("empty frame")
    return inner


def decode_frame(wire: bytes) -> dict[str, Any]:
    """Decode one frame (with or without its delimiters) into header fields and payload fields.

    Raises ``FrameError`` subclasses for framing failures, ``UnknownMessageType`` and
    ``MalformedPayload`` for codec failures. Does not authenticate (see ``Session.verify``).
    """
    frame = decode_raw(_strip_delimiters(wire))
    name = message_name(frame.msg_type)
    return {
        "name": name,
        "version": frame.version,
        "msg_type": frame.msg_type,
        "flags": frame.flags,
        "session_id": frame.session_id,
        "counter": frame.counter,
        "command_id": frame.command_id,
        "payload_len": frame.payload_len,
        "header_hex": frame.header.hex(),
        "payload_hex": frame.payload.hex(),
        "tag_hex": frame.tag.hex(),
        "fields": decode_payload(frame.msg_type, frame.payload),
    }


@dataclass
class LinkStats:
    """SPEC 2.4 link counters."""

    bytes_received: int = 0
    frames_ok: int = 0
    crc_errors: int = 0
    malformed: int = 0
    oversize: int = 0
    bad_version: int = 0
    mac_errors: int = 0
    replays: int = 0
    sequence_gaps: int = 0
    stale: int = 0


class FrameDecoder:
    """Byte-fed receiver (SPEC 2.4). ``feed`` returns the well-formed frames completed so far.

    Runs are collected between 0x00 delimiters; a run that grows past 298 bytes is dropped with
    every byte up to the next delimiter, without storing them. A dropped run never costs a good
    frame: decoding restarts after its closing delimiter. Splitting of reads does not matter.
    """

    def __init__(self, stats: LinkStats | None = None) -> None:
        self.stats = stats if stats is not None else LinkStats()
        self.errors: list[FrameError] = []  # most recent dropped runs (bounded)
        self._buf = bytearray()
        self._discarding = False

    def reset(self) -> None:
        self._buf.clear()
        self._discarding = False

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        self.stats.bytes_received += len(data)
        pos = 0
        n = len(data)
        while pos < n:
            nxt = data.find(b"\x00", pos)
            chunk_end = n if nxt < 0 else nxt
            if not self._discarding:
                if len(self._buf) + (chunk_end - pos) > MAX_ENCODED:
                    # grew past 298 bytes: drop it and everything up to the next delimiter
                    self._buf.clear()
                    self._discarding = True
                    self.stats.oversize += 1
                    self._note(OversizeFrame(f"run longer than {MAX_ENCODED} bytes"))
                else:
                    self._buf += data[pos:chunk_end]
            if nxt < 0:
                break
            # delimiter
            if self._discarding:
                self._discarding = False
            elif self._buf:
                run = bytes(self._buf)
                self._buf.clear()
                frame = self._finish(run)
                if frame is not None:
                    frames.append(frame)
            pos = nxt + 1
        return frames

    def _finish(self, run: bytes) -> Frame | None:
        try:
            frame = decode_raw(run)
        except CrcError as exc:
            self.stats.crc_errors += 1
            self._note(exc)
        except UnsupportedVersion as exc:
            self.stats.bad_version += 1
            self._note(exc)
        except OversizeFrame as exc:  # cannot happen via feed, kept for completeness
            self.stats.oversize += 1
            self._note(exc)
        except MalformedFrame as exc:
            self.stats.malformed += 1
            self._note(exc)
        else:
            self.stats.frames_ok += 1
            return frame
        return None

    def _note(self, exc: FrameError) -> None:
        self.errors.append(exc)
        del self.errors[:-32]


# --------------------------------------------------------------------------------------------
# Session keys, tags, counters (SPEC 3.2 - 3.4)


def derive_session_keys(
    pairing_key: bytes, host_nonce: bytes, device_nonce: bytes, session_id: int
) -> tuple[bytes, bytes]:
    """Return ``(K_h2d, K_d2h)`` per SPEC 3.2 (HKDF-SHA256 with two output blocks)."""
    if len(pairing_key) != 32 or len(host_nonce) != 16 or len(device_nonce) != 16:
        raise ValueError("pairing key must be 32 bytes and nonces 16 bytes")
    salt = host_nonce + device_nonce
    prk = hmac.new(salt, pairing_key, hashlib.sha256).digest()
    info = HKDF_INFO_PREFIX + struct.pack("<I", session_id)
    t1 = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
    t2 = hmac.new(prk, t1 + info + b"\x02", hashlib.sha256).digest()
    return t1, t2


def load_pairing_key(path: str | os.PathLike[str]) -> bytes:
    """Read a SPEC 3.1 key file: '#' lines and blank lines ignored, the rest is 64 hex digits."""
    with open(path, encoding="ascii") as fh:
        digits = "".join(line.strip() for line in fh if line.strip() and not line.lstrip().startswith("#"))
    digits = "".join(digits.split())
    if len(digits) != 64:
        raise ValueError("pairing key file must hold exactly 64 hexadecimal digits")
    return bytes.fromhex(digits)


class Session:
    """One side's view of a session: transmit counter, last accepted counter, the two keys.

    ``role="host"`` sends with K_h2d and verifies with K_d2h; ``role="device"`` the reverse
    (used by the tests to judge host frames as the device would).
    """

    def __init__(
        self,
        session_id: int,
        k_h2d: bytes,
        k_d2h: bytes,
        role: str = "host",
        stats: LinkStats | None = None,
    ) -> None:
        if role not in ("host", "device"):
            raise ValueError("role must be 'host' or 'device'")
        self.session_id = session_id
        self.k_h2d = k_h2d
        self.k_d2h = k_d2h
        self.role = role
        self.tx_key, self.rx_key = (k_h2d, k_d2h) if role == "host" else (k_d2h, k_h2d)
        self.tx_counter = 0
        self.last_rx = 0
        self.stats = stats if stats is not None else LinkStats()

    @classmethod
    def derive(
        cls,
        pairing_key: bytes,
        host_nonce: bytes,
        device_nonce: bytes,
        session_id: int,
        role: str = "host",
        stats: LinkStats | None = None,
    ) -> Session:
        k_h2d, k_d2h = derive_session_keys(pairing_key, host_nonce, device_nonce, session_id)
        return cls(session_id, k_h2d, k_d2h, role=role, stats=stats)

    def seal(self, msg_type: int, command_id: int, payload: bytes, extra_flags: int = 0) -> bytes:
        """Build a tagged frame with the next transmit counter (SPEC 3.4); returns wire bytes."""
        self.tx_counter += 1
        flags = FLAG_AUTH | extra_flags
        if self.role == "device":
            flags |= FLAG_FROM_DEVICE
        return encode_frame(msg_type, flags, self.session_id, self.tx_counter, command_id, payload, self.tx_key)

    def check_tag(self, frame: Frame) -> bool:
        if not frame.auth or frame.session_id != self.session_id:
            return False
        return hmac.compare_digest(frame.tag, compute_tag(self.rx_key, frame.header, frame.payload))

    def verify(self, frame: Frame) -> None:
        """Tag first, then counter (SPEC 3.4). Raises MacError / ReplayError."""
        if not frame.auth:
            raise MacError("frame carries no tag")
        if frame.session_id != self.session_id:
            self.stats.mac_errors += 1
            raise MacError(f"frame for session 0x{frame.session_id:08x}, expected 0x{self.session_id:08x}")
        if not self.check_tag(frame):
            self.stats.mac_errors += 1
            raise MacError("tag does not verify")
        if frame.counter <= self.last_rx:
            self.stats.replays += 1
            raise ReplayError(f"counter {frame.counter} not above last accepted {self.last_rx}")
        if frame.counter > self.last_rx + 1:
            self.stats.sequence_gaps += 1
        self.last_rx = frame.counter


# --------------------------------------------------------------------------------------------
# Payload codec (SPEC 1 and 10)


ENUMS: dict[str, dict[int, str]] = {
    "DeviceKind": {1: "SCS", 2: "PUMP"},
    "Priority": {0: "NONE", 1: "LOW", 2: "MEDIUM", 3: "HIGH"},
    "AlarmState": {0: "NONE", 1: "ACTIVE", 2: "ACKNOWLEDGED", 3: "CLEARED"},
    "BatteryKind": {1: "PRIMARY", 2: "RECHARGEABLE"},
    "BatteryState": {0: "OK", 1: "LOW", 2: "RECHARGE_NOW", 3: "ERI", 4: "EOS", 5: "FAILED"},
    "Waveform": {1: "TONIC", 2: "BURST", 3: "HIGH_FREQUENCY"},
    "DosingMode": {0: "STOPPED", 1: "CONTINUOUS", 2: "FLEX"},
    "BolusKind": {1: "CLINICIAN", 2: "PATIENT", 3: "BRIDGE", 4: "PRIMING"},
    "MotorState": {0: "OK", 1: "STALLED", 2: "OCCLUDED"},
    "CommandFate": {1: "HANDLED", 2: "NOT_HANDLED"},
    "ToneKind": {0: "NONE", 1: "SINGLE", 2: "DUAL"},
    "Actor": {0: "DEVICE", 1: "CLINICIAN", 2: "PATIENT"},
    "Lifecycle": {1: "TRIAL", 2: "IMPLANTED", 3: "TRIAL_ENDED", 4: "EXPLANTED"},
    "DiaryKind": {1: "NRS", 2: "MEDICATION", 3: "PGIC", 4: "ODI", 5: "MAS", 6: "SIDE_EFFECTS", 7: "RELIEF"},
    "DiarySource": {0: "CONTROLLER", 1: "PATIENT", 2: "CLINICIAN"},
    "Drug": {
        1: "MORPHINE",
        2: "HYDROMORPHONE",
        3: "BUPIVACAINE",
        4: "CLONIDINE",
        5: "ZICONOTIDE",
        6: "BACLOFEN",
        7: "SUFENTANIL",
        8: "FENTANYL",
    },
    "EventCode": {
        0x01: "DEVICE_RESET",
        0x02: "SESSION_OPENED",
        0x03: "SESSION_CLOSED",
        0x04: "SESSION_EXPIRED",
        0x05: "AUTH_FAILURE",
        0x06: "LOCKOUT",
        0x07: "CLOCK_SET",
        0x08: "ALARM_ACKNOWLEDGED",
        0x09: "COMM_ERROR",
        0x0A: "TELEMETRY_FLOOD",
        0x0B: "ALARM_TEST",
        0x0C: "MEMORY_ERROR",
        0x0D: "LIFECYCLE_CHANGED",
        0x10: "MEMORY_ERROR_MINOR",
        0x100: "BATTERY_LOW",
        0x101: "RECHARGE_NOW",
        0x102: "BATTERY_ERI",
        0x103: "BATTERY_EOS",
        0x104: "CHARGING_STARTED",
        0x105: "CHARGING_COMPLETE",
        0x106: "BATTERY_FAILURE",
        0x107: "BATTERY_REDUCED_PERFORMANCE",
        0x108: "REPLACEMENT_ADVISED",
        0x109: "BATTERY_DEEP_DISCHARGE",
        0x200: "THERAPY_ON",
        0x201: "THERAPY_OFF",
        0x202: "PROGRAM_CHANGED",
        0x203: "IMPEDANCE_MEASURED",
        0x204: "LEAD_OPEN",
        0x205: "LEAD_SHORT",
        0x206: "CHARGE_DENSITY_LIMIT",
        0x207: "DENSITY_OVERRIDE",
        0x208: "CONTACTS_DISABLED",
        0x20B: "AMPLITUDE_CHANGED",
        0x20C: "PROGRAM_SELECTED",
        0x20D: "MRI_MODE_ON",
        0x20E: "MRI_MODE_OFF",
        0x20F: "LEAD_DISCONNECTED",
        0x300: "LOW_RESERVOIR",
        0x301: "EMPTY_RESERVOIR",
        0x302: "MOTOR_STALL",
        0x303: "MOTOR_STALL_RECOVERY",
        0x304: "OCCLUSION",
        0x305: "DOSING_CHANGED",
        0x306: "BOLUS_STARTED",
        0x307: "BOLUS_COMPLETE",
        0x308: "PATIENT_BOLUS_DENIED",
        0x309: "REFILL",
        0x30A: "REFILL_DISCREPANCY",
        0x30B: "PUMP_STOPPED",
        0x30C: "PUMP_STARTED",
        0x30D: "MRI_SUSPEND",
        0x30E: "MRI_RESUME",
        0x30F: "FAV_CLOSED",
        0x310: "FAV_RESET",
        0x311: "MRI_CHECKED",
    },
    # SPEC 4.1 error codes
    "ErrorCode": {
        1: "MALFORMED",
        2: "CRC",
        3: "NO_SESSION",
        4: "BAD_MAC",
        5: "REPLAY",
        6: "OUT_OF_RANGE",
        7: "UNSUPPORTED",
        8: "BUSY",
        9: "DEVICE_FAULT",
        10: "LOCKED_OUT",
        11: "STATE_CONFLICT",
        12: "NOT_PERMITTED",
        13: "OVERRIDE_REQUIRED",
        14: "OFF_STEP",
    },
}

CAPABILITIES = {
    0x01: "STIMULATION",
    0x02: "DRUG_DELIVERY",
    0x04: "RECHARGEABLE",
    0x08: "EVENT_PUSH",
    0x10: "CLOCK_SET",
    0x20: "IMPEDANCE",
    0x40: "PATIENT_BOLUS",
    0x80: "DIARY",
}

# Field types: ("int", struct code) | ("bool",) | ("text", max) | ("bytes", n) | ("blob", max) |
# ("enum", name, struct code) | ("list", item type, max) | ("record", name)
U8, U16, U32, U64 = ("int", "B"), ("int", "H"), ("int", "I"), ("int", "Q")
I16, I32, I64 = ("int", "h"), ("int", "i"), ("int", "q")
BOOL = ("bool",)


def TEXT(n: int) -> tuple:  # noqa: N802
    return ("text", n)


def BYTES(n: int) -> tuple:  # noqa: N802
    return ("bytes", n)


def BLOB(n: int) -> tuple:  # noqa: N802
    return ("blob", n)


def ENUM(name: str, code: str = "B") -> tuple:  # noqa: N802
    return ("enum", name, code)


def LIST(item: tuple, n: int) -> tuple:  # noqa: N802
    return ("list", item, n)


def RECORD(name: str) -> tuple:  # noqa: N802
    return ("record", name)


Fields = list[tuple[str, tuple]]

RECORDS: dict[str, Fields] = {
    "Area": [
        ("anode_mask", U32),
        ("cathode_mask", U32),
        ("amplitude_ua", U16),
        ("pulse_width_us", U16),
        ("rate_hz", U16),
        ("waveform", ENUM("Waveform")),
        ("burst_pulses", U8),
        ("burst_rate_hz", U16),
        ("cycle_on_s", U16),
        ("cycle_off_s", U16),
    ],
    "ActiveAlarm": [
        ("code", ENUM("EventCode", "H")),
        ("priority", ENUM("Priority")),
        ("state", ENUM("AlarmState")),
    ],
    "EventRecord": [
        ("seq", U32),
        ("time_ms", U64),
        ("code", ENUM("EventCode", "H")),
        ("priority", ENUM("Priority")),
        ("state", ENUM("AlarmState")),
        ("arg0", I32),
        ("arg1", I32),
        ("actor", ENUM("Actor")),
    ],
    "DrugLevel": [("drug", ENUM("Drug")), ("conc_ng_per_ml", U32), ("dose_ng_per_day", U32), ("bolus_ng_24h", U32)],
    "DrugConcentration": [("drug", ENUM("Drug")), ("conc_ng_per_ml", U32)],
    "DiaryRecord": [
        ("seq", U32),
        ("time_ms", U64),
        ("kind", ENUM("DiaryKind")),
        ("value", U16),
        ("source", ENUM("DiarySource")),
    ],
    "FlexStep": [("start_min", U16), ("rate_ul_per_day", U32)],
    "PeriodicBolus": [("start_min", U16), ("volume_ul", U32), ("duration_min", U16)],
    "PatientBolusSettings": [
        ("enabled", BOOL),
        ("dose_ul", U32),
        ("duration_min", U16),
        ("lockout_min", U16),
        ("max_per_day", U8),
    ],
}

MESSAGES: dict[int, tuple[str, Fields]] = {
    0x01: ("IdentifyRequest", []),
    0x02: ("SessionOpen", [("host_nonce", BYTES(16)), ("open_proof", BYTES(16))]),
    0x03: ("SessionConfirm", []),
    0x04: ("SessionClose", []),
    0x10: ("StatusRequest", []),
    0x11: ("EventLogRead", [("from_seq", U32), ("max_count", U8)]),
    0x12: ("AlarmAck", [("code", ENUM("EventCode", "H"))]),
    0x13: ("ClockRead", []),
    0x14: ("ClockSet", [("time_ms", U64)]),
    0x15: ("CommandQuery", [("command_id", U32), ("request_type", U8), ("request_digest", BYTES(16))]),
    0x16: ("AlarmTest", []),
    0x17: ("LifecycleSet", [("lifecycle", ENUM("Lifecycle"))]),
    0x18: ("DiaryRead", [("from_seq", U32), ("max_count", U8)]),
    0x19: ("DiaryAdd", [("kind", ENUM("DiaryKind")), ("value", U16), ("time_ms", U64)]),
    0x20: (
        "StimProgramSet",
        [
            ("program", U8),
            ("activate", BOOL),
            ("areas", LIST(RECORD("Area"), 4)),
            ("patient_amp_max_ua", U16),
            ("ramp_s", U8),
            ("density_override", BOOL),
        ],
    ),
    0x21: ("TherapySet", [("on", BOOL)]),
    0x22: ("ImpedanceCheck", []),
    0x23: ("ProgramSelect", [("program", U8)]),
    0x24: ("AmplitudeSet", [("area", U8), ("amplitude_ua", U16)]),
    0x25: ("ChargingSet", [("on", BOOL)]),
    0x26: ("ProgramRead", [("program", U8)]),
    0x27: ("MriModeSet", [("on", BOOL)]),
    0x30: (
        "DosingSet",
        [
            ("mode", ENUM("DosingMode")),
            ("rate_ul_per_day", U32),
            ("steps", LIST(RECORD("FlexStep"), 12)),
            ("patient_bolus", RECORD("PatientBolusSettings")),
            ("alarm_volume_ul", U32),
            ("periodic_boluses", LIST(RECORD("PeriodicBolus"), 12)),
            ("utc_offset_min", I16),
        ],
    ),
    0x31: ("Bolus", [("kind", ENUM("BolusKind")), ("volume_ul", U32), ("duration_min", U16)]),
    0x32: (
        "Refill",
        [
            ("withdrawn_ul", U32),
            ("added_ul", U32),
            ("drugs", LIST(RECORD("DrugConcentration"), 4)),
            ("concentration_confirmed", BOOL),
            ("discrepancy_accepted", BOOL),
            ("bridge_bolus", BOOL),
        ],
    ),
    0x33: ("ScheduleRead", []),
    0x34: ("MriCheckDone", []),
    0x81: (
        "IdentifyReply",
        [
            ("kind", ENUM("DeviceKind")),
            ("model", TEXT(24)),
            ("serial", TEXT(16)),
            ("firmware", TEXT(16)),
            ("protocol_version", U8),
            ("schema_fingerprint", U32),
            ("capabilities", U32),
            ("max_payload", U16),
            ("lifecycle", ENUM("Lifecycle")),
        ],
    ),
    0x82: (
        "SessionChallenge",
        [
            ("device_nonce", BYTES(16)),
            ("idle_timeout_s", U16),
            ("absolute_timeout_s", U16),
            ("role", ENUM("Actor")),
        ],
    ),
    0x83: ("CommandAck", [("event_seq", U32)]),
    0x90: (
        "ScsStatus",
        [
            ("time_ms", U64),
            ("therapy_on", BOOL),
            ("active_program", U8),
            ("areas", LIST(RECORD("Area"), 4)),
            ("patient_amp_max_ua", U16),
            ("battery_kind", ENUM("BatteryKind")),
            ("battery_state", ENUM("BatteryState")),
            ("battery_pct_x100", U16),
            ("battery_mv", U16),
            ("charging", BOOL),
            ("coupling_pct", U8),
            ("capacity_pct_x100", U16),
            ("days_to_recharge_x100", U32),
            ("eri_ms", U64),
            ("eos_ms", U64),
            ("tissue_power_uw", U32),
            ("charge_density_x100", U16),
            ("impedance_ohm", LIST(U16, 32)),
            ("alarms", LIST(RECORD("ActiveAlarm"), 8)),
            ("last_event_seq", U32),
            ("stored_programs", U16),
            ("mri_mode", BOOL),
            ("shannon_k_x100", I16),
            ("disabled_contacts", U32),
            ("lifecycle", ENUM("Lifecycle")),
            ("diary_seq", U32),
        ],
    ),
    0x91: (
        "PumpStatus",
        [
            ("time_ms", U64),
            ("mode", ENUM("DosingMode")),
            ("infusing", BOOL),
            ("reservoir_ul", U32),
            ("capacity_ul", U32),
            ("alarm_volume_ul", U32),
            ("rate_ul_per_day", U32),
            ("drugs", LIST(RECORD("DrugLevel"), 4)),
            ("patient_bolus", RECORD("PatientBolusSettings")),
            ("patient_boluses_today", U8),
            ("bolus_active", BOOL),
            ("battery_state", ENUM("BatteryState")),
            ("battery_pct_x100", U16),
            ("battery_mv", U16),
            ("eri_ms", U64),
            ("eos_ms", U64),
            ("motor_state", ENUM("MotorState")),
            ("low_alarm_ms", U64),
            ("empty_ms", U64),
            ("empty_earliest_ms", U64),
            ("empty_latest_ms", U64),
            ("next_refill_ms", U64),
            ("alarms", LIST(RECORD("ActiveAlarm"), 8)),
            ("last_event_seq", U32),
            ("tone", ENUM("ToneKind")),
            ("tone_code", U16),
            ("next_tone", ENUM("ToneKind")),
            ("next_tone_ms", U64),
            ("mri_suspended", BOOL),
            ("mri_check_due", BOOL),
            ("valve_closed", BOOL),
            ("replacement_ms", U64),
            ("lifecycle", ENUM("Lifecycle")),
            ("diary_seq", U32),
        ],
    ),
    0x92: (
        "EventLogPage",
        [("first_seq", U32), ("last_seq", U32), ("entries", LIST(RECORD("EventRecord"), 8))],
    ),
    0x93: ("ClockReply", [("time_ms", U64), ("speed_x1000", U32)]),
    0x94: (
        "CommandOutcome",
        [("command_id", U32), ("fate", ENUM("CommandFate")), ("reply_type", U8), ("reply", BLOB(248))],
    ),
    0x95: (
        "DiaryPage",
        [("first_seq", U32), ("last_seq", U32), ("entries", LIST(RECORD("DiaryRecord"), 8))],
    ),
    0xA2: ("ImpedanceReply", [("time_ms", U64), ("impedance_ohm", LIST(U16, 32)), ("event_seq", U32)]),
    0xA6: (
        "ProgramReply",
        [
            ("program", U8),
            ("active", BOOL),
            ("areas", LIST(RECORD("Area"), 4)),
            ("patient_amp_max_ua", U16),
            ("ramp_s", U8),
        ],
    ),
    0xB1: ("BolusReply", [("event_seq", U32), ("volume_ul", U32), ("ends_ms", U64)]),
    0xB2: (
        "RefillReply",
        [
            ("event_seq", U32),
            ("expected_residual_ul", U32),
            ("discrepancy_ul", I32),
            ("reservoir_ul", U32),
            ("next_refill_ms", U64),
        ],
    ),
    0xB3: (
        "ScheduleReply",
        [
            ("mode", ENUM("DosingMode")),
            ("rate_ul_per_day", U32),
            ("steps", LIST(RECORD("FlexStep"), 12)),
            ("periodic_boluses", LIST(RECORD("PeriodicBolus"), 12)),
            ("utc_offset_min", I16),
            ("patient_bolus", RECORD("PatientBolusSettings")),
            ("alarm_volume_ul", U32),
            ("daily_ul", U32),
            ("local_minute", U16),
        ],
    ),
    0xE0: ("EventPush", [("event", RECORD("EventRecord"))]),
    0xE1: ("DiaryPush", [("entry", RECORD("DiaryRecord"))]),
    0xFF: (
        "ErrorReply",
        [
            ("code", ENUM("ErrorCode")),
            ("field", TEXT(32)),
            ("value", I64),
            ("limit", I64),
            ("retry_after_ms", U32),
            ("message", TEXT(160)),
        ],
    ),
}

MESSAGE_TYPES: dict[str, int] = {name: t for t, (name, _) in MESSAGES.items()}

IDENTIFY_REQUEST = 0x01
SESSION_OPEN = 0x02
SESSION_CONFIRM = 0x03
SESSION_CLOSE = 0x04
STATUS_REQUEST = 0x10
IDENTIFY_REPLY = 0x81
SESSION_CHALLENGE = 0x82
COMMAND_ACK = 0x83
SCS_STATUS = 0x90
PUMP_STATUS = 0x91
EVENT_PUSH = 0xE0
DIARY_PUSH = 0xE1
ERROR_REPLY = 0xFF

# SPEC 3.5: only these are accepted by a device without a tag.
UNAUTHENTICATED_REQUESTS = frozenset({IDENTIFY_REQUEST, SESSION_OPEN})


def message_name(msg_type: int) -> str:
    try:
        return MESSAGES[msg_type][0]
    except KeyError:
        raise UnknownMessageType(f"unknown message type 0x{msg_type:02x}") from None


def _fields_of(msg_type: int) -> Fields:
    try:
        return MESSAGES[msg_type][1]
    except KeyError:
        raise UnknownMessageType(f"unknown message type 0x{msg_type:02x}") from None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedPayload("payload too short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, code: str) -> int:
        s = struct.Struct("<" + code)
        return s.unpack(self.take(s.size))[0]


def _decode_value(r: _Reader, ftype: tuple, name: str) -> Any:
    kind = ftype[0]
    if kind == "int":
        return r.unpack(ftype[1])
    if kind == "bool":
        b = r.unpack("B")
        if b not in (0, 1):
            raise MalformedPayload(f"{name}: bool byte {b}")
        return bool(b)
    if kind == "enum":
        v = r.unpack(ftype[2])
        members = ENUMS[ftype[1]]
        if v not in members:
            raise MalformedPayload(f"{name}: {v} is not a {ftype[1]}")
        return members[v]
    if kind == "text":
        n = r.unpack("B")
        if n > ftype[1]:
            raise MalformedPayload(f"{name}: text of {n} bytes, at most {ftype[1]}")
        try:
            return r.take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPayload(f"{name}: invalid UTF-8") from None
    if kind == "bytes":
        return r.take(ftype[1]).hex()
    if kind == "blob":
        n = r.unpack("B")
        if n > ftype[1]:
            raise MalformedPayload(f"{name}: {n} bytes, at most {ftype[1]}")
        return r.take(n).hex()
    if kind == "list":
        n = r.unpack("B")
        if n > ftype[2]:
            raise MalformedPayload(f"{name}: list count {n}, at most {ftype[2]}")
        return [_decode_value(r, ftype[1], f"{name}[{i}]") for i in range(n)]
    if kind == "record":
        return _decode_fields(r, RECORDS[ftype[1]], name + ".")
    raise AssertionError(ftype)


def _decode_fields(r: _Reader, fields: Fields, prefix: str = "") -> dict[str, Any]:
    return {fname: _decode_value(r, ftype, prefix + fname) for fname, ftype in fields}


def decode_payload(msg_type: int, payload: bytes) -> dict[str, Any]:
    """Decode a payload into a dict keyed by the SPEC 10 field names.

    Enumerations become their NAME strings, ``bytes[n]`` hex strings, lists lists, records dicts.
    Raises ``UnknownMessageType`` or ``MalformedPayload`` (including trailing bytes).
    """
    fields = _fields_of(msg_type)
    if len(payload) > MAX_PAYLOAD:
        raise MalformedPayload("payload longer than 255 bytes")
    r = _Reader(payload)
    out = _decode_fields(r, fields)
    if r.pos != len(payload):
        raise MalformedPayload(f"{len(payload) - r.pos} trailing bytes after {message_name(msg_type)}")
    return out


def _encode_value(ftype: tuple, value: Any, name: str) -> bytes:
    kind = ftype[0]
    if kind == "int":
        return struct.pack("<" + ftype[1], int(value))
    if kind == "bool":
        if value not in (0, 1, True, False):
            raise ValueError(f"{name}: not a bool")
        return bytes([1 if value else 0])
    if kind == "enum":
        members = ENUMS[ftype[1]]
        if isinstance(value, str):
            by_name = {v: k for k, v in members.items()}
            if value not in by_name:
                raise ValueError(f"{name}: {value!r} is not a {ftype[1]}")
            value = by_name[value]
        if value not in members:
            raise ValueError(f"{name}: {value!r} is not a {ftype[1]}")
        return struct.pack("<" + ftype[2], value)
    if kind == "text":
        raw = value.encode("utf-8")
        if len(raw) > ftype[1]:
            raise ValueError(f"{name}: text longer than {ftype[1]} bytes")
        return bytes([len(raw)]) + raw
    if kind == "bytes":
        raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
        if len(raw) != ftype[1]:
            raise ValueError(f"{name}: need exactly {ftype[1]} bytes")
        return raw
    if kind == "blob":
        raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
        if len(raw) > ftype[1]:
            raise ValueError(f"{name}: more than {ftype[1]} bytes")
        return bytes([len(raw)]) + raw
    if kind == "list":
        if len(value) > ftype[2]:
            raise ValueError(f"{name}: more than {ftype[2]} items")
        return bytes([len(value)]) + b"".join(
            _encode_value(ftype[1], item, f"{name}[{i}]") for i, item in enumerate(value)
        )
    if kind == "record":
        return _encode_fields(RECORDS[ftype[1]], value, name + ".")
    raise AssertionError(ftype)


def _encode_fields(fields: Fields, values: dict[str, Any] | None, prefix: str = "") -> bytes:
    values = values or {}
    unknown = set(values) - {f for f, _ in fields}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(prefix + u for u in unknown)}")
    return b"".join(_encode_value(ftype, values[fname], prefix + fname) for fname, ftype in fields)


def encode_payload(msg_type: int, fields: dict[str, Any] | None = None) -> bytes:
    payload = _encode_fields(_fields_of(msg_type), fields)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError("payload longer than 255 bytes")
    return payload


# --------------------------------------------------------------------------------------------
# Client (SPEC 3.5, 4)


@dataclass
class Reply:
    msg_type: int
    name: str
    fields: dict[str, Any]
    frame: Frame = field(repr=False)
    session: Session | None = field(default=None, repr=False)


class CleanroomClient:
    """Host side of the protocol over a pyserial-like port.

    ``port`` needs ``write(bytes)``, ``read(n)`` (returns b"" on timeout; it must not block
    forever) and ``in_waiting``. Each request is stop-and-wait; if no valid reply arrives within
    ``timeout`` seconds it is sent again with the same command_id (inside a session with the next
    counter and a new tag), at most ``retries`` times, then ``ClientTimeout`` is raised (SPEC 4).

    Raises ``DeviceError`` on an ErrorReply, ``MacError`` on a frame of the current session whose
    tag does not verify, ``ReplayError`` on a replayed counter, ``SchemaMismatch`` if the device
    speaks another protocol version or schema. Verified ``EventPush`` events received while
    waiting are kept in ``pushes``.
    """

    def __init__(
        self,
        port: Any,
        pairing_key: bytes,
        rng: Callable[[int], bytes] = os.urandom,
        *,
        timeout: float = 2.0,
        retries: int = 3,
        expected_fingerprint: int | None = SCHEMA_FINGERPRINT,
    ) -> None:
        if len(pairing_key) != 32:
            raise ValueError("pairing key must be 32 bytes")
        self.port = port
        self._pairing_key = bytes(pairing_key)
        self.rng = rng
        self.timeout = timeout
        self.retries = retries
        self.expected_fingerprint = expected_fingerprint
        self.stats = LinkStats()
        self.decoder = FrameDecoder(self.stats)
        self.session: Session | None = None
        self.challenge: dict[str, Any] | None = None
        self.identity: dict[str, Any] | None = None
        self.pushes: list[dict[str, Any]] = []  # verified EventPush events, oldest first
        self.diary_pushes: list[dict[str, Any]] = []  # verified DiaryPush entries, oldest first (SPEC 4.7)
        self._backlog: list[Frame] = []
        first = int.from_bytes(self.rng(4), "little")
        self._command_id = first or 1

    # ---- public API

    def identify(self) -> dict[str, Any]:
        """IdentifyRequest (untagged); refuses a device of another protocol version or schema."""
        reply = self._transact(IDENTIFY_REQUEST, None, {IDENTIFY_REPLY}, session=None, reply_tagged=False)
        info = reply.fields
        if info["protocol_version"] != PROTOCOL_VERSION:
            raise SchemaMismatch(f"device speaks protocol version {info['protocol_version']}")
        if self.expected_fingerprint is not None and info["schema_fingerprint"] != self.expected_fingerprint:
            raise SchemaMismatch(
                f"device schema fingerprint 0x{info['schema_fingerprint']:08x}, "
                f"expected 0x{self.expected_fingerprint:08x}"
            )
        self.identity = info
        return info

    def open_session(self) -> None:
        """SessionOpen -> verified SessionChallenge -> SessionConfirm -> CommandAck (SPEC 3.5).

        The new session replaces ``self.session`` only once the device has acknowledged it.
        """
        host_nonce = self.rng(16)
        if len(host_nonce) != 16:
            raise ValueError("rng must return the number of bytes asked for")
        # SPEC 3.5: the proof of the key is HMAC-SHA256(K, "implant-telemetry/1 open" || host_nonce)[:16].
        proof = hmac.new(self._pairing_key, b"implant-telemetry/1 open" + host_nonce, hashlib.sha256).digest()[:16]
        reply = self._transact(
            SESSION_OPEN,
            {"host_nonce": host_nonce, "open_proof": proof},
            {SESSION_CHALLENGE},
            session=None,
            reply_tagged=True,
            host_nonce=host_nonce,
        )
        if reply.session is None:  # cannot happen: _verify_challenge sets it
            raise UnexpectedReply("SessionChallenge was not verified")
        self._transact(SESSION_CONFIRM, None, {COMMAND_ACK}, session=reply.session, reply_tagged=True)
        self.session = reply.session
        self.challenge = reply.fields

    def status(self) -> dict[str, Any]:
        """StatusRequest in the session; returns the ScsStatus or PumpStatus fields."""
        return self.request(STATUS_REQUEST, None, expected={SCS_STATUS, PUMP_STATUS}).fields

    def close_session(self) -> None:
        try:
            self.request(SESSION_CLOSE, None, expected={COMMAND_ACK})
        finally:
            self.session = None

    def request(
        self, msg_type: int | str, fields: dict[str, Any] | None = None, expected: set[int] | None = None
    ) -> Reply:
        """Send any tagged request in the session and return its verified (non-error) reply."""
        if isinstance(msg_type, str):
            msg_type = MESSAGE_TYPES[msg_type]
        if msg_type in (IDENTIFY_REQUEST, SESSION_OPEN, SESSION_CONFIRM):
            raise ValueError("use identify() / open_session() for these")
        if self.session is None:
            raise NoSessionError(f"{message_name(msg_type)} needs a session; call open_session() first")
        if expected is None:
            expected = {t for t in MESSAGES if t >= 0x80 and t not in (EVENT_PUSH, DIARY_PUSH, ERROR_REPLY)}
        return self._transact(msg_type, fields, expected, session=self.session, reply_tagged=True)

    # ---- internals

    def _next_command_id(self) -> int:
        cid = self._command_id
        self._command_id = ((cid + 1) & 0xFFFFFFFF) or 1
        return cid

    def _transact(
        self,
        msg_type: int,
        fields: dict[str, Any] | None,
        expected: set[int],
        *,
        session: Session | None,
        reply_tagged: bool,
        host_nonce: bytes | None = None,
    ) -> Reply:
        """Stop-and-wait request. ``session`` None: send untagged."""
        payload = encode_payload(msg_type, fields)
        command_id = self._next_command_id()
        attempts = 0
        while True:
            if session is not None:
                wire = session.seal(msg_type, command_id, payload)
            else:
                wire = encode_frame(msg_type, 0, 0, 0, command_id, payload)
            self.port.write(wire)
            attempts += 1
            deadline = time.monotonic() + self.timeout
            while True:
                frame = self._next_frame(deadline)
                if frame is None:
                    break  # timed out
                outcome = self._judge(frame, command_id, expected, session, reply_tagged, host_nonce)
                if outcome is _RESEND:
                    break
                if outcome is not None:
                    return outcome
            if attempts > self.retries:
                raise ClientTimeout(
                    f"no valid reply to {message_name(msg_type)} (command_id {command_id}) "
                    f"after {attempts} attempt(s), {self.timeout:.3g} s each"
                )

    def _next_frame(self, deadline: float) -> Frame | None:
        """Next well-formed frame from the port, or None once ``deadline`` has passed."""
        while not self._backlog:
            waiting = int(getattr(self.port, "in_waiting", 0) or 0)
            data = self.port.read(max(1, waiting))
            if data:
                self._backlog.extend(self.decoder.feed(bytes(data)))
            if not self._backlog and time.monotonic() >= deadline:
                return None
            if not data:
                time.sleep(0.001)
        return self._backlog.pop(0)

    def _judge(
        self,
        frame: Frame,
        command_id: int,
        expected: set[int],
        session: Session | None,
        reply_tagged: bool,
        host_nonce: bytes | None,
    ) -> Reply | object | None:
        """Judge one received frame: None = drop it and keep waiting, _RESEND, or the reply."""
        if not frame.from_device:
            self.stats.stale += 1  # a host frame (echo, reflection): never acted on
            return None
        if not frame.auth:
            return self._judge_untagged(frame, command_id, expected, reply_tagged)
        if host_nonce is not None and frame.command_id == command_id and frame.msg_type == SESSION_CHALLENGE:
            return self._verify_challenge(frame, host_nonce)
        rx = session or self.session
        if rx is None or frame.session_id != rx.session_id:
            self.stats.stale += 1  # tagged frame of no session we hold (an older one): drop
            return None
        rx.verify(frame)  # tag first, then counter: MacError / ReplayError
        if frame.msg_type == EVENT_PUSH:
            self.pushes.append(decode_payload(frame.msg_type, frame.payload)["event"])
            return None
        if frame.msg_type == DIARY_PUSH:
            self.diary_pushes.append(decode_payload(frame.msg_type, frame.payload)["entry"])
            return None
        if frame.command_id != command_id or session is None or not reply_tagged:
            self.stats.stale += 1  # stale reply (unknown command_id): dropped silently
            return None
        return self._reply(frame, expected)

    def _judge_untagged(
        self, frame: Frame, command_id: int, expected: set[int], reply_tagged: bool
    ) -> Reply | object | None:
        # SPEC 4: an untagged frame is accepted only as an ErrorReply or as the reply to an
        # untagged request.
        if frame.msg_type == ERROR_REPLY:
            fields = decode_payload(frame.msg_type, frame.payload)
            if frame.command_id == 0:  # CRC / version hints
                if fields["code"] == "CRC":
                    return _RESEND
                if fields["code"] == "UNSUPPORTED":
                    raise DeviceError(fields, 0, tagged=False)
                return None
            if frame.command_id != command_id:
                self.stats.stale += 1
                return None
            if fields["code"] == "NO_SESSION":
                self.session = None
            raise DeviceError(fields, frame.command_id, tagged=False)
        if reply_tagged or frame.command_id != command_id:
            self.stats.stale += 1
            return None
        return self._reply(frame, expected)

    def _verify_challenge(self, frame: Frame, host_nonce: bytes) -> Reply:
        """Derive keys from the challenge's session_id and device_nonce, then verify its tag."""
        if frame.session_id == 0:
            raise UnexpectedReply("SessionChallenge with session_id 0")
        fields = decode_payload(frame.msg_type, frame.payload)  # read, not acted on until verified
        session = Session.derive(
            self._pairing_key,
            host_nonce,
            bytes.fromhex(fields["device_nonce"]),
            frame.session_id,
            role="host",
            stats=self.stats,
        )
        session.verify(frame)  # MacError: the device does not hold our pairing key
        return Reply(frame.msg_type, message_name(frame.msg_type), fields, frame, session)

    def _reply(self, frame: Frame, expected: set[int]) -> Reply:
        fields = decode_payload(frame.msg_type, frame.payload)
        if frame.msg_type == ERROR_REPLY:
            raise DeviceError(fields, frame.command_id, tagged=frame.auth)
        if frame.msg_type not in expected:
            raise UnexpectedReply(f"unexpected {message_name(frame.msg_type)} to command_id {frame.command_id}")
        return Reply(frame.msg_type, message_name(frame.msg_type), fields, frame)


_RESEND = object()
