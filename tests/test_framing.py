"""Framing: header layout, COBS stuffing, CRC check, and the resynchronising decoder (SPEC.md 2).

Covers the round trip, the stuffing bound, the decoder's recovery rules (garbage, bad CRC, stray
bytes, truncation, oversize runs, unknown version, reserved flags, length mismatch), its exact
link counters, and the rule that how a stream is split into reads never changes the result.
"""

from __future__ import annotations

import itertools
import math
import random
import struct

import pytest
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.crc import crc32c
from protocols.errors import CrcError, FrameError, MalformedFrame, OversizeFrame, UnsupportedVersion
from protocols.framing import (
    DELIMITER,
    HEADER,
    HEADER_SIZE,
    MAX_ENCODED_FRAME,
    MAX_PAYLOAD,
    MAX_RAW_FRAME,
    MIN_RAW_FRAME,
    PROTOCOL_VERSION,
    TAG_SIZE,
    Frame,
    FrameDecoder,
    FrameFlags,
    LinkStats,
    encode_frame,
    pack_header,
    parse_raw_frame,
)

# --- helpers -------------------------------------------------------------------------------------


def make_frame(index: int = 0, payload: bytes | None = None, auth: bool = True) -> Frame:
    """A recognisable valid frame; ``index`` varies its header and payload."""
    if payload is None:
        payload = bytes((index + i) & 0xFF for i in range(index % 40))
    flags = FrameFlags.FROM_DEVICE | (FrameFlags.AUTH if auth else FrameFlags(0))
    tag = bytes((index * 7 + i) & 0xFF for i in range(TAG_SIZE)) if auth else b""
    return Frame(0x90, flags, 0x1234, index + 1, 0x1000 + index, payload, tag)


def raw_bytes(
    *,
    version: int = PROTOCOL_VERSION,
    msg_type: int = 0x10,
    flags: int = 0,
    payload: bytes = b"",
    tag: bytes = b"",
    payload_len: int | None = None,
    fix_crc: bool = True,
) -> bytes:
    """Raw (un-stuffed) frame bytes with any header values, CRC made valid unless told otherwise."""
    length = len(payload) if payload_len is None else payload_len
    body = HEADER.pack(version, msg_type, flags, 7, 1, 42, length) + payload + tag
    value = crc32c(body) if fix_crc else crc32c(body) ^ 1
    return body + struct.pack("<I", value)


def wire(raw: bytes) -> bytes:
    """Delimited COBS encoding of raw frame bytes."""
    return DELIMITER + cobs.encode(raw) + DELIMITER


def feed_in_chunks(data: bytes, cuts: list[int]) -> tuple[FrameDecoder, list[Frame | FrameError]]:
    """Feed ``data`` split at the (sorted, deduplicated) ``cuts``; return the decoder and all events."""
    decoder = FrameDecoder()
    events: list[Frame | FrameError] = []
    points = [0, *sorted(set(c for c in cuts if 0 < c < len(data))), len(data)]
    for start, end in itertools.pairwise(points):
        events += decoder.feed_events(data[start:end])
        assert len(decoder._partial) <= MAX_ENCODED_FRAME
    return decoder, events


def summary(events: list[Frame | FrameError]) -> list[Frame | type]:
    """Frames as themselves, errors by type (their messages may name where they were noticed)."""
    return [item if isinstance(item, Frame) else type(item) for item in events]


def reference_frames(data: bytes) -> list[Frame]:
    """An independent model of the decoder: split at 0x00, decode each run on its own."""
    frames = []
    for run in data.split(b"\x00"):
        if not run or len(run) > MAX_ENCODED_FRAME:
            continue
        try:
            frames.append(parse_raw_frame(cobs.decode(run)))
        except (cobs.DecodeError, FrameError):
            continue
    return frames


