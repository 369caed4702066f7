"""The one I/O loop: moves bytes between each device and its pty, serial port or TCP socket.

One thread serves every device of the process with a selector: readable links are read, the
bytes go to ``Device.receive``, the answer is written back; a tick (default every 50 ms) lets
devices advance, expire sessions and push new events (a large fleet a slice at a time, so that
the devices together are ticked at most ``DEVICE_TICKS_PER_S`` times a second). With a baud
rate set, bytes are paced at their wire time (10 bits a byte): a request counts as received
when its last byte would have arrived, and a reply is delivered when its last byte would have
been sent. Line faults from the device's ``LinkFaults`` (noise, delay, disconnect) are applied
to what the device sends and, for a disconnect, to what it receives.

A stop asked for at any time, even before ``run()`` starts (a shared ``stop`` event set by a
signal during start-up), ends the loop with every device saved and every transport closed.

Owns the transports and the loop; must not import ``cli`` or ``dashboard``.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import os
import selectors
import socket
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import serial

from protocols.codec import REGISTRY
from protocols.framing import Frame, FrameDecoder, FrameFlags

from .device import Device

log = logging.getLogger(__name__)
READ_SIZE = 4096
_yield: Callable[[], None] = getattr(os, "sched_yield", lambda: None)
# While a host sends request after request, the loop polls its links instead of sleeping for
# this long after each one: waking an idle core (a halted vCPU, above all) costs tens of µs, a
# real device answers at once. A host that pauses longer than this never makes the loop spin.
DEFAULT_SPIN_S = 0.0005
# Device ticks a second across the process [E]: a tick costs about 20 µs, so 1,000 devices
# ticked every 50 ms took 44 % of a core doing nothing else. A tick only pushes events and
# expires sessions (a request brings its device up to date first), so past 100 devices each is
# ticked less often: every 0.5 s at 1,000, which adds at most that to a pushed alarm's latency.
DEVICE_TICKS_PER_S = 2000


class Transport:
    """A byte link to one host: ``fileno`` to select on, ``read``, ``write``, ``close``."""

    description = ""

    def fileno(self) -> int:
        """The descriptor to select on (-1 when nothing to read now)."""
        raise NotImplementedError

    def read(self) -> bytes:
        """Read what is there; b'' when nothing (or the peer went away)."""
        raise NotImplementedError

    def write(self, data: bytes) -> int:
        """Write without blocking; return the bytes accepted (the rest is lost, like on a line)."""
        raise NotImplementedError

    def drop_peer(self) -> None:
        """Hang up on the current peer, if the medium has one (a disconnect fault)."""

    def close(self) -> None:
        """Release everything."""
        raise NotImplementedError


class PtyTransport(Transport):
    """A pseudo-terminal we create: clients open ``path`` (or the symlink ``link``) like a serial port."""

    def __init__(self, link: str | None = None) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass unchanged
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.link = Path(link) if link else None
        if self.link:
            tmp = self.link.with_name(f".{self.link.name}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(self.path)
            os.replace(tmp, self.link)
        self.description = self.path + (f" (link {self.link})" if self.link else "")

    def fileno(self) -> int:
        return self.master

    def read(self) -> bytes:
        try:
            return os.read(self.master, READ_SIZE)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise

    def write(self, data: bytes) -> int:
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0

    def close(self) -> None:
        if self.link and self.link.is_symlink():
            self.link.unlink(missing_ok=True)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class TcpTransport(Transport):
    """A TCP listener for pyserial's ``socket://HOST:PORT``; one client at a time, the newest wins."""

    def __init__(self, host: str, port: int) -> None:
        self.listener = socket.create_server((host, port))
        self.listener.setblocking(False)
        self.host, self.port = self.listener.getsockname()[:2]
        self.client: socket.socket | None = None
        self.description = f"socket://{self.host}:{self.port}"

    def accept(self) -> None:
        """Take a new connection, replacing the current one."""
        conn, _ = self.listener.accept()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.drop_peer()
        self.client = conn

    def fileno(self) -> int:
        return self.client.fileno() if self.client else -1

    def read(self) -> bytes:
        if self.client is None:
            return b""
        try:
            data = self.client.recv(READ_SIZE)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self.drop_peer()
        return data

    def write(self, data: bytes) -> int:
        if self.client is None:
            return 0
        try:
            return self.client.send(data)
        except (BlockingIOError, OSError):
            return 0

    def drop_peer(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def close(self) -> None:
        self.drop_peer()
        self.listener.close()


class SerialTransport(Transport):
    """A real serial port opened with pyserial."""

    def __init__(self, port: str, baud: int) -> None:
        self.port = serial.Serial(port, baudrate=baud, timeout=0, write_timeout=0)
        self.description = port

    def fileno(self) -> int:
        return self.port.fileno()

    def read(self) -> bytes:
        return self.port.read(READ_SIZE)

    def write(self, data: bytes) -> int:
        try:
            return self.port.write(data) or 0
        except serial.SerialTimeoutException:
            return 0

    def close(self) -> None:
        self.port.close()


@dataclass(eq=False)
class Served:
    """A device with its transport and pacing state."""

    name: str
    device: Device
    transport: Transport
    baud: int | None = None
    rx_busy_until: float = 0.0
    tx_busy_until: float = 0.0
    bytes_lost: int = 0
    trace: bool = False
    trace_decoders: dict[str, FrameDecoder] = field(default_factory=dict)

    def wire_time(self, size: int) -> float:
        """Seconds ``size`` bytes take on the line (0 without a baud rate)."""
        return size * 10.0 / self.baud if self.baud else 0.0


def _trace(item: Served, direction: str, data: bytes) -> None:
    """Log bytes in hex, then each frame they complete, decoded as far as the header."""
    log.info("%s %s %s", item.name, direction, data.hex(" "))
    decoder = item.trace_decoders.setdefault(direction, FrameDecoder())
    for event in decoder.feed_events(data):
        if isinstance(event, Frame):
            name = REGISTRY[event.msg_type].__name__ if event.msg_type in REGISTRY else f"0x{event.msg_type:02x}"
            log.info(
                "%s %s   %s flags=%s session=%08x counter=%d command=%08x payload=%dB",
                item.name,
                direction,
                name,
                FrameFlags(event.flags).name or "0",
                event.session_id,
                event.counter,
                event.command_id,
                len(event.payload),
            )
        else:
            log.info("%s %s   dropped: %s", item.name, direction, event)


def spin_deadline(arrived: float, last_done: float, done: float, spin_s: float) -> float:
    """Until when the loop polls instead of sleeping, after requests that ``arrived`` and were ``done``.

    Only a host that came back within ``spin_s`` of the previous answer (``last_done``) is
    polling back to back: it gets a window of ``spin_s``; anyone else gets none (0.0).
    """
    return done + spin_s if spin_s > 0 and arrived - last_done <= spin_s else 0.0


class Server:
    """Serves devices until ``stop()``; run it in the foreground or in a thread."""

    def __init__(
        self,
        served: list[Served],
        tick_s: float = 0.05,
        spin_s: float = DEFAULT_SPIN_S,
        stop: threading.Event | None = None,
    ) -> None:
        """``stop``: an event shared with whoever may ask for a stop before this server exists.

        Every ``tick_s`` the next slice of devices is ticked: all of them for up to
        ``DEVICE_TICKS_PER_S * tick_s`` devices, so each one is ticked every
        ``max(tick_s, len(served) / DEVICE_TICKS_PER_S)`` seconds.
        """
        self.served = served
        self.tick_s = tick_s
        self._per_tick = max(1, min(len(served), round(DEVICE_TICKS_PER_S * tick_s)))
        self._next_device = 0
        self.spin_s = spin_s
        self._stop = stop if stop is not None else threading.Event()
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Served, str, bytes]] = []
        self._seq = itertools.count()
        self._registered: dict[Served, int] = {}

    def stop(self) -> None:
        """Ask the loop to end (thread-safe, also from a signal handler)."""
        self._stop.set()

    def run(self) -> None:
        """Serve until stopped (at once if a stop came first); then save every device and release every transport."""
        dynamic = False  # a TCP link changes descriptor as clients come and go; ptys and ports do not
        for item in self.served:
            if isinstance(item.transport, TcpTransport):
                self._selector.register(item.transport.listener, selectors.EVENT_READ, ("accept", item))
                dynamic = True
        self._sync_registrations()
        next_tick = time.monotonic()
        spin_until = last_done = 0.0
        try:
            while not self._stop.is_set():
                if dynamic:
                    self._sync_registrations()
                now = time.monotonic()
                if now >= next_tick:
                    self._tick_slice(now)
                    next_tick = now + self.tick_s
                wait = min(next_tick, self._timers[0][0] if self._timers else next_tick) - now
                ready = self._selector.select(0.0 if now < spin_until else max(0.0, min(wait, self.tick_s)))
                if ready:
                    arrived = time.monotonic()
                    for key, _ in ready:
                        role, item = key.data
                        if role == "accept":
                            item.transport.accept()
                        else:
                            self._on_readable(item)
                    done = time.monotonic()
                    spin_until = spin_deadline(arrived, last_done, done, self.spin_s)
                    last_done = done
                elif now < spin_until:
                    # Spinning, nothing yet: let any other runnable task on this core go first, so on
                    # a busy machine the spin does not take the host's CPU time away from it.
                    _yield()
                if self._timers:
                    self._run_timers()
        finally:
            for item in self.served:
                item.device.close()
                item.transport.close()
            self._selector.close()

    def _tick_slice(self, now: float) -> None:
        """Tick the next ``_per_tick`` devices, round the fleet."""
        count = len(self.served)
        for _ in range(self._per_tick if count else 0):
            self._tick(self.served[self._next_device % count], now)
            self._next_device = (self._next_device + 1) % count

    def _tick(self, item: Served, now: float) -> None:
        try:
            self._emit(item, item.device.tick(), now)
        except Exception:  # one device's model fault must not stop the others; it is logged in full
            log.exception("%s: device tick failed", item.name)

    def _sync_registrations(self) -> None:
        for item in self.served:
            fd = item.transport.fileno()
            old = self._registered.get(item)
            if old == fd:
                continue
            if old is not None and old >= 0:
                try:
                    self._selector.unregister(old)
                except (KeyError, ValueError):
                    pass
            if fd >= 0:
                self._selector.register(fd, selectors.EVENT_READ, ("read", item))
            self._registered[item] = fd

    def _on_readable(self, item: Served) -> None:
        data = item.transport.read()
        if not data:
            return
        now = time.monotonic()
        if not item.device.link_faults.connected(item.device.clock.now_ms()):
            item.transport.drop_peer()
            return
        if item.trace:
            _trace(item, "rx", data)
        if item.baud:
            item.rx_busy_until = max(now, item.rx_busy_until) + item.wire_time(len(data))
            self._schedule(item.rx_busy_until, item, "rx", data)
        else:
            self._emit(item, item.device.receive(data), now)

    def _emit(self, item: Served, out: bytes, now: float) -> None:
        if not out:
            return
        faults = item.device.link_faults
        device_now = item.device.clock.now_ms()
        if not faults.connected(device_now):
            item.bytes_lost += len(out)
            return
        out, delay = faults.mangle(out, device_now)
        if item.baud or delay:
            item.tx_busy_until = max(now + delay, item.tx_busy_until) + item.wire_time(len(out))
            self._schedule(item.tx_busy_until, item, "tx", out)
        else:
            self._write(item, out)

    def _write(self, item: Served, out: bytes) -> None:
        if item.trace:
            _trace(item, "tx", out)
        written = item.transport.write(out)
        item.bytes_lost += len(out) - written

    def _schedule(self, due: float, item: Served, kind: str, data: bytes) -> None:
        heapq.heappush(self._timers, (due, next(self._seq), item, kind, data))

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, item, kind, data = heapq.heappop(self._timers)
            if kind == "rx":
                self._emit(item, item.device.receive(data), now)
            else:
                self._write(item, data)
