"""Soak and fault injection (SECURITY.md R24): a gateway polls through a noisy, dropping link for hours.

``implant-mock`` runs as a subprocess serving an SCS and a pump, each on its own pty, with a
scenario this script writes: line noise on what the device sends (bit flips, dropped and
duplicated bytes, delays that reorder) for the whole run and a disconnect every
``--disconnect-every`` seconds (600 by default, the first at half that). Between each device's
pty and the gateway sits a relay thread with a pty pair of its own; it is the manipulator of the
host-to-device direction (pymodbus NullModem style): bit flips at a bit error rate, dropped and
inserted bytes, duplicated chunks and, periodically, a chunk held back and sent after the next
one. The relay also keeps the clean frames the host sent, for replay bursts, and decodes what
the device answers, so it can tell whether an injected frame was ever accepted.

A gateway thread per device drives a ``DeviceClient`` through the relay the way a monitoring
gateway does: status polls, event-log reads by sequence number, now and then therapy on/off and
an alarm acknowledge, a back-off after a timeout and a reconnect (port and session) after several,
waiting out a session-opening lockout. Between its own requests it fires, straight at the
emulator's port (behind the manipulator), replay bursts (captured authenticated frames sent again
verbatim) and forgery bursts (valid CRC with a wrong tag, captured frames with a tampered payload
or counter and a recomputed CRC, untagged and wrong-session commands), all built with the
project's own framing. It then reads the state back and compares it with what it commanded, and
at the end reads the device's event log through: the therapy changes must be exactly its own,
no other programming event may appear, and AUTH_FAILURE entries must account for every frame
forged under the session.

Every ``--sample-every`` seconds the emulator's RSS, open descriptors and threads (``/proc``) and
the clients' counters are sampled. At the end the script prints the samples, the figures and a
verdict per R24 criterion, and exits 0 only when all pass. Run: ``python bench/soak.py --minutes
60`` (nightly; releases run ``--minutes 480``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import os
import random
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

from protocols.auth import load_pairing_key
from protocols.client import DeviceClient
from protocols.codec import decode_payload, encode_payload
from protocols.errors import DeviceRejected, ErrorCode, LinkError, LinkTimeout, ProtocolError
from protocols.framing import FLAG_AUTH, FLAG_FROM_DEVICE, FLAG_PUSH, TAG_SIZE, Frame, FrameDecoder, encode_frame
from protocols.messages import (
    AlarmState,
    Area,
    Bolus,
    BolusKind,
    ClockSet,
    DosingMode,
    DosingSet,
    ErrorReply,
    EventCode,
    Message,
    MsgType,
    PumpStatus,
    ScsStatus,
    StimProgramSet,
    TherapySet,
    Waveform,
)
from protocols.transport import open_port

START_ISO = "2026-01-01T00:00:00Z"
START_MS = int(dt.datetime.fromisoformat(START_ISO.replace("Z", "+00:00")).timestamp() * 1000)
DAY_MS = 86_400_000
_DEVICE_LINE = re.compile(r"^(?P<name>\S+): (?P<kind>\w+) serial=(?P<serial>\S+) port=(?P<port>\S+).* key=(?P<key>\S+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
RSS_GROWTH_LIMIT = 0.10
READ_SIZE = 4096
PORT_READ_TIMEOUT_S = 0.05  # open_port's default: each wait of the client's read loop
MAX_PENDING = 65536  # bytes a relay queues towards a side that does not read; beyond it they are lost, as on a line

# The one program the gateway stores on the SCS (program 1): 3.5 mA tonic, as the demo scenario.
LEGIT_AREAS = (Area(0x1, 0x6, 3500, 300, 50, Waveform.TONIC, 0, 0, 0, 0),)
LEGIT_PROGRAM = StimProgramSet(1, True, LEGIT_AREAS, 6000, 2)
THERAPY_CODES = {
    "scs": (EventCode.THERAPY_ON, EventCode.THERAPY_OFF),
    "pump": (EventCode.PUMP_STARTED, EventCode.PUMP_STOPPED),
}
# Entries only programming makes; after the baseline the gateway sends none of these commands,
# so any of them in the log is a forged or replayed command that was applied.
FORBIDDEN_CODES = frozenset(
    {
        EventCode.PROGRAM_CHANGED,
        EventCode.CLOCK_SET,
        EventCode.DOSING_CHANGED,
        EventCode.BOLUS_STARTED,
        EventCode.REFILL,
        EventCode.REFILL_DISCREPANCY,
    }
)
# Refusals after which a mutating command certainly was not applied (SPEC 4: an ErrorReply means
# nothing changed, DEVICE_FAULT excepted). After any other failure the outcome is unknown.
NOT_APPLIED = frozenset(
    {ErrorCode.STATE_CONFLICT, ErrorCode.OUT_OF_RANGE, ErrorCode.UNSUPPORTED, ErrorCode.MALFORMED, ErrorCode.BUSY}
)
_T = TypeVar("_T")


# --- the emulator subprocess ---------------------------------------------------------------------
class Emulator:
    """``implant-mock`` as a subprocess: started, its device lines parsed, stopped with SIGTERM then SIGKILL."""

    def __init__(self, command: list[str], timeout_s: float = 30.0) -> None:
        self.command = command
        self.lines: list[str] = []
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        self.stderr_text = ""
        self.exit_code: int | None = None
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        self.devices = [m.groupdict() for line in self.lines if (m := _DEVICE_LINE.match(line))]

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        pending = b""
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, READ_SIZE)
            if not chunk:
                break
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                line = raw.decode(errors="replace")
                self.lines.append(line)
                if line.startswith("implant-mock:") and "device(s)" in line:
                    return
        self.proc.poll()
        raise RuntimeError(
            f"implant-mock was not ready within {timeout_s:g} s (exit code {self.proc.returncode}); "
            f"stdout {self.lines}; stderr {self.read_stderr()!r}"
        )

    def read_stderr(self) -> str:
        """What the process wrote to stderr so far (all of it once stopped)."""
        if self._stderr.closed:
            return self.stderr_text
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not end in time. Returns the exit code (-9 when killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            # The rest of stdout: a clean stop prints "stopped, state saved".
            self.lines += self.proc.stdout.read().decode(errors="replace").splitlines()
            self.proc.stdout.close()
        if not self._stderr.closed:
            self.stderr_text = self.read_stderr()
            self._stderr.close()
        self.exit_code = self.proc.returncode
        return self.proc.returncode


@dataclass(frozen=True)
class ProcSample:
    """One reading of a process from ``/proc``: resident memory, descriptors, threads, CPU."""

    rss_kib: int
    fds: int
    threads: int
    cpu_s: float


def read_proc(pid: int) -> ProcSample | None:
    """RSS (VmRSS), open descriptors, threads and CPU seconds of ``pid``; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = int(values.get("VmRSS", "0 kB").split()[0])
    threads = int(values.get("Threads", "0").strip())
    ticks = stat.rpartition(")")[2].split()
    cpu = (int(ticks[11]) + int(ticks[12])) / _CLK_TCK  # utime, stime (fields 14 and 15 of proc(5))
    return ProcSample(rss, fds, threads, cpu)


