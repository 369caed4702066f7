"""Byte transports: any pyserial URL, and an in-memory port pair with a fault manipulator.

``open_port`` is the one place a port is opened: a pty path, ``/dev/ttyUSB0``, ``socket://``,
``rfc2217://``, ``loop://`` or ``spy://`` all go through ``serial.serial_for_url``, and its
failures come out as ``LinkError`` naming the URL. ``LoopbackPair`` gives two connected
serial-like ends for tests and in-process use; a manipulator rewrites each write in flight
(corrupt, drop, duplicate, split) to exercise the decoder and the retry logic.
"""

from __future__ import annotations

import errno
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

import serial

from .errors import LinkError

Manipulator = Callable[[bytes], bytes]


class SerialLike(Protocol):
    """What the client needs of a port: the subset of ``serial.SerialBase`` it uses."""

    timeout: float | None

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int = 1) -> bytes: ...

    @property
    def in_waiting(self) -> int: ...

    def close(self) -> None: ...


def raise_fd_limit(needed: int) -> int:
    """Make room for ``needed`` open descriptors: lift the soft RLIMIT_NOFILE towards the hard one.

    A fleet holds a descriptor or more per device (a pty, and pyserial's two abort pipes), past the
    usual soft limit of 1024. Returns the soft limit now in force; an ``OSError`` (EMFILE) that
    names both limits and the fix when even the hard limit is below ``needed``.
    """
    try:
        import resource  # POSIX only; elsewhere there is no limit to raise here
    except ImportError:
        return needed
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return needed if soft == resource.RLIM_INFINITY else soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise OSError(
            errno.EMFILE,
            f"{needed} open files needed, but the hard limit is {hard} (soft {soft}): "
            f"raise it (ulimit -Hn {needed} as root, or LimitNOFILE= in a systemd unit) or serve fewer devices",
        )
    target = needed if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def open_port(url: str, baudrate: int = 115200, timeout: float = 0.05) -> serial.SerialBase:
    """Open ``url`` with ``serial.serial_for_url``; raise ``LinkError`` with the reason if it fails."""
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, write_timeout=2.0)
    except (serial.SerialException, ValueError, OSError) as exc:
        raise LinkError(f"cannot open port {url!r}: {exc}") from exc


class LoopbackPort:
    """One end of a ``LoopbackPair``: a thread-safe, serial-like in-memory port."""

    def __init__(self, name: str, timeout: float | None = 0.05) -> None:
        self.name = name
        self.timeout = timeout
        self.peer: LoopbackPort | None = None
        self.manipulator: Manipulator | None = None
        self._buffer = bytearray()
        self._cond = threading.Condition()
        self._closed = False
        self.bytes_written = 0

    @property
    def is_open(self) -> bool:
        """False once either end is closed."""
        return not self._closed

    @property
    def in_waiting(self) -> int:
        """Bytes ready to read."""
        with self._cond:
            return len(self._buffer)

    def write(self, data: bytes) -> int:
        """Send ``data`` to the peer, through the manipulator if one is set."""
        peer = self.peer
        if self._closed or peer is None or peer._closed:
            raise LinkError(f"{self.name}: port is closed")
        self.bytes_written += len(data)
        delivered = self.manipulator(bytes(data)) if self.manipulator else bytes(data)
        peer._deliver(delivered)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        """Read up to ``size`` bytes, waiting at most ``timeout`` for the first one."""
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        with self._cond:
            while not self._buffer:
                if self._closed:
                    raise LinkError(f"{self.name}: port is closed")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return b""
                self._cond.wait(remaining)
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            return data

    def reset_input_buffer(self) -> None:
        """Discard unread bytes."""
        with self._cond:
            self._buffer.clear()

    def close(self) -> None:
        """Close this end; the peer sees the link go down. Idempotent."""
        for port in (self, self.peer):
            if port is not None:
                with port._cond:
                    port._closed = True
                    port._cond.notify_all()

    def _deliver(self, data: bytes) -> None:
        if not data:
            return
        with self._cond:
            self._buffer += data
            self._cond.notify_all()


class LoopbackPair:
    """Two connected in-memory ports, ``host`` and ``device``."""

    def __init__(self, timeout: float | None = 0.05) -> None:
        self.host = LoopbackPort("host", timeout)
        self.device = LoopbackPort("device", timeout)
        self.host.peer, self.device.peer = self.device, self.host

    def close(self) -> None:
        """Close both ends."""
        self.host.close()


def line_noise(
    rng: random.Random,
    flip_rate: float = 0.0,
    drop_rate: float = 0.0,
    duplicate_rate: float = 0.0,
) -> Manipulator:
    """A manipulator that flips one bit, drops or duplicates each byte at the given rates."""

    def manipulate(data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            roll = rng.random()
            if roll < drop_rate:
                continue
            if rng.random() < flip_rate:
                byte ^= 1 << rng.randrange(8)
            out.append(byte)
            if roll > 1.0 - duplicate_rate:
                out.append(byte)
        return bytes(out)

    return manipulate
