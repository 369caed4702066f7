"""Message codec: round trip of every message, size limits, decode and encode errors, schema fingerprint.

The Hypothesis strategies are built generically from each class's compiled ``Layout``: every
wire type of ``fields.py`` maps to a strategy over exactly the values it can carry, so a new
message or field is covered without touching this file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import codec
from protocols.codec import (
    REGISTRY,
    SCHEMA_FINGERPRINT,
    decode_payload,
    encode_payload,
    max_payload_size,
    message_class,
    schema_text,
)
from protocols.errors import CodecError, EncodeError, ErrorCode, MalformedPayload, ProtocolError, UnknownMessageType
from protocols.fields import Blob, Bool, Enum, FixedBytes, Int, ListOf, Record, Text, WireType, layout_of
from protocols.framing import MAX_PAYLOAD, TAG_SIZE, Frame, FrameDecoder, FrameFlags, encode_frame
from protocols.messages import (
    MESSAGES,
    Bolus,
    BolusKind,
    ClockSet,
    DosingMode,
    DosingSet,
    ErrorReply,
    EventLogPage,
    EventLogRead,
    IdentifyReply,
    Message,
    PatientBolusSettings,
    ScsStatus,
    SessionOpen,
    TherapySet,
)
from tests.fakes import AREA, IDENTITY, scs_status

ROOT = Path(__file__).resolve().parent.parent


# --- generic strategies from the wire types ------------------------------------------------------


def _text(max_bytes: int) -> st.SearchStrategy[str]:
    """Any UTF-8 text (non-ASCII included) that fits ``max_bytes`` encoded bytes."""
    chars = st.characters(codec="utf-8")
    return st.text(chars, max_size=max_bytes).map(
        lambda s: s.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")
    )


def wire_strategy(wire: WireType) -> st.SearchStrategy:
    """Every value a field of this wire type can carry."""
    if isinstance(wire, Bool):
        return st.booleans()
    if isinstance(wire, Enum):
        return st.sampled_from(list(wire.enum_cls))
    if isinstance(wire, Int):
        return st.integers(wire.low, wire.high)
    if isinstance(wire, FixedBytes):
        return st.binary(min_size=wire.size, max_size=wire.size)
    if isinstance(wire, Blob):
        return st.binary(max_size=wire.max_bytes)
    if isinstance(wire, Text):
        return _text(wire.max_bytes)
    if isinstance(wire, ListOf):
        item = record_strategy(wire.item) if isinstance(wire.item, type) else wire_strategy(wire.item)
        return st.lists(item, max_size=wire.max_count).map(tuple)
    if isinstance(wire, Record):
        return record_strategy(wire.cls)
    raise TypeError(f"no strategy for wire type {wire!r}: extend wire_strategy")


def record_strategy(cls: type) -> st.SearchStrategy:
    """Instances of a message or record class with every field drawn from its wire type."""
    return st.builds(cls, **{f.name: wire_strategy(f.wire) for f in layout_of(cls).fields})


def _largest_value(wire: WireType):
    """A value of the largest encoded size: full lists, texts at their byte limit."""
    if isinstance(wire, Bool):
        return True
    if isinstance(wire, Enum):
        return list(wire.enum_cls)[-1]
    if isinstance(wire, Int):
        return wire.high
    if isinstance(wire, FixedBytes):
        return b"\xff" * wire.size
    if isinstance(wire, Blob):
        return b"\xff" * wire.max_bytes
    if isinstance(wire, Text):
        return "é" * (wire.max_bytes // 2) + "x" * (wire.max_bytes % 2)
    if isinstance(wire, ListOf):
        item = largest(wire.item) if isinstance(wire.item, type) else _largest_value(wire.item)
        return (item,) * wire.max_count
    if isinstance(wire, Record):
        return largest(wire.cls)
    raise TypeError(f"no largest value for {wire!r}")


def largest(cls: type):
    return cls(**{f.name: _largest_value(f.wire) for f in layout_of(cls).fields})


message_ids = [cls.__name__ for cls in MESSAGES]


# --- round trip and sizes ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", MESSAGES, ids=message_ids)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_message_round_trips(cls, data):
    """decode(encode(m)) == m for every message class, any field values its wire types allow."""
    message = data.draw(record_strategy(cls))
    payload = encode_payload(message)
    assert len(payload) <= max_payload_size(cls.TYPE)
    decoded = decode_payload(cls.TYPE, payload)
    assert decoded == message
    assert type(decoded) is cls
    assert encode_payload(decoded) == payload


@pytest.mark.parametrize("cls", MESSAGES, ids=message_ids)
def test_largest_instance_has_max_payload_size_and_fits_a_frame(cls):
    """max_payload_size is exact, and every message's largest encoding fits MAX_PAYLOAD and a tagged frame."""
    message = largest(cls)
    payload = encode_payload(message)
    assert len(payload) == max_payload_size(cls.TYPE)
    assert max_payload_size(cls.TYPE) <= MAX_PAYLOAD
    assert decode_payload(cls.TYPE, payload) == message
    frame = Frame(cls.TYPE, FrameFlags.AUTH | FrameFlags.FROM_DEVICE, 1, 1, 1, payload, bytes(TAG_SIZE))
    assert FrameDecoder().feed(encode_frame(frame)) == [frame]


