"""The codec against every vector of protocols/vectors.json, both ways (SPEC.md, Test vectors)."""

from __future__ import annotations

import json

import pytest

from protocols import errors
from protocols.auth import Session, SessionKeys, compute_tag, derive_session_keys
from protocols.codec import SCHEMA_FINGERPRINT, decode_payload, encode_payload, from_json, message_class
from protocols.framing import Frame, FrameDecoder, FrameFlags, encode_frame, pack_header
from protocols.vectors import VECTORS_PATH, build_vectors

VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
# The main (pump) exchange at the top level, then the stimulator's clinician and patient sessions.
SESSIONS = [VECTORS, *VECTORS["exchanges"]]


def _keys(session: dict) -> SessionKeys:
    return SessionKeys(
        bytes.fromhex(session["session_key_host_to_device_hex"]),
        bytes.fromhex(session["session_key_device_to_host_hex"]),
    )


KEYS = _keys(VECTORS)
ALL = [(_keys(session), vector) for session in SESSIONS for vector in session["messages"]]


def _id(item: tuple[SessionKeys, dict]) -> str:
    return f"{item[1]['direction']}-{item[1]['name']}"


def test_vectors_file_matches_the_codec():
    """vectors.json is what the codec produces today (regenerate with `make vectors`)."""
    assert build_vectors() == VECTORS
    assert int(VECTORS["schema_fingerprint"], 16) == SCHEMA_FINGERPRINT


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: s.get("name", "pump"))
def test_session_keys_derive_from_the_listed_inputs(session):
    keys = derive_session_keys(
        bytes.fromhex(session["pairing_key_hex"]),
        bytes.fromhex(session["host_nonce_hex"]),
        bytes.fromhex(session["device_nonce_hex"]),
        session["session_id"],
    )
    assert keys == _keys(session)


def test_every_message_type_has_a_vector():
    names = {vector["name"] for _, vector in ALL}
    from protocols.messages import MESSAGES

    assert names == {cls.__name__ for cls in MESSAGES}


@pytest.mark.parametrize("item", ALL, ids=_id)
def test_decode_direction(item):
    """Wire bytes -> frame header, verified tag, message fields."""
    keys, vector = item
    frames = FrameDecoder().feed(bytes.fromhex(vector["frame_hex"]))
    assert len(frames) == 1
    frame = frames[0]
    assert (frame.msg_type, int(frame.flags), frame.session_id, frame.counter, frame.command_id) == (
        vector["msg_type"],
        vector["flags"],
        vector["session_id"],
        vector["counter"],
        vector["command_id"],
    )
    if frame.authenticated:
        key = keys.device_to_host if vector["direction"] == "device" else keys.host_to_device
        assert compute_tag(key, frame.mac_input()) == frame.tag
    message = decode_payload(frame.msg_type, frame.payload)
    assert message == from_json(message_class(vector["msg_type"]), vector["fields"])


@pytest.mark.parametrize("item", ALL, ids=_id)
def test_encode_direction(item):
    """Message fields + header + key -> the exact wire bytes."""
    keys, vector = item
    message = from_json(message_class(vector["msg_type"]), vector["fields"])
    payload = encode_payload(message)
    assert payload.hex() == vector["payload_hex"]
    flags = FrameFlags(vector["flags"])
    header_only = Frame(
        vector["msg_type"], flags, vector["session_id"], vector["counter"], vector["command_id"], payload
    )
    assert pack_header(header_only).hex() == vector["header_hex"]
    tag = b""
    if flags & FrameFlags.AUTH:
        key = keys.device_to_host if vector["direction"] == "device" else keys.host_to_device
        tag = compute_tag(key, pack_header(header_only) + payload)
    frame = Frame(
        vector["msg_type"], flags, vector["session_id"], vector["counter"], vector["command_id"], payload, tag
    )
    assert encode_frame(frame).hex() == vector["frame_hex"]


def _receive_as_device(data: bytes) -> object:
    """Framing, then the session check of a device that accepted every host frame, then the codec."""
    events = FrameDecoder().feed_events(data)
    assert len(events) == 1
    item = events[0]
    if isinstance(item, errors.FrameError):
        raise item
    last_host_counter = max(m["counter"] for m in VECTORS["messages"] if m["direction"] == "host")
    device = Session(VECTORS["session_id"], KEYS, True, 0.0, 0.0, rx_counter=last_host_counter)
    if not item.authenticated and message_class(item.msg_type).NEEDS_SESSION:
        raise errors.NoSession("request needs a session")
    if item.authenticated:
        device.verify(item, 0.0)
    return decode_payload(item.msg_type, item.payload)


@pytest.mark.parametrize("vector", VECTORS["bad_frames"], ids=lambda v: v["description"])
def test_bad_frames_give_their_error(vector):
    expected = getattr(errors, vector["error"])
    with pytest.raises(expected):
        _receive_as_device(bytes.fromhex(vector["frame_hex"]))


def test_the_exchange_numbers_its_events_once_each_and_pages_answer_what_was_asked():
    """No two replies claim one event-log entry, no entry is pushed twice, and a page holds the
    entries from the one asked for (a push may repeat the entry a reply named: SPEC 4)."""
    from protocols.vectors import EXCHANGE, PATIENT_EXCHANGE, SCS_EXCHANGE

    for exchange in (EXCHANGE, SCS_EXCHANGE + PATIENT_EXCHANGE):  # the stimulator's log spans both sessions
        _assert_claimed_once(exchange)


def _assert_claimed_once(exchange: list) -> None:
    from protocols.messages import EventLogPage, EventLogRead, EventPush

    claimed: list[int] = []
    pushed: list[int] = []
    asked = None
    for _, message, _ in exchange:
        if isinstance(message, EventLogRead):
            asked = message
        elif isinstance(message, EventLogPage):
            seqs = [entry.seq for entry in message.entries]
            expected = list(range(asked.from_seq, min(message.last_seq, asked.from_seq + asked.max_count - 1) + 1))
            assert seqs == expected, f"EventLogRead from {asked.from_seq} answered with {seqs}"
            claimed += seqs
        elif isinstance(message, EventPush):
            pushed.append(message.event.seq)
        elif getattr(message, "event_seq", 0):
            claimed.append(message.event_seq)
    assert len(claimed) == len(set(claimed)), sorted(claimed)
    assert len(pushed) == len(set(pushed)), sorted(pushed)