frame_strategy = st.builds(
    Frame,
    msg_type=st.integers(0, 255),
    flags=st.sampled_from([FrameFlags(0), FrameFlags.FROM_DEVICE, FrameFlags.FROM_DEVICE | FrameFlags.PUSH]),
    session_id=st.integers(0, 2**32 - 1),
    counter=st.integers(0, 2**64 - 1),
    command_id=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=MAX_PAYLOAD),
)


@st.composite
def any_frame(draw) -> Frame:
    """Valid frames, with and without a tag, of any size up to the largest."""
    frame = draw(frame_strategy)
    if draw(st.booleans()):
        tag = draw(st.binary(min_size=TAG_SIZE, max_size=TAG_SIZE))
        return Frame(
            frame.msg_type,
            frame.flags | FrameFlags.AUTH,
            frame.session_id,
            frame.counter,
            frame.command_id,
            frame.payload,
            tag,
        )
    return frame


# A stream of segments: encoded valid frames, random garbage, and damaged frames.
segment_strategy = st.one_of(
    any_frame().map(encode_frame),
    st.binary(max_size=80),
    st.tuples(any_frame(), st.integers(0, 10_000), st.integers(0, 255)).map(
        lambda t: _damage(encode_frame(t[0]), t[1], t[2])
    ),
    st.sampled_from([b"\x00", b"\x00\x00", b"\xff" * 320, bytes(range(1, 256)) * 3]),
)


def _damage(data: bytes, position: int, xor: int) -> bytes:
    out = bytearray(data)
    out[position % len(out)] ^= xor or 1
    return bytes(out)


# --- encode / parse ------------------------------------------------------------------------------


@settings(max_examples=150)
@given(frame=any_frame())
def test_encode_then_parse_round_trips(frame):
    """encode_frame then decode returns the same frame, through both parse_raw_frame and the decoder."""
    data = encode_frame(frame)
    assert parse_raw_frame(cobs.decode(data[1:-1])) == frame
    decoder = FrameDecoder()
    assert decoder.feed(data) == [frame]
    assert decoder.stats.frames_ok == 1
    assert decoder.stats.resyncs == 0


@settings(max_examples=150)
@given(frame=any_frame())
def test_encoded_frame_has_zero_only_as_delimiters_and_bounded_overhead(frame):
    """COBS: 0x00 only as the first and last byte; size <= raw + ceil(raw / 254) + 2."""
    data = encode_frame(frame)
    raw_len = HEADER_SIZE + len(frame.payload) + len(frame.tag) + 4
    assert data[0] == 0 and data[-1] == 0
    assert 0 not in data[1:-1]
    assert len(data) <= raw_len + math.ceil(raw_len / 254) + 2
    assert len(data) - 2 <= MAX_ENCODED_FRAME


def test_header_layout_is_little_endian_at_documented_offsets():
    """The 21-byte header: version, type, flags, session_id, counter, command_id, payload_len."""
    frame = Frame(0x31, FrameFlags.AUTH, 0x11223344, 0x0102030405060708, 0xA1B2C3D4, b"xyz", bytes(TAG_SIZE))
    header = pack_header(frame)
    assert HEADER_SIZE == 21
    assert header == bytes.fromhex("01 31 01 44332211 0807060504030201 d4c3b2a1 0300")
    assert frame.mac_input() == header + b"xyz"


def test_largest_frame_sizes_match_the_spec():
    """SPEC.md 2.1: largest raw frame 296 bytes, largest encoded frame 298 bytes (no delimiters)."""
    assert MAX_PAYLOAD == 255
    assert MAX_RAW_FRAME == 296
    assert MAX_ENCODED_FRAME == 298
    assert MIN_RAW_FRAME == 25
    biggest = make_frame(payload=b"\x01" * MAX_PAYLOAD)
    assert len(encode_frame(biggest)) <= MAX_ENCODED_FRAME + 2


def test_encode_refuses_oversize_payload():
    with pytest.raises(OversizeFrame):
        encode_frame(make_frame(payload=bytes(MAX_PAYLOAD + 1)))


