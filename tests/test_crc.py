"""CRC-32C: catalogue check value, and R2 (every 1- to 5-bit error in a maximum-size frame is caught).

The exhaustive checks flip bits in the raw (pre-COBS) bytes of the largest legal frame (255-byte
payload plus the 16-byte tag: 296 raw bytes, 2,368 bits) and demand that ``parse_raw_frame``
refuses every one with ``CrcError`` rather than returning a frame or failing some other way.
"""

from __future__ import annotations

import random
import struct

import pytest
from cobs import cobs

from protocols import crc
from protocols.crc import CRC_CHECK, CRC_RESIDUE, CRC_SIZE, crc32c
from protocols.errors import CrcError
from protocols.framing import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    MAX_RAW_FRAME,
    TAG_SIZE,
    Frame,
    FrameFlags,
    encode_frame,
    parse_raw_frame,
)


def _max_raw_frame() -> bytearray:
    """Raw bytes of a frame of the largest legal size, with a valid CRC."""
    rng = random.Random(2)
    frame = Frame(
        msg_type=0x90,
        flags=FrameFlags.AUTH | FrameFlags.FROM_DEVICE,
        session_id=0x5EC00001,
        counter=0x0102030405060708,
        command_id=0xDEADBEEF,
        payload=rng.randbytes(MAX_PAYLOAD),
        tag=rng.randbytes(TAG_SIZE),
    )
    raw = bytearray(cobs.decode(encode_frame(frame)[1:-1]))
    assert len(raw) == MAX_RAW_FRAME == HEADER_SIZE + MAX_PAYLOAD + TAG_SIZE + CRC_SIZE
    assert parse_raw_frame(bytes(raw)) == frame
    return raw


def _flip(raw: bytearray, bit: int) -> None:
    raw[bit >> 3] ^= 1 << (bit & 7)


def test_check_value_over_123456789():
    """The catalogue check value of CRC-32/ISCSI, as documented in crc.py and SPEC.md 2.2."""
    assert crc32c(b"123456789") == 0xE3069283 == CRC_CHECK


def test_catalogue_parameters_and_empty_input():
    """Init and xor-out are both applied: the CRC of nothing is 0; the polynomial is Castagnoli's."""
    assert crc32c(b"") == 0
    assert crc.CRC_POLY == 0x1EDC6F41
    assert crc.CRC_SIZE == 4
    assert crc32c(bytearray(b"123456789")) == crc32c(memoryview(b"123456789")) == CRC_CHECK


def _reference_crc32c(data: bytes) -> int:
    """A plain bitwise reflected CRC-32C."""
    value = 0xFFFFFFFF
    for byte in data:
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ (0x82F63B78 if value & 1 else 0)
    return value ^ 0xFFFFFFFF


def test_crc_matches_a_bitwise_reference_implementation():
    """The C-accelerated CRC equals a plain reflected CRC-32C over random inputs."""
    rng = random.Random(5)
    for size in (0, 1, 2, 3, 7, 64, 296):
        data = rng.randbytes(size)
        assert crc32c(data) == _reference_crc32c(data)


def test_data_followed_by_its_crc_has_the_constant_residue():
    """What parse_raw_frame checks a frame against: one CRC over the body and its CRC."""
    rng = random.Random(6)
    for size in (0, 1, 21, 41, 296):
        data = rng.randbytes(size)
        framed = data + struct.pack("<I", _reference_crc32c(data))
        assert _reference_crc32c(framed) == crc32c(framed) == CRC_RESIDUE
        assert crc32c(framed[:-1] + bytes([framed[-1] ^ 0x80])) != CRC_RESIDUE


def test_frame_crc_is_little_endian_over_all_preceding_bytes():
    """The last 4 raw bytes are the CRC-32C (little-endian) of header, payload and tag."""
    raw = _max_raw_frame()
    (stored,) = struct.unpack("<I", raw[-CRC_SIZE:])
    assert stored == crc32c(bytes(raw[:-CRC_SIZE]))


def test_r2_every_single_bit_flip_is_rejected_with_crc_error():
    """R2: each of the 2,368 one-bit errors of a maximum-size frame raises CrcError."""
    raw = _max_raw_frame()
    nbits = len(raw) * 8
    missed = []
    for bit in range(nbits):
        _flip(raw, bit)
        try:
            parse_raw_frame(raw)
        except CrcError:
            pass
        except Exception as exc:  # any other outcome is a failure of R2
            missed.append((bit, repr(exc)))
        else:
            missed.append((bit, "accepted"))
        _flip(raw, bit)
    assert not missed


def test_r2_every_two_bit_flip_is_rejected_with_crc_error():
    """R2: each of the 2,801,328 two-bit errors of a maximum-size frame raises CrcError (exhaustive)."""
    raw = _max_raw_frame()
    nbits = len(raw) * 8
    parse = parse_raw_frame
    checked = 0
    missed = []
    for first in range(nbits - 1):
        raw[first >> 3] ^= 1 << (first & 7)
        for second in range(first + 1, nbits):
            index, mask = second >> 3, 1 << (second & 7)
            raw[index] ^= mask
            try:
                parse(raw)
            except CrcError:
                pass
            except Exception as exc:
                missed.append((first, second, repr(exc)))
            else:
                missed.append((first, second, "accepted"))
            raw[index] ^= mask
            checked += 1
        raw[first >> 3] ^= 1 << (first & 7)
    assert checked == nbits * (nbits - 1) // 2
    assert not missed[:10]


@pytest.mark.parametrize("nbits_flipped", [3, 4, 5])
def test_r2_random_three_to_five_bit_flips_are_rejected(nbits_flipped):
    """R2: a seeded sample of 20,000 random 3-, 4- and 5-bit errors each raises CrcError."""
    raw = _max_raw_frame()
    nbits = len(raw) * 8
    rng = random.Random(1000 + nbits_flipped)
    missed = []
    for _ in range(20_000):
        bits = rng.sample(range(nbits), nbits_flipped)
        for bit in bits:
            _flip(raw, bit)
        try:
            parse_raw_frame(raw)
        except CrcError:
            pass
        except Exception as exc:
            missed.append((bits, repr(exc)))
        else:
            missed.append((bits, "accepted"))
        for bit in bits:
            _flip(raw, bit)
    assert not missed[:10]


def test_flipped_frame_with_recomputed_crc_is_not_a_crc_error():
    """Control for the tests above: with the CRC fixed up, a payload bit flip passes framing."""
    raw = _max_raw_frame()
    _flip(raw, (HEADER_SIZE + 10) * 8 + 3)
    struct.pack_into("<I", raw, len(raw) - CRC_SIZE, crc32c(bytes(raw[:-CRC_SIZE])))
    frame = parse_raw_frame(bytes(raw))
    assert len(frame.payload) == MAX_PAYLOAD
