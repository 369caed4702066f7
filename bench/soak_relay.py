"""The soak run's host-side manipulator (docs/security.md R24): a relay thread between the gateway and the emulator.

``Relay`` owns a pty pair the gateway opens and moves bytes between it and the emulator's pty,
mangling the host-to-device direction through ``HostNoise`` (bit flips, dropped and inserted
bytes, duplicated chunks, a chunk held back now and then). It keeps the authenticated frames the
host sent, for replay bursts, queues injected frames whole, and while a burst's window is open
notes in a ``BurstWatch`` how the device answered every injected command.
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import threading
import time
import tty
from collections import Counter, deque
from dataclasses import dataclass, field

from children import READ_SIZE

from protocols.codec import decode_payload
from protocols.errors import ErrorCode, ProtocolError
from protocols.framing import FLAG_FROM_DEVICE, FLAG_PUSH, Frame, FrameDecoder
from protocols.messages import ErrorReply, MsgType

MAX_PENDING = 65536  # bytes a relay queues towards a side that does not read; beyond it they are lost, as on a line


# --- the host-side manipulator -------------------------------------------------------------------
@dataclass
class HostNoise:
    """The manipulator of the host-to-device direction: per-bit flips, per-byte drops and inserts, per-chunk dups."""

    ber: float
    drop: float
    insert: float
    dup: float
    reorder_every_s: float
    rng: random.Random
    enabled: bool = True

    def __post_init__(self) -> None:
        self.flip_byte = 1.0 - (1.0 - self.ber) ** 8  # chance a byte has at least one flipped bit

    def mangle(self, chunk: bytes) -> tuple[bytes, Counter[str]]:
        """The chunk as it arrives, and what was done to it."""
        done: Counter[str] = Counter()
        if not self.enabled:
            return chunk, done
        rng = self.rng
        out = bytearray()
        for byte in chunk:
            if rng.random() < self.insert:
                out.append(rng.randrange(256))
                done["inserted"] += 1
            if rng.random() < self.drop:
                done["dropped"] += 1
                continue
            if rng.random() < self.flip_byte:
                byte ^= 1 << rng.randrange(8)
                done["flipped"] += 1
            out.append(byte)
        return bytes(out), done

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"BER {self.ber:.1e} ({self.flip_byte:.1e}/byte), drop {self.drop:g}/byte, insert {self.insert:g}/byte, "
            f"chunk dup {self.dup:g}, a chunk held back every {self.reorder_every_s:g} s"
        )


@dataclass
class BurstWatch:
    """What the device answered to injected frames while a burst's window was open."""

    ids: set[int]
    refusals: Counter[str] = field(default_factory=Counter)
    accepted: list[str] = field(default_factory=list)


