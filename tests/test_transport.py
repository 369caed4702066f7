"""Transports: pyserial URLs through open_port, the in-memory LoopbackPair, and the line-noise manipulator."""

from __future__ import annotations

import random
import threading
import time

import pytest

from protocols.errors import LinkError, ProtocolError
from protocols.transport import LoopbackPair, LoopbackPort, line_noise, open_port


def test_open_port_loop_url_round_trip():
    """loop:// echoes what is written, through the same open_port every URL goes through."""
    port = open_port("loop://", timeout=0.5)
    try:
        assert port.is_open
        port.write(b"\x00hello\x00")
        assert port.read(7) == b"\x00hello\x00"
        assert port.timeout == 0.5
    finally:
        port.close()


def test_open_port_nonexistent_path_raises_link_error_naming_it(tmp_path):
    path = str(tmp_path / "no-such-serial-device")
    with pytest.raises(LinkError) as info:
        open_port(path)
    assert path in str(info.value)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, ProtocolError)


def test_open_port_unknown_url_scheme_raises_link_error():
    with pytest.raises(LinkError) as info:
        open_port("nosuchscheme://x")
    assert "nosuchscheme://x" in str(info.value)


def test_loopback_pair_carries_bytes_both_ways():
    pair = LoopbackPair(timeout=0.5)
    assert pair.host.write(b"request") == 7
    assert pair.device.in_waiting == 7
    assert pair.device.read(3) == b"req"
    assert pair.device.read(100) == b"uest"
    pair.device.write(b"reply")
    assert pair.host.read(5) == b"reply"
    assert pair.host.bytes_written == 7 and pair.device.bytes_written == 5
    pair.close()


def test_loopback_read_timeout_returns_empty():
    """With nothing to read, read() returns b'' after the timeout (not before, not much after)."""
    pair = LoopbackPair(timeout=0.05)
    started = time.monotonic()
    assert pair.host.read(1) == b""
    elapsed = time.monotonic() - started
    assert 0.04 <= elapsed < 1.0
    pair.host.timeout = 0
    assert pair.host.read(1) == b""
    pair.close()


def test_loopback_read_wakes_when_data_arrives():
    """A blocked read returns as soon as the peer writes, well before its timeout."""
    pair = LoopbackPair(timeout=5.0)
    writer = threading.Timer(0.05, pair.device.write, args=(b"x",))
    started = time.monotonic()
    writer.start()
    try:
        assert pair.host.read(1) == b"x"
        assert time.monotonic() - started < 2.0
    finally:
        writer.join()
        pair.close()


def test_closed_port_raises_link_error():
    """After close (of either end) read and write raise LinkError; is_open turns False; close is idempotent."""
    pair = LoopbackPair(timeout=0.05)
    pair.device.close()
    assert not pair.host.is_open and not pair.device.is_open
    for port in (pair.host, pair.device):
        with pytest.raises(LinkError):
            port.write(b"x")
        with pytest.raises(LinkError):
            port.read(1)
    pair.close()
    pair.host.close()


def test_unconnected_port_write_raises_link_error():
    with pytest.raises(LinkError):
        LoopbackPort("alone").write(b"x")


def test_close_wakes_a_blocked_reader():
    pair = LoopbackPair(timeout=5.0)
    closer = threading.Timer(0.05, pair.close)
    started = time.monotonic()
    closer.start()
    try:
        with pytest.raises(LinkError):
            pair.host.read(1)
        assert time.monotonic() - started < 2.0
    finally:
        closer.join()


def test_reset_input_buffer_discards_unread_bytes():
    pair = LoopbackPair(timeout=0.01)
    pair.device.write(b"stale")
    pair.host.reset_input_buffer()
    assert pair.host.in_waiting == 0
    assert pair.host.read(1) == b""
    pair.close()


def test_manipulator_rewrites_bytes_in_flight():
    pair = LoopbackPair(timeout=0.05)
    pair.host.manipulator = lambda data: data.upper() + b"!"
    pair.host.write(b"abc")
    assert pair.device.read(10) == b"ABC!"
    pair.host.manipulator = lambda data: b""  # a dropped write delivers nothing
    pair.host.write(b"gone")
    assert pair.device.read(10) == b""
    assert pair.host.bytes_written == 7
    pair.close()


def test_line_noise_rates():
    """line_noise drops, flips and duplicates bytes at roughly the given rates (seeded)."""
    data = bytes(range(256)) * 400  # 102,400 bytes
    assert line_noise(random.Random(1))(data) == data
    dropped = line_noise(random.Random(1), drop_rate=0.1)(data)
    assert 0.88 * len(data) < len(dropped) < 0.92 * len(data)
    duplicated = line_noise(random.Random(1), duplicate_rate=0.1)(data)
    assert 1.08 * len(data) < len(duplicated) < 1.12 * len(data)
    flipped = line_noise(random.Random(1), flip_rate=0.05)(data)
    assert len(flipped) == len(data)
    differing = [(a ^ b) for a, b in zip(data, flipped, strict=True) if a != b]
    assert 0.04 * len(data) < len(differing) < 0.06 * len(data)
    assert all(bin(x).count("1") == 1 for x in differing)  # one bit per damaged byte


def test_line_noise_is_reproducible_with_a_seed():
    data = bytes(range(256)) * 10
    make = lambda: line_noise(random.Random(7), flip_rate=0.01, drop_rate=0.01, duplicate_rate=0.01)  # noqa: E731
    assert make()(data) == make()(data)


def test_raise_fd_limit_lifts_the_soft_limit_to_the_hard_one(monkeypatch):
    import resource

    from protocols.transport import raise_fd_limit

    calls = []
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 8192))
    monkeypatch.setattr(resource, "setrlimit", lambda which, limits: calls.append(limits))
    assert raise_fd_limit(900) == 1024 and calls == []  # enough already: left alone
    assert raise_fd_limit(3000) == 8192
    assert calls == [(8192, 8192)]


def test_raise_fd_limit_names_both_limits_when_the_hard_one_is_too_low(monkeypatch):
    import resource

    from protocols.transport import raise_fd_limit

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, 2048))
    with pytest.raises(OSError, match=r"5000 open files needed, but the hard limit is 2048 \(soft 1024\)"):
        raise_fd_limit(5000)
