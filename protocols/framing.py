"""Frames on the wire: header layout, COBS stuffing, CRC-32C, and a resynchronising decoder.

Owns byte layout only: no message knowledge, no keys, no port, no clock. ``auth`` computes and
checks the tag; ``codec`` turns payloads into messages.

One frame on the wire::

    0x00 | COBS( header(21) | payload(len) | tag(16, if AUTH) | crc32c(4) ) | 0x00

    header (little-endian):
    +0  u8   version        (PROTOCOL_VERSION)
    +1  u8   msg_type       (MsgType)
    +2  u8   flags          (FrameFlags; reserved bits must be 0)
    +3  u32  session_id     (0 = no session)
    +7  u64  counter        (per session and direction, strictly increasing)
    +15 u32  command_id     (a reply repeats its request's)
    +19 u16  payload_len    (<= MAX_PAYLOAD)

The CRC covers every byte before it. Recovery rules of ``FrameDecoder``:
- bytes before the first delimiter, empty runs between delimiters: ignored;
- a run that fails COBS, the length check or the CRC: dropped and counted, decoding restarts
  after its closing delimiter;
- a run growing past the largest legal encoded frame: dropped as oversize, and every byte up to
  the next delimiter is discarded without being stored (memory stays bounded).
Chunking never changes the result: the decoder keeps at most one partial run between calls.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntFlag

from cobs import cobs

from .crc import CRC_RESIDUE, CRC_SIZE, crc32c
from .errors import CrcError, FrameError, MalformedFrame, OversizeFrame, UnsupportedVersion

PROTOCOL_VERSION = 1
DELIMITER = b"\x00"
HEADER = struct.Struct("<BBBIQIH")
HEADER_SIZE = HEADER.size
TAG_SIZE = 16
MAX_PAYLOAD = 255  # R1; up to 618 keeps CRC-32C at HD 6 (655 covered bytes)
MAX_RAW_FRAME = HEADER_SIZE + MAX_PAYLOAD + TAG_SIZE + CRC_SIZE
# COBS adds one byte per started 254-byte block.
MAX_ENCODED_FRAME = MAX_RAW_FRAME + (MAX_RAW_FRAME + 253) // 254
MIN_RAW_FRAME = HEADER_SIZE + CRC_SIZE
_CRC = struct.Struct("<I")


FLAG_AUTH = 0x01  # a 16-byte HMAC tag follows the payload
FLAG_FROM_DEVICE = 0x02  # sent by the device (replies and pushes)
FLAG_PUSH = 0x04  # unsolicited device message, command_id 0
_KNOWN_FLAGS = FLAG_AUTH | FLAG_FROM_DEVICE | FLAG_PUSH


class FrameFlags(IntFlag):
    """Names of the header's flag bits (frames store the plain int: IntFlag arithmetic is slow)."""

    AUTH = FLAG_AUTH
    FROM_DEVICE = FLAG_FROM_DEVICE
    PUSH = FLAG_PUSH


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: header fields, payload, and tag (empty unless ``AUTH`` is set)."""

    msg_type: int
    flags: int
    session_id: int
    counter: int
    command_id: int
    payload: bytes
    tag: bytes = b""
    version: int = PROTOCOL_VERSION
    raw_signed: bytes = field(default=b"", repr=False, compare=False)  # header + payload as received

    @property
    def authenticated(self) -> bool:
        """True when the frame carries a tag."""
        return bool(self.flags & FLAG_AUTH)

    def mac_input(self) -> bytes:
        """The bytes the tag covers: the packed header followed by the payload."""
        return self.raw_signed or pack_header(self) + self.payload


def pack_header(frame: Frame) -> bytes:
    """Pack ``frame``'s header fields into their 21 wire bytes."""
    try:
        return HEADER.pack(
            frame.version,
            frame.msg_type,
            int(frame.flags),
            frame.session_id,
            frame.counter,
            frame.command_id,
            len(frame.payload),
        )
    except struct.error as exc:
        raise MalformedFrame(f"header field out of range: {exc}") from exc


def encode_frame(frame: Frame) -> bytes:
    """Return the delimited wire bytes of ``frame`` (CRC computed here, tag taken as given)."""
    if len(frame.payload) > MAX_PAYLOAD:
        raise OversizeFrame(f"payload of {len(frame.payload)} bytes exceeds {MAX_PAYLOAD}")
    if frame.authenticated != (len(frame.tag) == TAG_SIZE) or (frame.tag and not frame.authenticated):
        raise MalformedFrame("AUTH flag and tag disagree: an AUTH frame needs a 16-byte tag")
    return wire_bytes(pack_header(frame) + frame.payload, frame.tag)


def wire_bytes(signed: bytes, tag: bytes = b"") -> bytes:
    """Delimited wire bytes of a frame given its packed header and payload (``signed``) and its tag.

    The caller has checked the header (``encode_frame`` does; ``auth.Session.seal_wire`` packs
    it from values it owns): this only appends the CRC, stuffs and delimits.
    """
    raw = signed + tag
    return DELIMITER + cobs.encode(raw + _CRC.pack(crc32c(raw))) + DELIMITER


