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
KEYS = SessionKeys(
    bytes.fromhex(VECTORS["session_key_host_to_device_hex"]),
    bytes.fromhex(VECTORS["session_key_device_to_host_hex"]),
)


def test_vectors_file_matches_the_codec():
    """vectors.json is what the codec produces today (regenerate with `make vectors`)."""
    assert build_vectors() == VECTORS
    assert int(VECTORS["schema_fingerprint"], 16) == SCHEMA_FINGERPRINT


def test_session_keys_derive_from_the_listed_inputs():
    keys = derive_session_keys(
        bytes.fromhex(VECTORS["pairing_key_hex"]),
        bytes.fromhex(VECTORS["host_nonce_hex"]),
        bytes.fromhex(VECTORS["device_nonce_hex"]),
        VECTORS["session_id"],
    )
    assert keys == KEYS


def test_every_message_type_has_a_vector():
    names = {m["name"] for m in VECTORS["messages"]}
    from protocols.messages import MESSAGES

    assert names == {cls.__name__ for cls in MESSAGES}


@pytest.mark.parametrize("vector", VECTORS["messages"], ids=lambda v: f"{v['direction']}-{v['name']}")
def test_decode_direction(vector):
    """Wire bytes -> frame header, verified tag, message fields."""
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
        key = KEYS.device_to_host if vector["direction"] == "device" else KEYS.host_to_device
        assert compute_tag(key, frame.mac_input()) == frame.tag
    message = decode_payload(frame.msg_type, frame.payload)
    assert message == from_json(message_class(vector["msg_type"]), vector["fields"])


@pytest.mark.parametrize("vector", VECTORS["messages"], ids=lambda v: f"{v['direction']}-{v['name']}")
def test_encode_direction(vector):
    """Message fields + header + key -> the exact wire bytes."""
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
        key = KEYS.device_to_host if vector["direction"] == "device" else KEYS.host_to_device
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
    """No two replies claim one event-log entry; a page holds the entries from the one asked for."""
    from protocols.messages import EventLogPage, EventLogRead, EventPush
    from protocols.vectors import EXCHANGE

    claimed: list[int] = []
    asked = None
    for _, message, _ in EXCHANGE:
        if isinstance(message, EventLogRead):
            asked = message
        elif isinstance(message, EventLogPage):
            seqs = [entry.seq for entry in message.entries]
            expected = list(range(asked.from_seq, min(message.last_seq, asked.from_seq + asked.max_count - 1) + 1))
            assert seqs == expected, f"EventLogRead from {asked.from_seq} answered with {seqs}"
            claimed += seqs
        elif isinstance(message, EventPush):
            claimed.append(message.event.seq)
        elif getattr(message, "event_seq", 0):
            claimed.append(message.event_seq)
    assert len(claimed) == len(set(claimed)), sorted(claimed)