def test_registry_covers_every_message_once():
    """Each message class has its own type byte; requests are below 0x80, device messages above."""
    assert sorted(REGISTRY) == sorted(cls.TYPE.value for cls in MESSAGES)
    assert len(REGISTRY) == len(MESSAGES)
    for cls in MESSAGES:
        assert message_class(cls.TYPE) is cls
        if cls.TYPE < 0x80:
            assert all(reply >= 0x80 for reply in cls.REPLIES)


def test_non_ascii_text_round_trips_at_its_byte_limit():
    """Text limits are UTF-8 bytes, not characters: 12 two-byte characters fill a text[<=24]."""
    reply = replace(IDENTITY, model="µ" * 12, serial="日本語ab", firmware="")
    payload = encode_payload(reply)
    assert decode_payload(reply.TYPE, payload) == reply
    with pytest.raises(EncodeError, match=r"^model:"):
        encode_payload(replace(IDENTITY, model="µ" * 12 + "x"))


# --- decode errors -------------------------------------------------------------------------------

variable_messages = [cls for cls in MESSAGES if max_payload_size(cls.TYPE) > 0]


@pytest.mark.parametrize("cls", variable_messages, ids=[c.__name__ for c in variable_messages])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_truncation_is_malformed(cls, data):
    """Every strict prefix of a valid payload raises MalformedPayload (never reads past the end)."""
    payload = encode_payload(data.draw(record_strategy(cls)))
    for size in range(len(payload)):
        with pytest.raises(MalformedPayload):
            decode_payload(cls.TYPE, payload[:size])


@pytest.mark.parametrize("cls", MESSAGES, ids=message_ids)
@settings(max_examples=15, deadline=None)
@given(data=st.data(), extra=st.binary(min_size=1, max_size=8))
def test_extra_trailing_bytes_are_malformed(cls, data, extra):
    """A payload must be used up exactly: any byte left over is malformed."""
    payload = encode_payload(data.draw(record_strategy(cls)))
    with pytest.raises(MalformedPayload, match="left over"):
        decode_payload(cls.TYPE, payload + extra)


_GOOD_DOSING = DosingSet(DosingMode.CONTINUOUS, 1, (), PatientBolusSettings(True, 1, 1, 1, 1), 5)
# mode (1) + rate (4) + empty steps list (1), then patient_bolus.enabled at offset 6.
_NESTED_BAD_BOOL = encode_payload(_GOOD_DOSING)[:6] + b"\x02" + encode_payload(_GOOD_DOSING)[7:]

BAD_PAYLOADS = [
    ("bool byte 2", TherapySet.TYPE, b"\x02", "on"),
    ("bool byte 255", TherapySet.TYPE, b"\xff", "on"),
    ("nested bool byte 2", DosingSet.TYPE, _NESTED_BAD_BOOL, "patient_bolus.enabled"),
    ("unknown u8 enum value 0", Bolus.TYPE, b"\x00" + bytes(6), "kind"),
    ("unknown u8 enum value 9", Bolus.TYPE, b"\x09" + bytes(6), "kind"),
    ("unknown u16 enum value", 0x12, b"\xff\xff", "code"),
    ("text length past end", IdentifyReply.TYPE, b"\x01\x0aabc", "model"),
    ("text length above max", IdentifyReply.TYPE, b"\x01\x19" + b"a" * 25 + bytes(40), "model"),
    ("text not UTF-8", IdentifyReply.TYPE, b"\x01\x02\xc3\x28" + bytes(40), "model"),
    ("list count above max", EventLogPage.TYPE, bytes(8) + b"\x09" + bytes(9 * 24), "entries"),
    ("scalar list count above max", 0xA2, bytes(8) + b"\x21" + bytes(66) + bytes(4), "impedance_ohm"),
    ("list item truncated", EventLogPage.TYPE, bytes(8) + b"\x01" + bytes(10), "EventRecord"),
    ("empty payload for a fixed message", EventLogRead.TYPE, b"", "EventLogRead"),
    ("one byte short", ClockSet.TYPE, bytes(7), "ClockSet"),
]