@pytest.mark.parametrize(
    "flags, tag",
    [
        (FrameFlags.AUTH, b""),
        (FrameFlags.AUTH, b"short"),
        (FrameFlags(0), bytes(TAG_SIZE)),
        (FrameFlags(0), b"x"),
    ],
)
def test_encode_refuses_auth_flag_and_tag_disagreeing(flags, tag):
    """An AUTH frame needs exactly a 16-byte tag, and only an AUTH frame may carry one."""
    with pytest.raises(MalformedFrame):
        encode_frame(Frame(0x10, flags, 1, 1, 1, b"", tag))


@pytest.mark.parametrize(
    "field, value",
    [("session_id", 2**32), ("counter", 2**64), ("command_id", -1), ("msg_type", 256)],
)
def test_encode_refuses_header_fields_out_of_range(field, value):
    values = {"msg_type": 0x10, "session_id": 1, "counter": 1, "command_id": 1} | {field: value}
    frame = Frame(values["msg_type"], FrameFlags(0), values["session_id"], values["counter"], values["command_id"], b"")
    with pytest.raises(MalformedFrame):
        encode_frame(frame)


# --- parse_raw_frame checks, in the order of SPEC.md 2.4 -----------------------------------------


def test_unknown_version_is_unsupported_and_counted_as_bad_version():
    """SPEC 2.4 step 5: version != 1 gives UnsupportedVersion and counts bad_version."""
    raw = raw_bytes(version=2)
    with pytest.raises(UnsupportedVersion):
        parse_raw_frame(raw)
    decoder = FrameDecoder()
    good = encode_frame(make_frame(1))
    events = decoder.feed_events(wire(raw) + good)
    assert summary(events) == [UnsupportedVersion, make_frame(1)]
    assert decoder.stats.bad_version == 1
    assert decoder.stats.crc_errors == decoder.stats.malformed == 0
    assert decoder.stats.resyncs == 1


@pytest.mark.parametrize("bit", [3, 4, 5, 6, 7])
def test_reserved_flag_bits_are_malformed(bit):
    """SPEC 2.4 step 6: any of flag bits 3-7 set makes the frame malformed."""
    raw = raw_bytes(flags=1 << bit)
    with pytest.raises(MalformedFrame):
        parse_raw_frame(raw)
    decoder = FrameDecoder()
    assert summary(decoder.feed_events(wire(raw))) == [MalformedFrame]
    assert decoder.stats.malformed == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payload": b"abc", "payload_len": 2},
        {"payload": b"abc", "payload_len": 4},
        {"payload": b"abc", "payload_len": 0xFFFF},
        {"payload": b"", "flags": FrameFlags.AUTH},  # AUTH without the 16 tag bytes
        {"payload": b"x" * 20, "flags": 0, "payload_len": 4},  # a tag-sized tail without AUTH
        {"payload": bytes(MAX_PAYLOAD + 1)},  # length field consistent but above the maximum
    ],
)
def test_payload_len_mismatch_is_malformed(kwargs):
    """SPEC 2.4 step 6: 21 + payload_len + tag + 4 must equal the raw length (and len <= 255)."""
    with pytest.raises(MalformedFrame):
        parse_raw_frame(raw_bytes(**kwargs))


def test_crc_is_checked_before_header_fields():
    """A frame with a bad CRC is a CRC error even when its header is also invalid."""
    with pytest.raises(CrcError):
        parse_raw_frame(raw_bytes(version=9, flags=0x80, fix_crc=False))


@pytest.mark.parametrize("size", [0, 1, 10, MIN_RAW_FRAME - 1])
def test_short_frames_are_malformed(size):
    """SPEC 2.4 step 3: fewer than 25 raw bytes is malformed, whatever the content."""
    with pytest.raises(MalformedFrame):
        parse_raw_frame(bytes(size))