def parse_raw_frame(raw: bytes) -> Frame:
    """Check and split one un-stuffed frame; raise a ``FrameError`` subclass when it is bad."""
    if len(raw) < MIN_RAW_FRAME:
        raise MalformedFrame(f"frame of {len(raw)} bytes is shorter than {MIN_RAW_FRAME}")
    body_end = len(raw) - CRC_SIZE
    if crc32c(raw) != CRC_RESIDUE:  # same as comparing the CRC of the body with the sent one
        raise CrcError("CRC-32C mismatch")
    version, msg_type, flags, session_id, counter, command_id, length = HEADER.unpack_from(raw)
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersion(f"protocol version {version}, this codec speaks {PROTOCOL_VERSION}")
    if flags & ~_KNOWN_FLAGS & 0xFF:
        raise MalformedFrame(f"reserved flag bits set: 0x{flags:02x}")
    tag_size = TAG_SIZE if flags & FLAG_AUTH else 0
    if length > MAX_PAYLOAD or HEADER_SIZE + length + tag_size != body_end:
        raise MalformedFrame(f"payload_len {length} disagrees with frame size {len(raw)}")
    payload_end = HEADER_SIZE + length
    return Frame(
        msg_type,
        flags,
        session_id,
        counter,
        command_id,
        raw[HEADER_SIZE:payload_end],
        raw[payload_end:body_end],
        version,
        raw[:payload_end],
    )


@dataclass
class LinkStats:
    """Link-quality counters, shared by the decoder (framing), the session layer (auth) and the endpoint."""

    bytes_rx: int = 0
    bytes_dropped: int = 0
    frames_ok: int = 0
    crc_errors: int = 0
    malformed: int = 0
    oversize: int = 0
    bad_version: int = 0
    resyncs: int = 0
    mac_errors: int = 0
    replays: int = 0
    seq_gaps: int = 0
    # Receiver side only (a device's endpoint): frames and bad runs dropped unexamined beyond the
    # wake-up budget (R10). A host never limits what it reads, so its own count stays 0.
    rate_limited: int = 0

    def as_dict(self) -> dict[str, int]:
        """A copy of the counters, for display or export."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class FrameDecoder:
    """Byte-fed frame decoder: ``feed(chunk)`` returns the frames completed by that chunk."""

    stats: LinkStats = field(default_factory=LinkStats)
    _partial: bytearray = field(default_factory=bytearray, repr=False)
    # Bytes before the first delimiter are the tail of a frame we joined mid-way: not ours to judge.
    _discarding: bool = field(default=True, repr=False)
    _discarded_any: bool = field(default=False, repr=False)

    def feed(self, data: bytes) -> list[Frame]:
        """Feed received bytes; return the valid frames they completed, in order."""
        return [item for item in self.feed_events(data) if isinstance(item, Frame)]

    def feed_events(self, data: bytes) -> list[Frame | FrameError]:
        """Like ``feed``, but also return each dropped run as its ``FrameError`` (never raised)."""
        self.stats.bytes_rx += len(data)
        if not self._partial and not self._discarding and data[:1] == DELIMITER:
            end = data.find(0, 1)
            if end == len(data) - 1 and end > 1:  # the usual chunk: one whole frame, nothing pending
                return [self._parse(data[1:end])]
        events: list[Frame | FrameError] = []
        start = 0
        while True:
            end = data.find(0, start)
            if end < 0:
                self._store(data[start:], events)
                return events
            run = data[start:end]
            start = end + 1
            if self._discarding:
                # The delimiter closing a discarded run counts as dropped with it; a bare one does not.
                self.stats.bytes_dropped += len(run) + (1 if run or self._discarded_any else 0)
                self._discarding = self._discarded_any = False
                continue
            if self._partial:
                self._partial += run
                run = bytes(self._partial)
                self._partial.clear()
            if run:
                events.append(self._parse(run))

    def _store(self, tail: bytes, events: list[Frame | FrameError]) -> None:
        if self._discarding:
            self.stats.bytes_dropped += len(tail)
            self._discarded_any = self._discarded_any or bool(tail)
        elif len(self._partial) + len(tail) > MAX_ENCODED_FRAME:
            self.stats.bytes_dropped += len(self._partial) + len(tail)
            self.stats.oversize += 1
            self.stats.resyncs += 1
            self._partial.clear()
            self._discarding = self._discarded_any = True
            events.append(OversizeFrame(f"no delimiter within {MAX_ENCODED_FRAME} bytes"))
        else:
            self._partial += tail

    def _parse(self, run: bytes) -> Frame | FrameError:
        try:
            if len(run) > MAX_ENCODED_FRAME:
                raise OversizeFrame(f"{len(run)}-byte run exceeds {MAX_ENCODED_FRAME}")
            try:
                raw = cobs.decode(run)
            except cobs.DecodeError as exc:
                raise MalformedFrame(f"COBS: {exc}") from None
            frame = parse_raw_frame(raw)
        except FrameError as exc:
            self._count(exc, len(run) + 1)
            return exc
        self.stats.frames_ok += 1
        return frame

    def _count(self, exc: FrameError, size: int) -> None:
        stats = self.stats
        stats.bytes_dropped += size
        stats.resyncs += 1
        if isinstance(exc, CrcError):
            stats.crc_errors += 1
        elif isinstance(exc, OversizeFrame):
            stats.oversize += 1
        elif isinstance(exc, UnsupportedVersion):
            stats.bad_version += 1
        else:
            stats.malformed += 1

    def reset(self) -> None:
        """Forget any partial run (after a reconnect) and wait for a delimiter; counters are kept."""
        self._partial.clear()
        self._discarding = True
        self._discarded_any = False