@pytest.mark.parametrize("name, msg_type, payload, field", BAD_PAYLOADS, ids=[b[0] for b in BAD_PAYLOADS])
def test_bad_payloads_are_malformed_naming_the_field(name, msg_type, payload, field):
    """Bad bool, unknown enum, text or list past its bounds, short payload -> MalformedPayload."""
    with pytest.raises(MalformedPayload) as info:
        decode_payload(msg_type, payload)
    assert field in str(info.value)
    assert isinstance(info.value, CodecError) and isinstance(info.value, ValueError)
    assert info.value.code == ErrorCode.MALFORMED


def test_nested_bad_bool_vector_is_what_it_claims():
    """Guard for the vector above: byte 6 really is patient_bolus.enabled."""
    payload = bytearray(encode_payload(_GOOD_DOSING))
    assert payload[6] == 1
    payload[6] = 0
    assert decode_payload(DosingSet.TYPE, bytes(payload)).patient_bolus.enabled is False


@pytest.mark.parametrize("msg_type", [0x00, 0x05, 0x7F, 0x80, 0xFE, 0x100, -1])
def test_unknown_type_byte_is_unknown_message_type(msg_type):
    with pytest.raises(UnknownMessageType) as info:
        decode_payload(msg_type, b"")
    assert info.value.code == ErrorCode.UNSUPPORTED
    with pytest.raises(UnknownMessageType):
        message_class(msg_type)


@settings(max_examples=400, deadline=None)
@given(msg_type=st.integers(0, 255), payload=st.binary(max_size=300))
def test_decoding_arbitrary_bytes_raises_only_codec_errors(msg_type, payload):
    """Any bytes as any type: a message or a CodecError, never another exception."""
    try:
        message = decode_payload(msg_type, payload)
    except CodecError:
        return
    assert encode_payload(message) == payload


@pytest.mark.parametrize("cls", MESSAGES, ids=message_ids)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_decoding_mutated_valid_payloads_raises_only_codec_errors(cls, data):
    """Valid payloads with one byte changed reach deep into nested layouts: still only CodecError."""
    payload = bytearray(encode_payload(data.draw(record_strategy(cls))))
    if payload:
        index = data.draw(st.integers(0, len(payload) - 1))
        payload[index] = data.draw(st.integers(0, 255))
    try:
        message = decode_payload(cls.TYPE, bytes(payload))
    except CodecError:
        return
    assert encode_payload(message) == bytes(payload)


# --- encode errors -------------------------------------------------------------------------------

_SCS = scs_status()
ENCODE_ERRORS = [
    ("u64 below range", ClockSet(-1), "time_ms"),
    ("u64 above range", ClockSet(2**64), "time_ms"),
    ("float for int", ClockSet(1.5), "time_ms"),
    ("str for int", ClockSet("5"), "time_ms"),
    ("bool for int", ClockSet(True), "time_ms"),
    ("int for bool", TherapySet(1), "on"),
    ("None for bool", TherapySet(None), "on"),
    ("not an enum member", Bolus(9, 1, 1), "kind"),
    ("enum name for enum", Bolus("CLINICIAN", 1, 1), "kind"),
    ("u32 above range", Bolus(BolusKind.PATIENT, 2**32, 1), "volume_ul"),
    ("u16 below range", Bolus(BolusKind.PATIENT, 1, -1), "duration_min"),
    ("nonce too short", SessionOpen(b"short", bytes(16)), "host_nonce"),
    ("nonce not bytes", SessionOpen("x" * 16, bytes(16)), "host_nonce"),
    ("text too long", replace(IDENTITY, serial="s" * 17), "serial"),
    ("non-ASCII text too long in bytes", replace(IDENTITY, model="é" * 13), "model"),
    ("bytes for text", replace(IDENTITY, firmware=b"1.0"), "firmware"),
    ("error text too long", ErrorReply(ErrorCode.BUSY, "", 0, 0, 0, "m" * 161), "message"),
    ("i64 above range", ErrorReply(ErrorCode.BUSY, "", 2**63, 0, 0, ""), "value"),
    ("u8 out of range after a bool in the same run", replace(_SCS, active_program=256), "active_program"),
    ("too many list items", replace(_SCS, areas=(AREA,) * 5), "areas"),
    ("list not a sequence", replace(_SCS, areas="areas"), "areas"),
    ("too many scalar items", replace(_SCS, impedance_ohm=(1,) * 33), "impedance_ohm"),
    ("scalar item out of range", replace(_SCS, impedance_ohm=(1, 70_000)), "impedance_ohm[1]"),
    ("bool in a scalar list", replace(_SCS, impedance_ohm=(1, True)), "impedance_ohm[1]"),
    (
        "record item field out of range",
        replace(_SCS, areas=(replace(AREA, amplitude_ua=70_000),)),
        "areas[0].amplitude_ua",
    ),
    ("wrong record class in a list", replace(_SCS, areas=(PatientBolusSettings(True, 1, 1, 1, 1),)), "areas[0]"),
    ("nested record missing", DosingSet(DosingMode.STOPPED, 0, (), None, 0), "patient_bolus"),
    (
        "nested record field",
        DosingSet(DosingMode.STOPPED, 0, (), PatientBolusSettings(True, 1, 1, 1, 256), 0),
        "patient_bolus.max_per_day",
    ),
]