class Relay(threading.Thread):
    """Moves bytes between the gateway's pty and the emulator's, manipulating the host-to-device ones.

    Owns a pty pair: the gateway opens ``path``; the relay reads the master and writes to the
    emulator's pty, and the other way round. Chunks are queued whole, so an injected frame
    never lands inside another one. Thread-safe entry points: ``inject``, ``begin_burst``,
    ``end_burst``, ``reconnect_upstream``, ``captured``, ``stop``.
    """

    def __init__(self, name: str, upstream_path: str, noise: HostNoise, hold_max_s: float) -> None:
        super().__init__(name=f"relay-{name}", daemon=True)
        self.upstream_path = upstream_path
        self.noise = noise
        self.hold_max_s = hold_max_s
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # the relay keeps its slave open: the master never sees EIO between gateway reconnects
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self._slave)
        self.upstream = self._open_upstream()
        self.error: str | None = None
        self.stats: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._to_device = bytearray()
        self._to_host = bytearray()
        self._inject: deque[tuple[bytes, threading.Event | None]] = deque()
        self._held: tuple[bytes, float] | None = None
        self._next_hold = time.monotonic() + noise.reorder_every_s
        self._no_hold = False
        self._reconnect = threading.Event()
        self._reconnected = threading.Event()
        self._h2d = FrameDecoder()  # the clean stream the host sent: frames to replay
        self._d2h = FrameDecoder()  # what reaches the host: refusals and acceptances of injected frames
        self._captured: deque[Frame] = deque(maxlen=256)
        self._watch: BurstWatch | None = None

    def _open_upstream(self) -> int:
        fd = os.open(self.upstream_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        return fd

    # --- thread-safe entry points ----------------------------------------------------------------
    def captured(self) -> list[Frame]:
        """Authenticated frames the host sent, oldest first (a copy)."""
        with self._lock:
            return list(self._captured)

    def begin_burst(self) -> None:
        """Release a held chunk now and hold none until ``end_burst``: late host frames must not overlap a burst."""
        with self._lock:
            self._no_hold = True
            if self._held is not None:
                self._to_device += self._held[0]
                self._held = None

    def inject(self, frames: list[bytes], ids: set[int], timeout_s: float = 5.0) -> bool:
        """Open a burst window for ``ids``, queue ``frames`` for the emulator; True once they are written."""
        written = threading.Event()
        with self._lock:
            self._watch = BurstWatch(set(ids))
            for i, data in enumerate(frames):
                self._inject.append((data, written if i == len(frames) - 1 else None))
        return written.wait(timeout_s)

    def end_burst(self) -> BurstWatch:
        """Close the window; return what the device answered to the injected frames."""
        with self._lock:
            watch, self._watch = self._watch, None
            self._no_hold = False
            self._next_hold = time.monotonic() + self.noise.reorder_every_s
        return watch or BurstWatch(set())

    def reconnect_upstream(self, timeout_s: float = 5.0) -> bool:
        """Close and reopen the emulator's pty (a gateway reconnect); True once done."""
        self._reconnected.clear()
        self._reconnect.set()
        return self._reconnected.wait(timeout_s)

    def stop(self) -> None:
        """Ask the thread to end; ``join`` it, then ``close``."""
        self._halt.set()

    def close(self) -> None:
        """Release the descriptors (after the thread ended)."""
        for fd in (self.master, self._slave, self.upstream):
            with contextlib.suppress(OSError):
                os.close(fd)

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self._halt.is_set():
                self._step()
        except Exception as exc:  # reported as a failure of the run, never silent
            self.error = f"{type(exc).__name__}: {exc}"

    def _step(self) -> None:
        if self._reconnect.is_set():
            with contextlib.suppress(OSError):
                os.close(self.upstream)
            self.upstream = self._open_upstream()
            with self._lock:
                self._to_device.clear()
            self.stats["upstream_reopens"] += 1
            self._reconnect.clear()
            self._reconnected.set()
        with self._lock:
            self._drain_injections()
            if self._held is not None and time.monotonic() >= self._held[1]:
                self._to_device += self._held[0]
                self._held = None
                self.stats["released_on_timer"] += 1
            writers = [fd for fd, buf in ((self.upstream, self._to_device), (self.master, self._to_host)) if buf]
        readable, writable, _ = select.select([self.master, self.upstream], writers, [], 0.02)
        if self.master in readable:
            self._from_host()
        if self.upstream in readable:
            self._from_device()
        with self._lock:
            for fd in writable:
                buf = self._to_device if fd == self.upstream else self._to_host
                try:
                    del buf[: os.write(fd, buf)]
                except BlockingIOError:
                    pass

    def _drain_injections(self) -> None:
        while self._inject:
            data, done = self._inject.popleft()
            self._to_device += data
            self.stats["injected_frames"] += 1
            if done is not None:
                done.set()

    def _read(self, fd: int) -> bytes:
        try:
            return os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:  # EIO while a side has no opener: nothing to move
            return b""

    def _from_host(self) -> None:
        data = self._read(self.master)
        if not data:
            return
        self.stats["h2d_chunks"] += 1
        self.stats["h2d_bytes"] += len(data)
        for item in self._h2d.feed(data):
            if item.authenticated and not item.flags & FLAG_FROM_DEVICE:
                with self._lock:
                    self._captured.append(item)
        mangled, done = self.noise.mangle(data)
        if done:
            self.stats["h2d_chunks_corrupted"] += 1
            self.stats.update({f"h2d_bytes_{k}": v for k, v in done.items()})
        now = time.monotonic()
        with self._lock:
            out = mangled * 2 if self.noise.enabled and self.noise.rng.random() < self.noise.dup else mangled
            if len(out) > len(mangled):
                self.stats["h2d_chunks_duplicated"] += 1
            if self._held is not None:  # the chunk after a held one goes first: the two swap places
                out += self._held[0]
                self._held = None
                self.stats["h2d_chunks_reordered"] += 1
            elif self.noise.enabled and not self._no_hold and now >= self._next_hold:
                self._held = (out, now + self.hold_max_s)
                self._next_hold = now + self.noise.reorder_every_s
                self.stats["h2d_chunks_held"] += 1
                return
            self._queue(self._to_device, out, "h2d_bytes_lost")

    def _from_device(self) -> None:
        data = self._read(self.upstream)
        if not data:
            return
        self.stats["d2h_bytes"] += len(data)
        for frame in self._d2h.feed(data):
            self._observe(frame)
        with self._lock:
            self._queue(self._to_host, data, "d2h_bytes_lost")

    def _queue(self, buf: bytearray, data: bytes, lost: str) -> None:
        room = MAX_PENDING - len(buf)
        buf += data[: max(0, room)]
        if len(data) > room:
            self.stats[lost] += len(data) - max(0, room)

    def _observe(self, frame: Frame) -> None:
        """Count the device's CRC hints; during a burst, note its answer to every injected command id."""
        if frame.msg_type == MsgType.ERROR_REPLY and not frame.authenticated and frame.command_id == 0:
            code = _error_code(frame)
            self.stats["device_crc_hints" if code == ErrorCode.CRC else "device_other_hints"] += 1
            return
        with self._lock:
            watch = self._watch
            if watch is None or frame.flags & FLAG_PUSH or frame.command_id not in watch.ids:
                return
            if frame.authenticated:
                # A tagged answer means the frame passed authentication: whatever the reply, it was accepted.
                try:
                    name = MsgType(frame.msg_type).name
                except ValueError:
                    name = f"type 0x{frame.msg_type:02x}"
                watch.accepted.append(f"command 0x{frame.command_id:08x} answered with tagged {name}")
            elif frame.msg_type == MsgType.ERROR_REPLY:
                code = _error_code(frame)
                watch.refusals[code.name if isinstance(code, ErrorCode) else str(code)] += 1


def _error_code(frame: Frame) -> ErrorCode | int:
    try:
        reply = decode_payload(frame.msg_type, frame.payload)
    except ProtocolError:
        return -1
    return reply.code if isinstance(reply, ErrorReply) else -1