def test_cobs_error_is_malformed_and_counted():
    """SPEC 2.4 step 2: a COBS code byte pointing past the end is dropped as malformed."""
    decoder = FrameDecoder()
    events = decoder.feed_events(b"\x00\x09ABC\x00" + encode_frame(make_frame(3)))
    assert summary(events) == [MalformedFrame, make_frame(3)]
    assert decoder.stats.malformed == 1
    assert decoder.stats.resyncs == 1


# --- decoder vectors (garbage, stray bytes, truncation, back to back) -----------------------------

F1, F2, F3 = make_frame(1), make_frame(2), make_frame(3, auth=False)
W1, W2, W3 = encode_frame(F1), encode_frame(F2), encode_frame(F3)


def _bad_crc(data: bytes) -> bytes:
    raw = bytearray(cobs.decode(data[1:-1]))
    raw[HEADER_SIZE] ^= 0x10
    return wire(bytes(raw))


def _stray_inside(data: bytes) -> bytes:
    return data[:10] + b"\x5a" + data[10:]


VECTORS = [
    # name, stream, expected frames, expected counters
    ("single", W1, [F1], {"frames_ok": 1, "resyncs": 0}),
    ("back to back, shared delimiters", W1 + W2[1:] + W3[1:], [F1, F2, F3], {"frames_ok": 3, "resyncs": 0}),
    ("back to back, both delimiters", W1 + W2 + W3, [F1, F2, F3], {"frames_ok": 3, "resyncs": 0}),
    ("garbage after", W1 + b"\x17\x99\x42", [F1], {"frames_ok": 1}),
    ("garbage between", W1 + b"\x17\x99\x42" + W2, [F1, F2], {"frames_ok": 2, "malformed": 1, "resyncs": 1}),
    ("bad crc then good", _bad_crc(W1) + W2, [F2], {"frames_ok": 1, "crc_errors": 1, "resyncs": 1}),
    ("stray byte inside then good", _stray_inside(W1) + W2, [F2], {"frames_ok": 1, "resyncs": 1}),
    ("truncated then good", W1[: len(W1) // 2] + W2, [F2], {"frames_ok": 1, "resyncs": 1}),
    ("truncated without closing delimiter", W1[:-5], [], {"frames_ok": 0, "resyncs": 0}),
    ("empty runs", b"\x00" * 10 + W1 + b"\x00" * 10, [F1], {"frames_ok": 1, "resyncs": 0, "malformed": 0}),
    (
        "good, bad crc, good",
        W1 + _bad_crc(W2) + W3,
        [F1, F3],
        {"frames_ok": 2, "crc_errors": 1, "resyncs": 1},
    ),
]


@pytest.mark.parametrize("name, stream, frames, counters", VECTORS, ids=[v[0] for v in VECTORS])
def test_decoder_vectors(name, stream, frames, counters):
    """pymodbus-style recovery vectors: every intact frame is found, damage is counted."""
    for cuts in ([], [len(stream) // 2], list(range(len(stream)))):
        decoder, events = feed_in_chunks(stream, cuts)
        assert [e for e in events if isinstance(e, Frame)] == frames
        stats = decoder.stats.as_dict()
        assert {k: stats[k] for k in counters} == counters
        assert stats["bytes_rx"] == len(stream)


def test_garbage_before_a_frame_does_not_hide_it():
    """Bytes before the first delimiter never take the following frame with them."""
    for garbage in (b"\x01", b"\x17\x99\x42", W1[5:-1], b"\xff" * 100):
        assert FrameDecoder().feed(garbage + W2) == [F2]


def test_bytes_before_the_first_delimiter_are_ignored_not_counted():
    """framing docstring: "bytes before the first delimiter ... ignored" (not counted as line errors).

    A receiver that starts listening mid-frame sees the tail of a frame first; that is not a
    CRC error or a malformed frame of the link, and must not trigger a device's CRC hint.
    """
    tail_of_a_frame = W1[len(W1) - 40 : -1]  # the last 39 stuffed bytes of a frame, no delimiter
    decoder = FrameDecoder()
    events = decoder.feed_events(tail_of_a_frame + W2)
    assert events == [F2]
    assert decoder.stats.crc_errors == decoder.stats.malformed == decoder.stats.resyncs == 0


def test_exact_counters_for_a_known_stream():
    """Exact LinkStats for: good, bad CRC, good, garbage run, COBS error, v2 frame, oversize run, good."""
    oversize = b"\x01" * (MAX_ENCODED_FRAME + 1)
    garbage = b"\x03\x04\x05"
    cobs_error = b"\x09ABC"
    v2 = wire(raw_bytes(version=2))
    stream = W1 + _bad_crc(W2) + W3 + garbage + b"\x00" + cobs_error + b"\x00" + v2 + oversize + b"\x00" + W2
    decoder = FrameDecoder()
    events = decoder.feed_events(stream)
    assert summary(events) == [
        F1,
        CrcError,
        F3,
        MalformedFrame,
        MalformedFrame,
        UnsupportedVersion,
        OversizeFrame,
        F2,
    ]
    stats = decoder.stats
    assert stats.frames_ok == 3
    assert stats.crc_errors == 1
    assert stats.malformed == 2
    assert stats.bad_version == 1
    assert stats.oversize == 1
    assert stats.resyncs == 5
    assert stats.bytes_rx == len(stream)
    dropped = (len(_bad_crc(W2)) - 1) + (len(garbage) + 1) + (len(cobs_error) + 1) + (len(v2) - 1) + len(oversize) + 1
    assert stats.bytes_dropped == dropped
    assert stats.mac_errors == stats.replays == stats.seq_gaps == 0


def test_ten_kilobytes_of_garbage_then_a_frame():
    """After 10 kB of random garbage (with and without zero bytes) the next frame decodes."""
    rng = random.Random(10)
    with_zeros = rng.randbytes(10_000)
    without_zeros = bytes(b or 1 for b in rng.randbytes(10_000))
    for garbage in (with_zeros, without_zeros):
        for cuts in ([], rng.sample(range(1, 10_000), 50)):
            _decoder, events = feed_in_chunks(garbage + W1, cuts)
            assert [e for e in events if isinstance(e, Frame)][-1:] == [F1]
            assert events[-1] == F1


@pytest.mark.parametrize("chunk", [1, 7, 300, 100_000])
def test_oversize_run_is_counted_once_with_bounded_memory(chunk):
    """A run with no delimiter past 298 bytes: one oversize count, storage stays <= 298, then resync."""
    run = bytes(range(1, 256)) * 40  # 10,200 non-zero bytes
    stream = b"\x00" + run + W1 + W2
    decoder = FrameDecoder()
    frames = []
    for start in range(0, len(stream), chunk):
        frames += decoder.feed(stream[start : start + chunk])
        assert len(decoder._partial) <= MAX_ENCODED_FRAME
    assert frames == [F1, F2]
    assert decoder.stats.oversize == 1
    assert decoder.stats.resyncs == 1
    assert decoder.stats.frames_ok == 2
    assert decoder.stats.bytes_dropped == len(run) + 1


def test_run_exactly_at_the_size_limit_is_not_oversize():
    """A run of exactly MAX_ENCODED_FRAME bytes is judged on its content, not dropped as oversize."""
    frame = make_frame(payload=b"\x01" * MAX_PAYLOAD)
    data = encode_frame(frame)
    assert len(data) - 2 == MAX_ENCODED_FRAME
    decoder = FrameDecoder()
    for byte in data:
        decoder.feed(bytes([byte]))
    decoder2 = FrameDecoder()
    assert decoder2.feed(data) == [frame]
    assert decoder.stats.frames_ok == 1
    assert decoder.stats.oversize == 0


def test_reset_forgets_a_partial_frame_but_keeps_counters():
    decoder = FrameDecoder()
    decoder.feed(W1 + W2[:20])
    decoder.reset()
    assert decoder.feed(W2[20:]) == []  # the tail alone is not a frame
    assert decoder.feed(W3) == [F3]
    assert decoder.stats.frames_ok == 2


def test_link_stats_as_dict_lists_every_counter():
    stats = LinkStats(frames_ok=3, crc_errors=1)
    data = stats.as_dict()
    assert data["frames_ok"] == 3 and data["crc_errors"] == 1
    assert set(data) == {
        "bytes_rx",
        "bytes_dropped",
        "frames_ok",
        "crc_errors",
        "malformed",
        "oversize",
        "bad_version",
        "resyncs",
        "mac_errors",
        "replays",
        "seq_gaps",
        "rate_limited",
    }
    data["frames_ok"] = 99
    assert stats.frames_ok == 3


# --- streams with damage -------------------------------------------------------------------------


def test_many_frames_with_random_corruption_keep_every_untouched_frame():
    """Seeded: 400 frames, a third of them damaged (bit flips, drops, inserts); all others decode, in order."""
    rng = random.Random(1234)
    stream = bytearray()
    untouched = []
    for index in range(400):
        frame = make_frame(index, auth=index % 3 != 0)
        data = bytearray(encode_frame(frame))
        if rng.random() < 0.33:
            kind = rng.choice(["flip", "drop", "insert", "burst"])
            inner = rng.randrange(1, len(data) - 1)
            if kind == "flip":
                data[inner] ^= 1 << rng.randrange(8)
            elif kind == "drop":
                del data[inner]
            elif kind == "insert":
                data.insert(inner, rng.randrange(256))
            else:
                for _ in range(rng.randint(2, 5)):
                    data[rng.randrange(1, len(data) - 1)] ^= rng.randrange(1, 256)
        else:
            untouched.append(frame)
        stream += data
    for cuts in ([], sorted(rng.sample(range(1, len(stream)), 500))):
        decoder, events = feed_in_chunks(bytes(stream), cuts)
        frames = [e for e in events if isinstance(e, Frame)]
        assert frames == untouched
        assert decoder.stats.frames_ok == len(untouched)
        assert decoder.stats.resyncs >= 400 // 4


# --- property tests ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments=st.lists(segment_strategy, max_size=12), data=st.data())
def test_any_stream_in_any_chunking_never_raises_and_yields_only_valid_frames(segments, data):
    """Arbitrary bytes, arbitrary reads: no exception, and exactly the frames an independent model finds."""
    stream = b"".join(segments)
    cuts = data.draw(st.lists(st.integers(0, max(len(stream), 1)), max_size=20))
    decoder, events = feed_in_chunks(stream, cuts)
    frames = [e for e in events if isinstance(e, Frame)]
    for frame in frames:  # every frame handed out passes the CRC (and every other framing check)
        assert parse_raw_frame(cobs.decode(encode_frame(frame)[1:-1])) == frame
    # The model splits at every 0x00; a trailing run without a delimiter is not yet a frame.
    complete = stream[: stream.rfind(b"\x00") + 1] if b"\x00" in stream else b""
    assert frames == reference_frames(complete)
    assert all(isinstance(e, Frame | FrameError) for e in events)
    assert decoder.stats.frames_ok == len(frames)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments=st.lists(segment_strategy, max_size=12), data=st.data())
def test_chunking_never_changes_frames_events_or_counters(segments, data):
    """Whole, halves, byte by byte and random split points: identical frames, errors and LinkStats."""
    stream = b"".join(segments)
    random_cuts = data.draw(st.lists(st.integers(1, max(len(stream), 1)), max_size=30))
    splits = {
        "whole": [],
        "halves": [len(stream) // 2],
        "bytes": list(range(len(stream))),
        "random": random_cuts,
    }
    results = {}
    for name, cuts in splits.items():
        decoder, events = feed_in_chunks(stream, cuts)
        results[name] = (summary(events), decoder.stats.as_dict())
    assert results["halves"] == results["whole"]
    assert results["bytes"] == results["whole"]
    assert results["random"] == results["whole"]