@pytest.mark.parametrize("name, message, field", ENCODE_ERRORS, ids=[e[0] for e in ENCODE_ERRORS])
def test_encode_errors_name_the_field(name, message, field):
    """A value that does not fit its wire type raises EncodeError whose message starts with the field path."""
    with pytest.raises(EncodeError) as info:
        encode_payload(message)
    assert str(info.value).startswith(field + ":"), str(info.value)
    assert isinstance(info.value, ProtocolError) and isinstance(info.value, ValueError)


def test_layout_refuses_an_instance_of_another_class():
    """A layout encodes only its own class; an unknown type has no size."""
    with pytest.raises(UnknownMessageType):
        max_payload_size(0x7F)
    with pytest.raises(EncodeError):
        layout_of(ScsStatus).encode_into(AREA, bytearray())


# --- schema fingerprint --------------------------------------------------------------------------


def test_schema_fingerprint_is_sha256_prefix_of_schema_text():
    """SPEC 5: first four bytes of SHA-256(schema text), little-endian."""
    digest = hashlib.sha256(schema_text().encode("utf-8")).digest()
    assert SCHEMA_FINGERPRINT == int.from_bytes(digest[:4], "little")
    assert codec._fingerprint() == SCHEMA_FINGERPRINT
    assert 0 <= SCHEMA_FINGERPRINT < 2**32


def test_schema_text_lists_every_message_with_fields_and_enum_members():
    text = schema_text()
    lines = text.splitlines()
    assert len(lines) == len(MESSAGES)
    assert [int(line.split()[0], 16) for line in lines] == sorted(REGISTRY)
    for cls in MESSAGES:
        assert f"0x{cls.TYPE:02x} {cls.__name__}{{" in text
    assert "Waveform[TONIC=1,BURST=2,HIGH_FREQUENCY=3]" in text
    assert "areas:list[<=4] of Area{" in text
    assert "model:text[<=24]" in text


def test_schema_fingerprint_is_stable_across_interpreters():
    """The fingerprint does not depend on hash seeds or import order: a fresh interpreter agrees."""
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", "from protocols.codec import SCHEMA_FINGERPRINT as f; print(f)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert int(out.stdout) == SCHEMA_FINGERPRINT


def test_schema_fingerprint_changes_when_a_field_changes(monkeypatch):
    """A schema difference (here: one enum member added) gives a different fingerprint."""
    original = schema_text()
    monkeypatch.setattr(codec, "schema_text", lambda: original.replace("EOS=4", "EOS=4,NEW=9"))
    assert codec._fingerprint() != SCHEMA_FINGERPRINT


def test_decoded_messages_are_immutable():
    """Every message is a frozen dataclass: a decoded message cannot be altered after the checks."""
    for cls in MESSAGES:
        assert issubclass(cls, Message)
        message = decode_payload(cls.TYPE, encode_payload(largest(cls)))
        fields = layout_of(cls).fields
        if fields:
            with pytest.raises(AttributeError):
                setattr(message, fields[0].name, None)


def test_json_saved_before_a_defaulted_field_existed_still_reads():
    """Fields added at the end of a message with a default (SPEC 4.4's status fields) may be absent."""
    status = replace(scs_status(), shannon_k_x100=-134, disabled_contacts=0b10)
    data = codec.to_json(status)
    assert codec.from_json(ScsStatus, data) == status
    for name in ("shannon_k_x100", "disabled_contacts"):
        del data[name]
    assert codec.from_json(ScsStatus, data) == replace(status, shannon_k_x100=0, disabled_contacts=0)
    del data["stored_programs"]  # a field without a default stays required
    with pytest.raises(KeyError, match="stored_programs"):
        codec.from_json(ScsStatus, data)