# --- the scenario --------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceNoise:
    """``implant-mock`` line noise on what the device sends (rates per byte)."""

    flip: float
    drop: float
    dup: float
    delay: float
    delay_ms: float

    @classmethod
    def parse(cls, text: str) -> DeviceNoise:
        """``flip=R,drop=R,dup=R,delay=R,delay_ms=MS`` (the syntax of ``implant-mock --noise``)."""
        values = {"flip": 0.0, "drop": 0.0, "dup": 0.0, "delay": 0.0, "delay_ms": 0.0}
        for item in filter(None, text.split(",")):
            key, _, value = item.partition("=")
            if key not in values:
                raise argparse.ArgumentTypeError(f"unknown device noise {key!r}; known: {', '.join(values)}")
            values[key] = float(value)
        return cls(**values)

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"flip {self.flip:g}/byte (BER {self.flip / 8:.1e}), drop {self.drop:g}, dup {self.dup:g}, "
            f"delay {self.delay:g} x {self.delay_ms:g} ms"
        )


def disconnect_starts(run_s: float, every_s: float, for_s: float) -> list[float]:
    """Disconnect start times (s from the start): at half a period, then every period, all ending within the run."""
    starts = []
    at = every_s / 2
    while at + for_s <= run_s - 1.0:
        starts.append(at)
        at += every_s
    return starts


def write_scenario(path: Path, run_s: float, noise: DeviceNoise, disconnects: list[float], for_s: float) -> None:
    """The emulator's timeline in device time (speed 1: wall seconds): noise for the run, then the disconnects."""
    lines = [
        "# Written by bench/soak.py: line noise for the whole run, and periodic disconnects.",
        "[scenario]",
        'name = "soak"',
        "speed = 1",
        "",
        "[[event]]",
        'at = "0s"',
        'action = "line_noise"',
        f"flip_rate = {noise.flip!r}",
        f"drop_rate = {noise.drop!r}",
        f"duplicate_rate = {noise.dup!r}",
        f"delay_rate = {noise.delay!r}",
        f"delay_ms = {noise.delay_ms!r}",
        f'duration = "{run_s:.3f}s"',  # the end-of-run checks then see a clean line
    ]
    for at in disconnects:
        lines += ["", "[[event]]", f'at = "{at:.3f}s"', 'action = "disconnect"', f'duration = "{for_s:.3f}s"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


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


# --- the gateway ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    """A client call's result or the protocol error it raised."""

    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """True when the call returned."""
        return self.error is None


class Gateway(threading.Thread):
    """Drives one device through its relay like a telemetry gateway, and attacks it between requests."""

    def __init__(self, index: int, device: dict[str, str], relay: Relay, args: argparse.Namespace) -> None:
        super().__init__(name=f"gateway-{device['name']}", daemon=True)
        self.name_ = device["name"]
        self.kind = device["kind"].lower()
        self.relay = relay
        self.key = load_pairing_key(device["key"])
        self.args = args
        self.rng = random.Random(args.seed * 1000 + index)
        self.client: DeviceClient | None = None
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.busy_since: float | None = None
        self.error: str | None = None
        # Counters: the client's (summed over reconnects) and the gateway's own.
        self.base: Counter[str] = Counter()
        self.count: Counter[str] = Counter()
        self._counters_lock = threading.Lock()  # a sample must not see a closed client's counters twice or never
        self.max_call_s = 0.0
        self.violations: list[str] = []
        self.unexpected: list[str] = []
        self.notes: list[str] = []
        self.refusals: Counter[str] = Counter()
        self.events: Counter[EventCode] = Counter()
        self.lockouts_logged = 0
        # What the gateway knows of the device.
        self.baseline_seq = 0
        self.cursor = 1
        self.known_last_seq = 0
        self.expected_on: bool | None = None
        self.unresolved_from: bool | None = None  # the therapy state before a toggle whose outcome is unknown
        self.verified = False
        self.baseline_pump: PumpStatus | None = None
        self.last_status: ScsStatus | PumpStatus | None = None
        self.last_status_at = 0.0
        self.fail_streak = 0
        self.answered_at_end = False
        self._burst_kind = 1  # forgery first: even a short run sees every forgery kind

    # --- counters --------------------------------------------------------------------------------
    def counters(self) -> Counter[str]:
        """The client's link and request counters over every connection so far, plus the gateway's."""
        with self._counters_lock:
            total = Counter(self.base)
            client = self.client
            if client is not None:
                total.update(_client_counters(client))
        total.update(self.count)
        return total

    def call_bound_s(self) -> float:
        """The longest a single client call may take: every attempt of the request and of a session re-open."""
        attempt = self.args.timeout + PORT_READ_TIMEOUT_S
        # request + SessionOpen + SessionConfirm + the repeated request, each with its retries.
        return 4 * (self.args.retries + 1) * attempt + 1.0

    # --- one call, with the gateway's error policy -----------------------------------------------
    def _call(self, what: str, fn: Callable[[DeviceClient], _T]) -> Outcome:
        client = self.client
        if client is None:
            return Outcome(error=LinkError("not connected"))  # the caller connects first; no policy to apply
        start = time.monotonic()
        self.busy_since = start
        try:
            value = fn(client)
        except DeviceRejected as exc:
            self.refusals[exc.code.name] += 1
            outcome = Outcome(error=exc)
        except (LinkTimeout, LinkError) as exc:
            outcome = Outcome(error=exc)
        except ProtocolError as exc:  # e.g. a reply of the wrong type: legal to meet, worth seeing
            self.count["protocol_errors"] += 1
            if len(self.notes) < 5:
                self.notes.append(f"{what}: {type(exc).__name__}: {exc}")
            outcome = Outcome(error=exc)
        except (OSError, ValueError, AssertionError) as exc:  # outside the protocol's error tree: a client bug
            self.unexpected.append(f"{what}: {type(exc).__name__}: {exc}")
            outcome = Outcome(error=exc)
        else:
            outcome = Outcome(value=value)
        finally:
            elapsed = time.monotonic() - start
            self.busy_since = None
            self.max_call_s = max(self.max_call_s, elapsed)
        self._after(outcome)
        return outcome

    def _after(self, outcome: Outcome) -> None:
        exc = outcome.error
        if exc is None:
            self.fail_streak = 0
            return
        if isinstance(exc, DeviceRejected):
            if exc.code == ErrorCode.LOCKED_OUT:
                # Session opening is locked out after forged frames: wait as the device says (R10).
                self.count["lockout_waits"] += 1
                self._sleep(min(max(exc.retry_after_ms / 1000.0, 0.5), 65.0))
            return
        if isinstance(exc, LinkTimeout):
            self.fail_streak += 1
            if self.fail_streak >= self.args.reconnect_after:
                self._reconnect()
            else:
                self._sleep(min(0.25 * 2 ** (self.fail_streak - 1), 4.0))
            return
        self.fail_streak += 1
        self._reconnect()

    def _sleep(self, seconds: float) -> None:
        self.stop_event.wait(seconds)

    # --- connection ------------------------------------------------------------------------------
    def _connect(self) -> bool:
        """Open the port, identify, open a session; False (after a back-off) when it did not work."""
        try:
            port = open_port(self.relay.path, baudrate=115200, timeout=PORT_READ_TIMEOUT_S)
        except LinkError as exc:
            self.unexpected.append(f"open port: {exc}")
            self._sleep(1.0)
            return False
        self.client = DeviceClient(port, self.key, timeout=self.args.timeout, retries=self.args.retries, owns_port=True)
        self.count["connects"] += 1
        if self._call("identify", lambda c: c.identify()).ok and self._call("open", lambda c: c.open_session()).ok:
            return True
        return False

    def _reconnect(self) -> None:
        """Close the client and the relay's side of the emulator's pty; connect again after a back-off."""
        self._close_client()
        self.count["reconnects"] += 1
        if not self.relay.reconnect_upstream():
            self.unexpected.append("relay did not reopen the emulator's pty")
        self._sleep(min(0.5 * 2 ** max(0, self.fail_streak - self.args.reconnect_after), 8.0))

    def _close_client(self) -> None:
        client = self.client
        if client is None:
            return
        try:
            client.close()  # a best-effort SessionClose, then the port
        except (ProtocolError, OSError) as exc:
            self.unexpected.append(f"close: {type(exc).__name__}: {exc}")
        with self._counters_lock:
            self.base.update(_client_counters(client))
            self.client = None

    # --- state checks ----------------------------------------------------------------------------
    def _violation(self, text: str) -> None:
        self.count["violations"] += 1
        if len(self.violations) < 50:
            self.violations.append(f"t={time.monotonic() - self.args.t0:.1f}s {text}")

    def _status(self, what: str = "status") -> ScsStatus | PumpStatus | None:
        outcome = self._call(what, lambda c: c.status())
        if not outcome.ok:
            self.count["polls_failed"] += 1
            return None
        status = outcome.value
        self.count["polls_ok"] += 1
        self.last_status, self.last_status_at = status, time.monotonic()
        self.known_last_seq = max(self.known_last_seq, status.last_event_seq)
        if self.client is not None:  # pushes are a fast path only; the event log is read by number
            self.count["pushes"] += len(self.client.pushes)
            self.client.pushes.clear()
        self._check(status)
        return status

    def _therapy_of(self, status: ScsStatus | PumpStatus) -> bool:
        # A pump with therapy off reports mode STOPPED (its programmed mode, continuous here, otherwise).
        return status.therapy_on if isinstance(status, ScsStatus) else status.mode is not DosingMode.STOPPED

    def _check(self, status: ScsStatus | PumpStatus) -> None:
        """Compare a status with what the gateway commanded; resolve a toggle whose outcome was unknown."""
        on = self._therapy_of(status)
        if self.expected_on is None:
            # The first read, or a toggle whose outcome was unknown: this read-back settles it.
            if self.unresolved_from is not None and on != self.unresolved_from:
                self.count["transitions"] += 1
            self.unresolved_from = None
            self.expected_on = on
        elif on != self.expected_on:
            self._violation(f"therapy {'on' if on else 'off'}, commanded {'on' if self.expected_on else 'off'}")
            self.expected_on = on
        elapsed_ms = (time.monotonic() - self.args.emulator_t0) * 1000.0
        if abs(status.time_ms - START_MS - elapsed_ms) > 30_000:
            self._violation(
                f"device clock at +{(status.time_ms - START_MS) / 1000:.0f} s, wall +{elapsed_ms / 1000:.0f} s"
            )
        if isinstance(status, ScsStatus) and self.baseline_seq:
            if (status.active_program, status.areas, status.patient_amp_max_ua) != (1, LEGIT_AREAS, 6000):
                self._violation(f"stimulation program changed: {status.active_program} {status.areas}")
        if isinstance(status, PumpStatus) and self.baseline_pump is not None:
            self._check_pump(status, self.baseline_pump)
        self.verified = True

    def _check_pump(self, status: PumpStatus, base: PumpStatus) -> None:
        """The pump's programming as set up; a stopped pump reports mode STOPPED, rate and doses 0."""
        drugs = [(d.drug, d.conc_ng_per_ml) for d in status.drugs]
        kept = (status.patient_bolus, status.alarm_volume_ul, drugs)
        if kept != (base.patient_bolus, base.alarm_volume_ul, [(d.drug, d.conc_ng_per_ml) for d in base.drugs]):
            self._violation(f"pump settings changed: {kept}")
        running = (status.mode, status.rate_ul_per_day, status.drugs)
        if status.mode is not DosingMode.STOPPED and running != (base.mode, base.rate_ul_per_day, base.drugs):
            self._violation(f"pump dosing changed: {running}")
        if status.mode is DosingMode.STOPPED and status.rate_ul_per_day != 0:
            self._violation(f"stopped pump reports {status.rate_ul_per_day} µL/day")
        if status.bolus_active or status.patient_boluses_today:
            self._violation(f"a bolus the gateway never gave: active {status.bolus_active}")

    # --- set-up ----------------------------------------------------------------------------------
    def _prepare(self) -> bool:
        """Connect, store the SCS program, and take the event-log baseline the audit starts after."""
        if self.client is None and not self._connect():
            return False
        status = self._status("setup status")
        if status is None:
            return False
        if isinstance(status, ScsStatus) and (status.active_program, status.areas) != (1, LEGIT_AREAS):
            self._call("setup program", lambda c: c.request(LEGIT_PROGRAM))
            return False  # read back on the next pass: the outcome may be unknown
        if isinstance(status, PumpStatus):
            self.baseline_pump = status
        self.baseline_seq = status.last_event_seq
        self.cursor = self.baseline_seq + 1
        self.expected_on = self._therapy_of(status)
        return True

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.stop_event.is_set() and not self._prepare():
                self.stop_event.wait(0.2)
            self.ready.set()
            start = time.monotonic()
            next_toggle = start + self.args.toggle_every * (0.5 + 0.5 * self.rng.random())
            next_ack = start + self.args.ack_every * self.rng.random()
            next_burst = start + self.args.burst_every * (0.5 + 0.5 * self.rng.random())
            while not self.stop_event.is_set():
                now = time.monotonic()
                if self.client is None:
                    if not self._connect():
                        continue
                session = self.client.session if self.client is not None else None
                if session is not None and now - session.opened_at > self.client.session_limits[1] - 30.0:
                    # Re-open before the absolute limit (SPEC 3.6) rather than meet NO_SESSION.
                    self.count["session_renewals"] += 1
                    self._call("renew session", lambda c: c.open_session())
                elif now >= next_burst and self._burst_possible(now):
                    # One that could not start (no first-try read-back) is tried again shortly.
                    next_burst = time.monotonic() + (self.args.burst_every if self._burst() else 0.2)
                elif now >= next_toggle and self.expected_on is not None and self.verified:
                    self._toggle()
                    next_toggle = time.monotonic() + self.args.toggle_every
                elif now >= next_ack:
                    self._ack()
                    next_ack = time.monotonic() + self.args.ack_every
                elif self.cursor <= self.known_last_seq:
                    self._read_page()
                else:
                    self._status()
                self.stop_event.wait(self.args.poll_gap)
        except Exception as exc:  # the gateway must report, not vanish
            self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    def _read_page(self) -> bool:
        outcome = self._call("events", lambda c: c.read_events(self.cursor, 8))
        if not outcome.ok:
            self.count["pages_failed"] += 1
            return False
        page = outcome.value
        self.count["pages_ok"] += 1
        self.known_last_seq = max(self.known_last_seq, page.last_seq)
        if page.last_seq < self.cursor - 1:
            self._violation(f"event log restarted: newest #{page.last_seq}, read up to #{self.cursor - 1}")
            self.cursor = page.last_seq + 1
            return True
        if not page.entries:
            if page.last_seq >= self.cursor:
                self._violation(f"event log lost #{self.cursor}..#{page.last_seq}")
                self.cursor = page.last_seq + 1
            return True
        for event in page.entries:
            if event.seq != self.cursor:
                self._violation(f"event log gap: #{self.cursor} expected, #{event.seq} read")
            self.cursor = event.seq + 1
            self.events[event.code] += 1
            if event.code in FORBIDDEN_CODES:
                self._violation(f"event #{event.seq} {event.code.name}: programming the gateway never sent")
            if event.code == EventCode.LOCKOUT and event.state in (AlarmState.NONE, AlarmState.ACTIVE):
                self.lockouts_logged += 1
        return True

    def _toggle(self) -> None:
        """Therapy on/off: a harmless mutating command whose effect the read-back and the log must show."""
        target = not self.expected_on
        outcome = self._call("therapy", lambda c: c.set_therapy(target))
        self.count["toggles"] += 1
        if outcome.ok:
            if outcome.value.event_seq == 0:
                self._violation(f"therapy {'on' if target else 'off'} was already in force: something else set it")
            self.count["transitions"] += 1
            self.expected_on = target
            return
        exc = outcome.error
        if isinstance(exc, DeviceRejected) and exc.code in NOT_APPLIED:
            self.count["toggles_refused"] += 1
            return
        # Unknown: the reply was lost or an error answered a repeat. The next read-back settles it.
        self.count["toggles_unknown"] += 1
        self.unresolved_from, self.expected_on = self.expected_on, None
        status = None
        while status is None and not self.stop_event.is_set() and self.client is not None:
            status = self._status("therapy read-back")

    def _ack(self) -> None:
        """Acknowledge a listed alarm; with none listed, an acknowledge the device must refuse (harmless)."""
        status = self.last_status
        active = [a.code for a in status.alarms if a.state == AlarmState.ACTIVE] if status else []
        code = active[0] if active else EventCode.OCCLUSION if self.kind == "pump" else EventCode.LEAD_SHORT
        outcome = self._call("ack", lambda c: c.ack_alarm(code))
        self.count["acks_ok" if outcome.ok else "acks_refused"] += 1

    # --- bursts ----------------------------------------------------------------------------------
    def _device_elapsed_s(self, now: float) -> float:
        assert self.last_status is not None
        return (self.last_status.time_ms - START_MS) / 1000.0 + (now - self.last_status_at)

    def _burst_possible(self, now: float) -> bool:
        """A burst needs a session, a known therapy state and no disconnect close by (``_burst`` reads back first)."""
        client = self.client
        if client is None or client.session is None or self.expected_on is None or self.last_status is None:
            return False
        if now - client.session.opened_at > client.session_limits[1] - 30.0:
            return False  # the session is about to reach its absolute limit: the gateway re-opens it first
        elapsed = self._device_elapsed_s(now)
        margin = 1.0  # the device clock is read from the last status: good to milliseconds
        for start in self.args.disconnects:
            if start - margin <= elapsed <= start + self.args.disconnect_for + margin:
                self.count["bursts_postponed_disconnect"] += 1
                return False
        return True

    def _burst(self) -> bool:
        """A replay or forgery burst between two read-backs; checks that nothing was accepted. False: not fired."""
        client = self.client
        assert client is not None
        requests, retries = client.stats.requests, client.stats.retries
        if self._status("pre-burst read-back") is None or self.client is not client or client.session is None:
            return False
        if (client.stats.requests, client.stats.retries) != (requests + 1, retries):
            # Only a read-back answered at its first try proves the device took the newest frame the
            # gateway sent; otherwise a lost later try, replayed, would be new to it and rightly taken.
            self.count["bursts_postponed_retry"] += 1
            return False
        before_at = time.monotonic()
        kind = ("replay", "forgery")[self._burst_kind]
        self._burst_kind ^= 1
        self.relay.begin_burst()
        # Late replies of the gateway's own last request (the device's delay noise) must land first.
        self._sleep(0.1 + self.args.device_noise.delay_ms / 1000.0)
        frames = self._replays() if kind == "replay" else self._forgeries()
        if not frames:
            self.relay.end_burst()
            return True  # nothing captured to replay yet: the next burst forges
        ids = {cid for _, cid, _ in frames}
        written = self.relay.inject([data for data, _, _ in frames], ids)
        self._sleep(0.3)  # the device answers in milliseconds; then the window closes
        watch = self.relay.end_burst()
        if not written:
            self.unexpected.append(f"{kind} burst not written by the relay")
            return True
        categories = Counter(cat for _, _, cat in frames)
        self.count[f"{kind}_bursts"] += 1
        self.count.update({f"sent_{cat}": n for cat, n in categories.items()})
        self.count["accepted_injected"] += len(watch.accepted)
        for text in watch.accepted:
            self._violation(f"{kind} burst: {text}")
        self.refusals.update({f"burst_{code}": n for code, n in watch.refusals.items()})
        # A read-back soon after: the link was up during the burst unless a whole disconnect fits in between.
        self.verified = False
        after = None
        while after is None and not self.stop_event.is_set() and self.client is not None:
            after = self._status("post-burst read-back")
        confirmed = after is not None and time.monotonic() - before_at < self.args.disconnect_for
        if confirmed:
            self.count["mac_forged_confirmed"] += categories.get("mac", 0)
        return True

    def _fresh_id(self) -> int:
        return self.rng.randrange(1, 1 << 32)

    def _replays(self) -> list[tuple[bytes, int, str]]:
        """Captured frames sent again as they were: the current session's and older sessions'."""
        client = self.client
        assert client is not None and client.session is not None
        session_id = client.session.session_id
        captured = self.relay.captured()
        current = [f for f in captured if f.session_id == session_id]
        older = [f for f in captured if f.session_id != session_id]
        picks: list[Frame] = []
        # Above all the therapy command that would undo the state in force, if it was captured.
        opposite = [f for f in current + older if _therapy_value(f) is (not self.expected_on)]
        picks += opposite[-2:]
        picks += self.rng.sample(current, min(4, len(current)))
        picks += self.rng.sample(older, min(2, len(older)))
        return [(encode_frame(f), f.command_id, "replay") for f in picks[: self.args.burst_frames]]

    def _forgeries(self) -> list[tuple[bytes, int, str]]:
        """Frames the key never signed: wrong tags, tampered payloads and counters re-CRC'd, no tag, no session."""
        client = self.client
        assert client is not None and client.session is not None and self.last_status is not None
        session = client.session
        counter = session.tx_counter + 1000  # fresh counters: only the tag stands in the way
        opposite = not self.expected_on
        out: list[tuple[bytes, int, str]] = []

        def tagged(message: Message, category: str = "mac", session_id: int = session.session_id) -> None:
            nonlocal counter
            counter += 1
            cid = self._fresh_id()
            tag = self.rng.randbytes(TAG_SIZE)
            frame = Frame(message.TYPE, FLAG_AUTH, session_id, counter, cid, encode_payload(message), tag)
            out.append((encode_frame(frame), cid, category))

        tagged(TherapySet(opposite))
        tagged(ClockSet(self.last_status.time_ms + 365 * DAY_MS))
        if self.kind == "scs":
            stronger = dataclasses.replace(LEGIT_AREAS[0], amplitude_ua=LEGIT_AREAS[0].amplitude_ua + 1500)
            tagged(StimProgramSet(1, True, (stronger,), 8000, 0))
        else:
            base = self.baseline_pump
            assert base is not None
            tagged(DosingSet(DosingMode.CONTINUOUS, base.rate_ul_per_day * 2, (), base.patient_bolus, 1000))
            tagged(Bolus(BolusKind.CLINICIAN, 200, 10))
        # Captured frames of this session, tampered and sent with their old tag and a new CRC.
        current = [f for f in self.relay.captured() if f.session_id == session.session_id and f.payload]
        for frame in current[-2:]:
            counter += 1
            payload = bytearray(frame.payload)
            if _therapy_value(frame) is not None:
                payload[0] = int(opposite)  # the attack that matters: the therapy the patient is not on
            else:
                payload[self.rng.randrange(len(payload))] ^= 1 << self.rng.randrange(8)
            cid = self._fresh_id()
            tampered = dataclasses.replace(
                frame, payload=bytes(payload), command_id=cid, counter=counter, raw_signed=b""
            )
            out.append((encode_frame(tampered), cid, "mac"))
        if current:  # a captured frame under a fresh counter, its tag kept
            counter += 1
            cid = self._fresh_id()
            bumped = dataclasses.replace(current[-1], counter=counter, command_id=cid, raw_signed=b"")
            out.append((encode_frame(bumped), cid, "mac"))
        # Without a tag (a downgrade) and under a session that does not exist: refused before any MAC.
        cid = self._fresh_id()
        out.append(
            (encode_frame(Frame(TherapySet.TYPE, 0, 0, 0, cid, encode_payload(TherapySet(opposite)))), cid, "nosession")
        )
        tagged(TherapySet(opposite), "nosession", session_id=(session.session_id ^ 0x5A5A5A5A) or 1)
        return out[: max(self.args.burst_frames, 1)]

    # --- the end ---------------------------------------------------------------------------------
    def finish(self, deadline: float) -> None:
        """After the run (noise over): read the state back, read the log through, identify. Call after ``join``."""
        while time.monotonic() < deadline:
            if self.client is None and not self._connect():
                continue
            if self._status("final read-back") is None:
                continue
            while self.cursor <= self.known_last_seq and time.monotonic() < deadline:
                self._read_page()
            if self.cursor > self.known_last_seq:
                break
        if self.client is not None and self._call("final identify", lambda c: c.identify()).ok:
            self.answered_at_end = self.cursor > self.known_last_seq and self.verified

    def close(self) -> None:
        """Close the client (and its port)."""
        self._close_client()

    def audit(self) -> dict[str, Any]:
        """The event-log audit: therapy entries against the gateway's changes, AUTH_FAILURE against forgeries."""
        on, off = THERAPY_CODES[self.kind]
        return {
            "therapy_logged": self.events[on] + self.events[off],
            "transitions": self.count["transitions"],
            "auth_failures": self.events[EventCode.AUTH_FAILURE],
            "mac_sent": self.count["sent_mac"],
            "mac_confirmed": self.count["mac_forged_confirmed"],
            "lockouts": self.lockouts_logged,
            "entries": (self.baseline_seq, self.cursor - 1),
            "forbidden": sum(self.events[c] for c in FORBIDDEN_CODES),
        }


def _therapy_value(frame: Frame) -> bool | None:
    """``on`` of a captured TherapySet frame, else None."""
    if frame.msg_type != TherapySet.TYPE:
        return None
    try:
        message = decode_payload(frame.msg_type, frame.payload)
    except ProtocolError:
        return None
    return bool(message.on) if isinstance(message, TherapySet) else None


def _client_counters(client: DeviceClient) -> Counter[str]:
    stats = client.stats
    counters = Counter(client.link_stats.as_dict())
    counters.update(
        requests=stats.requests,
        retries=stats.retries,
        timeouts=stats.timeouts,
        rejected=stats.rejected,
        reopened=stats.reopened,
    )
    return counters


# --- samples and verdicts ------------------------------------------------------------------------
@dataclass
class Sample:
    """One row of the table: time, the emulator's process figures, the clients' counters summed."""

    t_s: float
    proc: ProcSample
    counters: Counter[str]


TABLE = (
    ("t s", lambda s: f"{s.t_s:.0f}"),
    ("RSS KiB", lambda s: f"{s.proc.rss_kib:,}"),
    ("fds", lambda s: str(s.proc.fds)),
    ("thr", lambda s: str(s.proc.threads)),
    ("CPU s", lambda s: f"{s.proc.cpu_s:.1f}"),
    ("polls", lambda s: f"{s.counters['polls_ok']:,}"),
    ("frames ok", lambda s: f"{s.counters['frames_ok']:,}"),
    ("CRC", lambda s: f"{s.counters['crc_errors']:,}"),
    ("malf", lambda s: f"{s.counters['malformed'] + s.counters['oversize']:,}"),
    ("MAC", lambda s: f"{s.counters['mac_errors']:,}"),
    ("replay", lambda s: f"{s.counters['replays']:,}"),
    ("timeouts", lambda s: f"{s.counters['timeouts']:,}"),
    ("retries", lambda s: f"{s.counters['retries']:,}"),
    ("reconn", lambda s: f"{s.counters['reconnects']:,}"),
    ("injected", lambda s: f"{s.counters['injected']:,}"),
)


def print_table(samples: list[Sample], max_rows: int) -> None:
    """The samples as a table, thinned evenly to ``max_rows`` (first and last kept)."""
    rows = samples
    if len(rows) > max_rows:
        step = (len(rows) - 1) / (max_rows - 1)
        rows = [samples[round(i * step)] for i in range(max_rows)]
    cells = [[head for head, _ in TABLE]] + [[fmt(s) for _, fmt in TABLE] for s in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE))]
    for row in cells:
        print("  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    if len(rows) < len(samples):
        print(f"  ({len(rows)} of {len(samples)} samples shown; --csv writes them all)")


def write_csv(path: Path, samples: list[Sample]) -> None:
    """Every sample, one line each."""
    keys = sorted({k for s in samples for k in s.counters})
    head = ["t_s", "rss_kib", "fds", "threads", "cpu_s", *keys]
    lines = [",".join(head)]
    for s in samples:
        values = [f"{s.t_s:.1f}", str(s.proc.rss_kib), str(s.proc.fds), str(s.proc.threads), f"{s.proc.cpu_s:.2f}"]
        lines.append(",".join(values + [str(s.counters[k]) for k in keys]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class Verdict:
    """One R24 criterion: its name, whether it passed, and the figures behind it."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        """``verdict <name>: PASS|FAIL (<detail>)``."""
        return f"verdict {self.name}: {'PASS' if self.passed else 'FAIL'} ({self.detail})"


def resource_verdicts(samples: list[Sample], warmup_s: float) -> list[Verdict]:
    """RSS growth after warm-up (median of the last quarter against the warm-up sample), fd and thread leaks."""
    after = [s for s in samples if s.t_s >= warmup_s]
    if len(after) < 4:
        why = f"only {len(after)} samples after the {warmup_s:g} s warm-up: run longer or sample more often"
        return [Verdict(n, False, why) for n in ("RSS growth < 10 % after warm-up", "no fd leak", "no thread leak")]
    base = after[0]
    tail = samples[-max(1, len(samples) // 4) :]
    rss_median = statistics.median(s.proc.rss_kib for s in tail)
    growth = rss_median / base.proc.rss_kib - 1.0
    fds_min, fds_max = min(s.proc.fds for s in tail), max(s.proc.fds for s in after)
    thr_min, thr_max = min(s.proc.threads for s in tail), max(s.proc.threads for s in after)
    # The minimum of the last quarter: a state save's short-lived file is not a leak, a descriptor kept open is.
    return [
        Verdict(
            "RSS growth < 10 % after warm-up",
            growth < RSS_GROWTH_LIMIT,
            f"{base.proc.rss_kib:,} KiB at {base.t_s:.0f} s, median of the last {len(tail)} samples "
            f"{rss_median:,.0f} KiB: {growth * 100:+.1f} %",
        ),
        Verdict(
            "no fd leak",
            fds_min <= base.proc.fds,
            f"{base.proc.fds} after warm-up, last quarter min {fds_min}, max after warm-up {fds_max}",
        ),
        Verdict(
            "no thread leak",
            thr_min <= base.proc.threads,
            f"{base.proc.threads} after warm-up, last quarter min {thr_min}, max after warm-up {thr_max}",
        ),
    ]


# --- main ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The command-line options, each with its unit and default."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--minutes",
        type=float,
        default=60.0,
        help="length of the run, min (default 60; R24: nightly >= 60, release >= 480)",
    )
    p.add_argument(
        "--warmup", type=float, help="warm-up before the RSS baseline, s (default: 10 %% of the run, at least 30)"
    )
    p.add_argument("--sample-every", type=float, help="sampling interval, s (default: run / 60, 1 to 30)")
    p.add_argument(
        "--disconnect-every",
        type=float,
        default=600.0,
        help="a disconnect every this many s, the first at half (default 600)",
    )
    p.add_argument(
        "--disconnect-for",
        type=float,
        help="length of each disconnect, s (default: a quarter of the interval, at most 20)",
    )
    p.add_argument(
        "--burst-every",
        type=float,
        default=60.0,
        help="a replay or forgery burst per device every this many s, alternating (default 60)",
    )
    p.add_argument("--burst-frames", type=int, default=10, help="frames per burst, at most, count (default 10)")
    p.add_argument(
        "--toggle-every", type=float, default=30.0, help="therapy on/off per device every this many s (default 30)"
    )
    p.add_argument(
        "--ack-every", type=float, default=60.0, help="an alarm acknowledge per device every this many s (default 60)"
    )
    p.add_argument("--poll-gap", type=float, default=0.02, help="pause between a gateway's requests, s (default 0.02)")
    p.add_argument("--timeout", type=float, default=0.3, help="client reply timeout, s (default 0.3)")
    p.add_argument("--retries", type=int, default=3, help="client re-sends after a timeout, count (default 3)")
    p.add_argument(
        "--reconnect-after",
        type=int,
        default=3,
        help="consecutive timeouts before a gateway reconnects, count (default 3)",
    )
    p.add_argument("--ber", type=float, default=1e-4, help="host->device bit error rate, per bit (default 1e-4)")
    p.add_argument("--drop", type=float, default=0.005, help="host->device byte drop rate, per byte (default 0.005)")
    p.add_argument(
        "--insert", type=float, default=0.005, help="host->device byte insert rate, per byte (default 0.005)"
    )
    p.add_argument(
        "--dup", type=float, default=0.005, help="host->device chunk duplicate rate, per chunk (default 0.005)"
    )
    p.add_argument(
        "--reorder-every", type=float, default=5.0, help="hold a host->device chunk back every this many s (default 5)"
    )
    p.add_argument(
        "--device-noise",
        type=DeviceNoise.parse,
        default=DeviceNoise.parse("flip=0.0008,drop=0.001,dup=0.001,delay=0.01,delay_ms=50"),
        help="device->host noise of implant-mock, rates per byte "
        "(default flip=0.0008,drop=0.001,dup=0.001,delay=0.01,delay_ms=50)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the emulator and of every random draw here (default 1)")
    p.add_argument("--csv", type=Path, help="write every sample to this CSV file (default: none)")
    p.add_argument("--max-rows", type=int, default=40, help="rows of the printed sample table, at most (default 40)")
    return p


def _fix_defaults(args: argparse.Namespace) -> None:
    args.run_s = args.minutes * 60.0
    if args.warmup is None:
        args.warmup = max(0.1 * args.run_s, 30.0)
    if args.sample_every is None:
        args.sample_every = min(max(args.run_s / 60.0, 1.0), 30.0)
    if args.disconnect_for is None:
        args.disconnect_for = min(args.disconnect_every / 4.0, 20.0)
    if args.run_s <= 0 or args.warmup >= args.run_s or args.sample_every <= 0 or args.disconnect_for <= 0:
        raise SystemExit("soak: --minutes > 0, --warmup shorter than the run, positive intervals")
    args.disconnects = disconnect_starts(args.run_s, args.disconnect_every, args.disconnect_for)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _fix_defaults(args)
    print(
        f"soak: {args.run_s:g} s, warm-up {args.warmup:g} s, a sample every {args.sample_every:g} s; "
        f"implant-mock (scs + pump) at speed 1, seed {args.seed}; {os.cpu_count()} CPUs"
    )
    print(f"  device->host noise (implant-mock): {args.device_noise.describe()}")
    rng = random.Random(args.seed)
    host_noise = HostNoise(args.ber, args.drop, args.insert, args.dup, args.reorder_every, rng)
    print(f"  host->device manipulator (relay): {host_noise.describe()}")
    print(
        f"  disconnects: {len(args.disconnects)} of {args.disconnect_for:g} s every {args.disconnect_every:g} s; "
        f"bursts every {args.burst_every:g} s per device (replay and forgery alternating, "
        f"<= {args.burst_frames} frames); "
        f"client timeout {args.timeout:g} s x {args.retries + 1} tries"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp, contextlib.ExitStack() as stack:
            return run(args, Path(tmp), stack, rng)
    except KeyboardInterrupt:  # everything was stopped on the way out of the with-block
        print("soak: interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack, rng: random.Random) -> int:
    """Start everything, sample, finish, judge. Every process and thread is stopped on the way out."""
    scenario = tmp / "soak.toml"
    write_scenario(scenario, args.run_s, args.device_noise, args.disconnects, args.disconnect_for)
    command = [sys.executable, "-m", "device_mock.cli", "--state", str(tmp / "state"), "--speed", "1"]
    command += ["--device", "scs", "--device", "pump", "--seed", str(args.seed), "--start", START_ISO]
    command += ["--scenario", str(scenario)]
    emulator = Emulator(command)
    args.emulator_t0 = time.monotonic()  # the device clock started a moment before: within the 30 s check
    args.t0 = args.emulator_t0
    stopped: dict[str, int] = {}

    def stop_emulator() -> None:
        if "code" not in stopped:
            stopped["code"] = emulator.stop()

    stack.callback(stop_emulator)
    relays: list[Relay] = []
    gateways: list[Gateway] = []

    def stop_threads() -> None:
        for gateway in gateways:
            gateway.stop_event.set()
        for gateway in gateways:
            gateway.join(timeout=30)
            gateway.close()
        for relay in relays:
            relay.stop()
        for relay in relays:
            relay.join(timeout=5)
            relay.close()

    stack.callback(stop_threads)
    for index, device in enumerate(emulator.devices):
        noise = HostNoise(args.ber, args.drop, args.insert, args.dup, args.reorder_every, random.Random(rng.random()))
        relay = Relay(device["name"], device["port"], noise, hold_max_s=1.5 * args.timeout)
        relays.append(relay)
        relay.start()
        gateways.append(Gateway(index, device, relay, args))
    for gateway in gateways:
        gateway.start()
    for gateway in gateways:
        gateway.ready.wait(60)
    names = ", ".join(f"{d['name']} ({d['kind']})" for d in emulator.devices)
    print(f"  devices: {names}; set up in {time.monotonic() - args.t0:.1f} s")

    samples: list[Sample] = []
    hang: list[str] = []
    died_at: float | None = None
    bound = max(g.call_bound_s() for g in gateways)
    own_start = read_proc(os.getpid())

    def take_sample() -> None:
        proc = read_proc(emulator.pid)
        if proc is None:
            return
        counters: Counter[str] = Counter()
        for gateway in gateways:
            counters.update(gateway.counters())
        counters["injected"] = sum(r.stats["injected_frames"] for r in relays)
        samples.append(Sample(time.monotonic() - args.t0, proc, counters))

    end = args.t0 + args.run_s
    next_sample = time.monotonic()
    next_progress = time.monotonic() + 60.0
    while (now := time.monotonic()) < end:
        if now >= next_sample:
            take_sample()
            next_sample += args.sample_every
        if not emulator.alive():
            died_at = now - args.t0
            break
        for gateway in gateways:
            busy = gateway.busy_since
            if busy is not None and now - busy > 3 * bound:
                hang.append(f"{gateway.name_}: a client call busy for {now - busy:.1f} s (bound {bound:.1f} s)")
        if hang or any(g.error for g in gateways) or any(r.error for r in relays):
            break
        if now >= next_progress:
            last = samples[-1] if samples else None
            if last is not None:
                print(
                    f"soak: {now - args.t0:.0f}/{args.run_s:.0f} s, RSS {last.proc.rss_kib:,} KiB, polls "
                    f"{last.counters['polls_ok']:,}, violations {last.counters['violations']}",
                    file=sys.stderr,
                    flush=True,
                )
            next_progress = now + 60.0
        time.sleep(min(0.2, max(0.0, min(next_sample, end) - time.monotonic())))
    run_s = time.monotonic() - args.t0

    # The end: the device's noise ended with the run; switch the manipulator off too and check it answers.
    for gateway in gateways:
        gateway.stop_event.set()
    for gateway in gateways:
        gateway.join(timeout=3 * bound + 10)
        if gateway.is_alive():
            hang.append(f"{gateway.name_}: gateway thread did not stop")
    for relay in relays:
        relay.noise.enabled = False
    finish_deadline = time.monotonic() + 90.0
    for gateway in gateways:
        if not gateway.is_alive() and emulator.alive():
            gateway.stop_event.clear()
            gateway.finish(finish_deadline)
            gateway.stop_event.set()
    take_sample()
    alive_at_end = emulator.alive()
    stop_threads()
    gateways_done = list(gateways)
    gateways.clear()  # stopped: the exit stack must not stop them twice
    relays_done = list(relays)
    relays.clear()
    stop_emulator()
    own_end = read_proc(os.getpid())
    if args.csv:
        write_csv(args.csv, samples)

    return report(
        args,
        run_s,
        samples,
        gateways_done,
        relays_done,
        emulator,
        stopped["code"],
        alive_at_end,
        died_at,
        hang,
        bound,
        own_start,
        own_end,
    )


def report(
    args: argparse.Namespace,
    run_s: float,
    samples: list[Sample],
    gateways: list[Gateway],
    relays: list[Relay],
    emulator: Emulator,
    exit_code: int,
    alive_at_end: bool,
    died_at: float | None,
    hang: list[str],
    bound: float,
    own_start: ProcSample | None,
    own_end: ProcSample | None,
) -> int:
    """Print the table, the figures and the verdicts; return the exit code (0: every criterion passed)."""
    print("samples (emulator from /proc; client counters summed over both devices and every reconnect):")
    print_table(samples, args.max_rows)
    totals: Counter[str] = Counter()
    for gateway in gateways:
        totals.update(gateway.counters())
    relay_stats: Counter[str] = Counter()
    for relay in relays:
        relay_stats.update(relay.stats)
    refusals: Counter[str] = Counter()
    for gateway in gateways:
        refusals.update(gateway.refusals)
    polls = totals["polls_ok"] + totals["polls_failed"]
    first, last = (samples[0], samples[-1]) if samples else (None, None)
    print(f"duration: {run_s:.1f} s of load (+ end checks), {len(samples)} samples, warm-up {args.warmup:g} s")
    print(
        f"polls: {totals['polls_ok']:,} ok of {polls:,} ({100 * totals['polls_ok'] / max(polls, 1):.1f} %), "
        f"event pages {totals['pages_ok']:,} ok / {totals['pages_failed']:,} failed, "
        f"therapy toggles {totals['toggles']:,} ({totals['toggles_unknown']:,} unknown until read back, "
        f"{totals['toggles_refused']:,} refused), alarm acks {totals['acks_ok']:,} ok / "
        f"{totals['acks_refused']:,} refused"
    )
    print(
        f"client counters: requests {totals['requests']:,}, frames ok {totals['frames_ok']:,}, CRC errors "
        f"{totals['crc_errors']:,}, malformed {totals['malformed']:,}, oversize {totals['oversize']:,}, MAC errors "
        f"{totals['mac_errors']:,}, replays {totals['replays']:,}, sequence gaps {totals['seq_gaps']:,}, timeouts "
        f"{totals['timeouts']:,}, retries {totals['retries']:,}, rejected {totals['rejected']:,}, reopened "
        f"{totals['reopened']:,}; pushes {totals['pushes']:,}"
    )
    print(
        f"gateway: connects {totals['connects']:,}, reconnects {totals['reconnects']:,}, lockout waits "
        f"{totals['lockout_waits']:,}, longest call {max((g.max_call_s for g in gateways), default=0):.2f} s "
        f"(bound {bound:.1f} s); refusals by code: {dict(sorted(refusals.items())) or 'none'}"
    )
    notes = [n for g in gateways for n in g.notes]
    if totals["protocol_errors"]:
        print(f"other protocol errors: {totals['protocol_errors']:,}, first: {notes[0]}")
    print(
        f"relays host->device: {relay_stats['h2d_chunks']:,} chunks, {relay_stats['h2d_chunks_corrupted']:,} corrupted "
        f"({relay_stats['h2d_bytes_flipped']:,} bytes flipped, {relay_stats['h2d_bytes_dropped']:,} dropped, "
        f"{relay_stats['h2d_bytes_inserted']:,} inserted), {relay_stats['h2d_chunks_duplicated']:,} duplicated, "
        f"{relay_stats['h2d_chunks_held']:,} held back ({relay_stats['h2d_chunks_reordered']:,} swapped with the "
        f"next); device CRC hints seen {relay_stats['device_crc_hints']:,}; upstream reopens "
        f"{relay_stats['upstream_reopens']:,}; bytes lost to a full buffer "
        f"{relay_stats['h2d_bytes_lost'] + relay_stats['d2h_bytes_lost']:,}"
    )
    audits = {g.name_: g.audit() for g in gateways}
    print(
        f"bursts: replay {totals['replay_bursts']:,} ({totals['sent_replay']:,} frames), forgery "
        f"{totals['forgery_bursts']:,} ({totals['sent_mac']:,} under the session's id, {totals['sent_nosession']:,} "
        f"untagged or another session); attempts deferred near a disconnect "
        f"{totals['bursts_postponed_disconnect']:,}, after a retried read-back {totals['bursts_postponed_retry']:,}; "
        f"accepted "
        f"{totals['accepted_injected']}"
    )
    for name, audit in audits.items():
        print(
            f"event log {name}: AUTH_FAILURE {audit['auth_failures']} (forged {audit['mac_sent']}, "
            f"{audit['mac_confirmed']} with the link confirmed up), LOCKOUT {audit['lockouts']}, therapy entries "
            f"{audit['therapy_logged']} (the gateway's own changes {audit['transitions']}), programming entries "
            f"{audit['forbidden']}; entries #{audit['entries'][0] + 1}..#{audit['entries'][1]} read"
        )
    if first and last:
        print(
            f"emulator: RSS {first.proc.rss_kib:,} KiB at start, {last.proc.rss_kib:,} KiB at the end; fds "
            f"{first.proc.fds} -> {last.proc.fds}; threads {first.proc.threads} -> {last.proc.threads}; CPU "
            f"{last.proc.cpu_s:.1f} s; exit code {exit_code} after SIGTERM"
        )
    if own_start and own_end:
        print(
            f"soak process: RSS {own_start.rss_kib:,} -> {own_end.rss_kib:,} KiB, fds {own_start.fds} -> "
            f"{own_end.fds}, CPU {own_end.cpu_s:.1f} s"
        )

    verdicts: list[Verdict] = []
    problems = list(hang)
    if died_at is not None:
        problems.append(f"emulator exited at {died_at:.0f} s")
    if not alive_at_end:
        problems.append("emulator not running at the end")
    problems += [
        f"{g.name_} did not answer at the end (read-back, log, identify)" for g in gateways if not g.answered_at_end
    ]
    if exit_code != 0 or not any("stopped, state saved" in line for line in emulator.lines):
        problems.append(f"emulator exit code {exit_code} after SIGTERM, stdout tail {emulator.lines[-2:]}")
    if "Traceback" in emulator.stderr_text:
        problems.append(f"emulator logged a traceback: {emulator.stderr_text.strip().splitlines()[-1]!r}")
    problems += [f"{g.name_} gateway error: {g.error}" for g in gateways if g.error]
    problems += [f"relay error: {r.error}" for r in relays if r.error]
    longest = max((g.max_call_s for g in gateways), default=0.0)
    if longest > bound:
        problems.append(f"a client call took {longest:.2f} s, over the {bound:.1f} s bound")
    unexpected = [u for g in gateways for u in g.unexpected]
    if unexpected:
        problems.append(f"{len(unexpected)} errors outside the protocol's error tree, first: {unexpected[0]}")
    verdicts.append(
        Verdict(
            "no crash or hang",
            not problems,
            "; ".join(problems)
            or f"emulator alive throughout, answered at the end, exit 0 on SIGTERM; longest call {longest:.2f} s "
            f"<= {bound:.1f} s",
        )
    )
    verdicts += resource_verdicts(samples, args.warmup)
    noise_counted = totals["crc_errors"] + totals["malformed"] + totals["oversize"]
    mac_ok = all(a["mac_confirmed"] <= a["auth_failures"] <= a["mac_sent"] for a in audits.values())
    counted = noise_counted > 0 and relay_stats["device_crc_hints"] > 0 and totals["sent_mac"] > 0 and mac_ok
    verdicts.append(
        Verdict(
            "every corrupted frame counted",
            counted,
            ("no forgery burst fired; " if not totals["sent_mac"] else "")
            + f"client CRC/malformed/oversize {noise_counted:,}, device CRC hints {relay_stats['device_crc_hints']:,}; "
            + "; ".join(
                f"{n} AUTH_FAILURE {a['auth_failures']} for {a['mac_confirmed']}..{a['mac_sent']} forged"
                for n, a in audits.items()
            ),
        )
    )
    accepted = totals["accepted_injected"]
    audit_bad = [
        f"{n}: therapy entries {a['therapy_logged']} vs {a['transitions']} commanded, "
        f"programming entries {a['forbidden']}"
        for n, a in audits.items()
        if a["therapy_logged"] != a["transitions"] or a["forbidden"]
    ]
    violations = [v for g in gateways for v in g.violations]
    injected = totals["sent_replay"] + totals["sent_mac"] + totals["sent_nosession"]
    zero = accepted == 0 and not audit_bad and not violations and injected > 0
    verdicts.append(
        Verdict(
            "zero accepted forged/replayed/corrupted commands",
            zero,
            "; ".join([*audit_bad, *violations[:3]] + ([] if injected else ["no burst fired"]))
            or f"{injected:,} injected, 0 accepted; read-backs matched; the log holds only the gateway's own changes",
        )
    )
    for verdict in verdicts:
        print(verdict.line())
    failed = [v.name for v in verdicts if not v.passed]
    print(f"soak: {'PASS' if not failed else 'FAIL: ' + ', '.join(failed)}")
    return 0 if not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
