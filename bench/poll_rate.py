"""Poll rate: status polls per second and latency through DeviceClient over the emulator's own pty, with peers.

Ours: ``DeviceClient.status()`` against ``implant-mock`` (``python -m device_mock.cli --device scs
--speed 1 --state TMP``, its defaults otherwise) run as a subprocess, as a user runs it, so client
and server sit on different cores. Peers, with the same number of polls: (i) pymodbus: its async
RTU client reading ``--registers`` holding registers per poll from its own async serial RTU server
(a subprocess) over a ``socat`` pty pair; (ii) the floor of any request and reply over a pty: a
pyserial client writing ``--echo-bytes`` and reading them back from an echo subprocess on the other
end of an ``os.openpty`` pair (and, to show what the socat hop costs pymodbus, the same echo over a
socat pair); (iii) for comparison, ours again with ``--spin-us 0``. Every peer stays up for the
whole run and is timed in ``--rounds`` interleaved blocks, so each round's ratio compares peers
under the same machine conditions; the ratios printed are the medians of the rounds. Then, with
``--baud`` passed to the emulator (it paces bytes at their wire time), our latency beside the wire
time of one poll. CPU per poll is the process time of each side (``/proc`` for the subprocesses).
Run: ``python bench/poll_rate.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.util
import io
import math
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import serial
from children import CLK_TCK, DEVICE_LINE, Child, mock_ready, proc_cpu_s

from protocols.auth import load_pairing_key
from protocols.client import DeviceClient
from protocols.transport import open_port

TARGET_VS_PYMODBUS = 2.0
TARGET_VS_ECHO = 0.5
TARGET_VS_WIRE = 1.15


# --- child processes -----------------------------------------------------------------------------
def start_socat(directory: Path, name: str) -> tuple[subprocess.Popen[bytes], Path, Path, IO[bytes]]:
    """A socat pty pair with links ``name-a`` and ``name-b`` in ``directory``; stop it with ``stop_socat``."""
    a, b = directory / f"{name}-a", directory / f"{name}-b"
    log = tempfile.TemporaryFile()
    command = ["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 10.0
    while not (a.exists() and b.exists()):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_socat(proc, log)
            log.seek(0)
            raise RuntimeError(f"socat did not create its pty pair: {log.read().decode(errors='replace')!r}")
        time.sleep(0.01)
    return proc, a, b, log


def stop_socat(proc: subprocess.Popen[bytes], log: IO[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    log.close()


# --- measurement ---------------------------------------------------------------------------------
@dataclass
class Result:
    """N timed polls: latencies (s), total wall time, and CPU seconds of each process involved."""

    label: str
    latencies: list[float]
    elapsed_s: float
    cpu_s: dict[str, float | None] = field(default_factory=dict)
    note: str = ""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed_s

    def pct_ms(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000

    def line(self) -> str:
        n = len(self.latencies)
        cpu = ", ".join(f"{who} {'n/a' if s is None else f'{s / n * 1e6:,.0f} µs'}" for who, s in self.cpu_s.items())
        return (
            f"{self.label}: {self.rate:,.0f} polls/s, p50 {self.pct_ms(0.5):.3f} ms, p99 {self.pct_ms(0.99):.3f} ms"
            f"{'; ' + self.note if self.note else ''}; CPU per poll: {cpu}"
        )

    @staticmethod
    def pooled(blocks: Sequence[Result]) -> Result:
        """One result of several blocks of the same peer: all latencies, summed time and CPU."""
        cpu: dict[str, float | None] = {}
        for block in blocks:
            for who, used in block.cpu_s.items():
                before = cpu.get(who, 0.0)
                cpu[who] = None if used is None or before is None else before + used
        latencies = [t for block in blocks for t in block.latencies]
        return Result(blocks[0].label, latencies, sum(b.elapsed_s for b in blocks), cpu, blocks[-1].note)


class _CpuMeter:
    """CPU seconds of this process and of the given subprocesses between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def start(self) -> None:
        self._client = time.process_time()
        self._others = {who: proc_cpu_s(pid) for who, pid in self.pids.items()}

    def stop(self) -> dict[str, float | None]:
        used: dict[str, float | None] = {"client": time.process_time() - self._client}
        for who, pid in self.pids.items():
            before, after = self._others[who], proc_cpu_s(pid)
            used[who] = None if before is None or after is None else after - before
        return used


def time_polls(label: str, poll: Callable[[], Any], polls: int, warmup: int, pids: dict[str, int]) -> Result:
    for _ in range(warmup):
        poll()
    latencies = [0.0] * polls
    meter = _CpuMeter(pids)
    meter.start()
    start = time.perf_counter()
    for i in range(polls):
        t = time.perf_counter()
        poll()
        latencies[i] = time.perf_counter() - t
    elapsed = time.perf_counter() - start
    return Result(label, latencies, elapsed, meter.stop())


async def time_polls_async(
    label: str, poll: Callable[[], Awaitable[Any]], polls: int, warmup: int, pids: dict[str, int]
) -> Result:
    for _ in range(warmup):
        await poll()
    latencies = [0.0] * polls
    meter = _CpuMeter(pids)
    meter.start()
    start = time.perf_counter()
    for i in range(polls):
        t = time.perf_counter()
        await poll()
        latencies[i] = time.perf_counter() - t
    elapsed = time.perf_counter() - start
    return Result(label, latencies, elapsed, meter.stop())


class Peer:
    """A client and server kept running between blocks: ``measure(n)`` times ``n`` polls after a few untimed."""

    label = ""
    pids: dict[str, int]

    def measure(self, polls: int, warmup: int) -> Result:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# --- ours ----------------------------------------------------------------------------------------
def start_emulator(
    state_dir: Path, baud: int | None, profile_to: Path | None = None, extra: Sequence[str] = ()
) -> tuple[Child, str, Path]:
    """``implant-mock`` serving one SCS on a pty it creates; returns the process, its port and its key file."""
    profiler = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    command = [sys.executable, *profiler, "-m", "device_mock.cli", "--state", str(state_dir)]
    command += ["--device", "scs", "--speed", "1", *(["--baud", str(baud)] if baud else []), *extra]
    emulator = Child(command, mock_ready)
    for line in emulator.lines:
        match = DEVICE_LINE.match(line)
        if match:
            return emulator, match["port"], Path(match["key"])
    emulator.stop()
    raise RuntimeError(f"implant-mock printed no device line: {emulator.lines}")


class OursPeer(Peer):
    """``DeviceClient.status()`` against an ``implant-mock`` subprocess over the pty it creates."""

    def __init__(
        self,
        args: argparse.Namespace,
        baud: int | None,
        profile_to: Path | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bench-poll-")
        self.emulator: Child | None = None
        self.client: DeviceClient | None = None
        try:
            state = Path(self._tmp.name) / "state"
            self.emulator, port_path, key_file = start_emulator(state, baud, profile_to, extra)
            port = open_port(port_path, baudrate=baud or 115200)
            self.client = DeviceClient(port, load_pairing_key(key_file), timeout=args.timeout, owns_port=True)
            self.client.identify()
            self.client.open_session()
            for _ in range(args.warmup):
                self.client.status()
        except BaseException:
            self.close()
            raise
        self.pids = {"emulator": self.emulator.pid}
        self.label = "ours" + (f" at --baud {baud}" if baud else "") + (f" with {' '.join(extra)}" if extra else "")
        self.label += " (DeviceClient <-> implant-mock subprocess, its pty)"
        self.request_bytes = self.reply_bytes = self.polls = self.retries = 0
        self.rtts: list[float] = []

    def measure(self, polls: int, warmup: int) -> Result:
        client = self.client
        assert client is not None
        for _ in range(warmup):
            client.status()
        written, received, retries = client.stats.bytes_tx, client.link_stats.bytes_rx, client.stats.retries
        rtts = self.rtts

        def poll() -> None:
            client.status()
            rtts.append(client.stats.last_rtt_s)

        result = time_polls(self.label, poll, polls, 0, self.pids)
        self.polls += polls
        self.request_bytes += client.stats.bytes_tx - written
        self.reply_bytes += client.link_stats.bytes_rx - received
        self.retries += client.stats.retries - retries
        rtt_p50 = sorted(rtts)[(len(rtts) - 1) // 2] * 1000
        result.note = (
            f"stats.last_rtt_s p50 {rtt_p50:.3f} ms; request {self.request_bytes / self.polls:.0f} B, "
            f"reply {self.reply_bytes / self.polls:.0f} B, retries {self.retries}"
        )
        return result

    def close(self) -> None:
        try:
            if self.client is not None:
                self.client.close()
        finally:
            code = self.emulator.stop() if self.emulator is not None else 0
            self._tmp.cleanup()
        if code != 0 and self.emulator is not None:
            raise RuntimeError(f"implant-mock exited with {code}: {self.emulator.lines} {self.emulator.stderr()!r}")


def profile_ours(args: argparse.Namespace) -> list[str]:
    """A pass of ours with both sides under cProfile; the top functions of each by own time."""
    with tempfile.TemporaryDirectory(prefix="bench-poll-prof-") as tmp:
        prof_path = Path(tmp) / "emulator.prof"
        peer = OursPeer(args, None, prof_path)
        try:
            profiler = cProfile.Profile()
            profiler.enable()
            result = peer.measure(args.polls, 0)
            profiler.disable()
        finally:
            peer.close()
        report = [f"profiled pass of ours (cProfile on both sides slows it): {result.rate:,.0f} polls/s"]
        report += top_functions("client (bench process)", pstats.Stats(profiler), args.profile)
        title = "emulator (subprocess, whole run incl. start-up)"
        report += top_functions(title, pstats.Stats(str(prof_path)), args.profile)
    return report


def top_functions(title: str, stats: pstats.Stats, count: int) -> list[str]:
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(count)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return [f"profile, {title}, top {count} by own time:", *(f"  {line}" for line in lines[start:])]


# --- pymodbus ------------------------------------------------------------------------------------
def _modbus_device(registers: int) -> Any:
    """A server context with holding registers 0..registers-1 holding their own addresses."""
    values = list(range(max(registers, 1)))
    try:  # pymodbus >= 3.10: the non-deprecated simulator datastore
        from pymodbus.simulator import DataType, SimData, SimDevice

        return SimDevice(1, simdata=[SimData(0, count=len(values), values=values, datatype=DataType.REGISTERS)])
    except ImportError:  # older 3.x: sequential block at address 1 (the protocol address 0)
        from pymodbus import datastore

        device_cls = getattr(datastore, "ModbusDeviceContext", None) or datastore.ModbusSlaveContext
        block = datastore.ModbusSequentialDataBlock(1, values)
        return datastore.ModbusServerContext(device_cls(hr=block), single=True)


def serve_modbus(spec: str, registers: int) -> int:
    """Child process: pymodbus's async RTU server on a serial port (``rtu:PATH``) or TCP (``tcp:PORT``)."""
    from pymodbus import FramerType
    from pymodbus.server import ModbusSerialServer, ModbusTcpServer

    kind, _, where = spec.partition(":")

    async def run() -> None:
        device = _modbus_device(registers)
        if kind == "rtu":
            server: Any = ModbusSerialServer(device, framer=FramerType.RTU, port=where, baudrate=115200)
        else:
            server = ModbusTcpServer(device, framer=FramerType.SOCKET, address=("127.0.0.1", int(where)))
        await server.serve_forever(background=True)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(server.shutdown()))
        print("ready", flush=True)
        await server.serving
        await server.shutdown()

    asyncio.run(run())
    return 0


class ModbusPeer(Peer):
    """pymodbus's async client reading holding registers from its async server (RTU over socat, or TCP)."""

    def __init__(self, args: argparse.Namespace, tmp: Path, transport: str) -> None:
        import pymodbus

        self.count = args.registers
        self.loop = asyncio.new_event_loop()
        self.socat: tuple[subprocess.Popen[bytes], IO[bytes]] | None = None
        self.server: Child | None = None
        self.client: Any = None
        try:
            if transport == "serial":
                socat, a, b, log = start_socat(tmp, "modbus")
                self.socat = (socat, log)
                self.server = self._serve(f"rtu:{a}", args)
                self.label = (
                    f"pymodbus {pymodbus.__version__} RTU "
                    "(async client <-> async serial server subprocess, socat pty pair)"
                )
                self.pids = {"server": self.server.pid, "socat": socat.pid}
                self.loop.run_until_complete(self._connect(str(b), args.timeout))
            else:
                with socket.socket() as probe:  # a free port on loopback for the server to listen on
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
                self.server = self._serve(f"tcp:{port}", args)
                self.label = (
                    f"SECONDARY figure, not a pty: pymodbus {pymodbus.__version__} Modbus/TCP on 127.0.0.1 "
                    "(async client <-> server)"
                )
                self.pids = {"server": self.server.pid}
                self.loop.run_until_complete(self._connect(f"tcp:{port}", args.timeout))
            for _ in range(args.warmup):
                self.loop.run_until_complete(self._poll())
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _serve(spec: str, args: argparse.Namespace) -> Child:
        command = [sys.executable, __file__, "--serve-modbus", spec, "--registers", str(args.registers)]
        return Child(command, lambda line: line == "ready")

    async def _connect(self, target: str, timeout: float) -> None:
        from pymodbus import FramerType
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

        if target.startswith("tcp:"):
            self.client = AsyncModbusTcpClient("127.0.0.1", port=int(target[4:]), timeout=timeout, retries=0)
        else:
            self.client = AsyncModbusSerialClient(
                target, framer=FramerType.RTU, baudrate=115200, timeout=timeout, retries=0
            )
        if not await self.client.connect():
            raise RuntimeError(f"pymodbus client could not open {target}")
        first = await self.client.read_holding_registers(0, count=self.count, device_id=1)
        if first.isError() or list(first.registers) != list(range(self.count)):
            raise RuntimeError(f"pymodbus read returned {first}, expected registers {list(range(self.count))}")

    async def _poll(self) -> None:
        reply = await self.client.read_holding_registers(0, count=self.count, device_id=1)
        if reply.isError():
            raise RuntimeError(f"pymodbus read failed: {reply}")

    def measure(self, polls: int, warmup: int) -> Result:
        return self.loop.run_until_complete(time_polls_async(self.label, self._poll, polls, warmup, self.pids))

    def close(self) -> None:
        try:
            if self.client is not None:
                self.client.close()
            self.loop.close()
        finally:
            if self.server is not None:
                self.server.stop()
            if self.socat is not None:
                stop_socat(*self.socat)


def modbus_peer(args: argparse.Namespace, tmp: Path) -> tuple[ModbusPeer, str]:
    """(peer, note): RTU over a socat pty, or Modbus/TCP (secondary) with the reason if the serial path fails."""
    failure = ""
    if args.modbus_transport == "serial":
        try:
            return ModbusPeer(args, tmp, "serial"), ""
        except Exception as exc:  # any failure of the serial path: say what, then the TCP figure
            failure = f"pymodbus serial RTU server over a socat pty: {type(exc).__name__}: {exc}"
    return ModbusPeer(args, tmp, "tcp"), failure


# --- raw echo floor ------------------------------------------------------------------------------
def serve_echo(spec: str) -> int:
    """Child process: echo every byte back on an inherited pty master (``fd:N``) or a tty path (``path:P``)."""
    kind, _, where = spec.partition(":")
    if kind == "fd":
        fd = int(where)
    else:
        fd = os.open(where, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
    print("ready", flush=True)
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the other end closed
            break
        if not data:
            break
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    return 0


class EchoPeer(Peer):
    """pyserial writing ``--echo-bytes`` and reading them back from an echo subprocess (openpty or socat)."""

    def __init__(self, args: argparse.Namespace, tmp: Path | None = None) -> None:
        self.request = bytes((i * 37 + 11) & 0xFF for i in range(args.echo_bytes))
        self.socat: tuple[subprocess.Popen[bytes], IO[bytes]] | None = None
        self.echo: Child | None = None
        self._slave: int | None = None
        self.port: serial.Serial | None = None
        try:
            if tmp is None:
                master, self._slave = os.openpty()
                tty.setraw(self._slave)
                path = os.ttyname(self._slave)
                try:
                    self.echo = Child(self._serve(f"fd:{master}"), lambda line: line == "ready", 10, (master,))
                finally:
                    os.close(master)  # the child has its own copy
                self.label = f"raw echo floor (pyserial <-> echo subprocess, os.openpty), {args.echo_bytes} B each way"
                self.pids = {"echo": self.echo.pid}
            else:
                socat, a, b, log = start_socat(tmp, "echo")
                self.socat = (socat, log)
                path = str(b)
                self.echo = Child(self._serve(f"path:{a}"), lambda line: line == "ready", 10)
                self.label = f"raw echo over a socat pty pair (the hop pymodbus pays), {args.echo_bytes} B each way"
                self.pids = {"echo": self.echo.pid, "socat": socat.pid}
            self.port = serial.Serial(path, baudrate=115200, timeout=args.timeout)
            for _ in range(args.warmup):
                self._poll()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _serve(spec: str) -> list[str]:
        return [sys.executable, __file__, "--serve-echo", spec]

    def _poll(self) -> None:
        assert self.port is not None
        self.port.write(self.request)
        if self.port.read(len(self.request)) != self.request:
            raise RuntimeError("echo: short or wrong read")

    def measure(self, polls: int, warmup: int) -> Result:
        return time_polls(self.label, self._poll, polls, warmup, self.pids)

    def close(self) -> None:
        try:
            if self.port is not None:
                self.port.close()
        finally:
            if self.echo is not None:
                self.echo.stop()
            if self._slave is not None:
                os.close(self._slave)
            if self.socat is not None:
                stop_socat(*self.socat)


def interleaved(peers: Sequence[Peer], polls: int, rounds: int, warmup: int) -> list[list[Result]]:
    """Blocks of each peer in turn, ``rounds`` times, the order rotated each round.

    Pty round trips on a shared machine swing by 2-3x with the load and the cores' idle states;
    peers timed minutes apart see different machines. Alternating short blocks gives every
    round's ratio the same conditions on both sides.
    """
    blocks: list[list[Result]] = [[] for _ in peers]
    per_round = max(1, math.ceil(polls / rounds))
    for r in range(rounds):
        order = list(range(len(peers)))
        order = order[r % len(order) :] + order[: r % len(order)]
        for index in order:
            blocks[index].append(peers[index].measure(per_round, warmup))
    return blocks


def ratio_line(name: str, ours: list[Result], peer: list[Result], target: float) -> str:
    """The median of the per-round rate ratios (with their range and the pooled ratio), and its verdict."""
    ratios = sorted(o.rate / p.rate for o, p in zip(ours, peer, strict=True))
    median = statistics.median(ratios)
    pooled = Result.pooled(ours).rate / Result.pooled(peer).rate
    return (
        f"ratio ours / {name}: {median:.2f}x polls/s (median of {len(ratios)} interleaved rounds, "
        f"{ratios[0]:.2f}-{ratios[-1]:.2f}; pooled {pooled:.2f}x) ({verdict(median, target, True)})"
    )


# --- main ----------------------------------------------------------------------------------------
def verdict(value: float, target: float, at_least: bool) -> str:
    met = value >= target if at_least else value <= target
    return f"target {'>=' if at_least else '<='} {target:g}x: {'met' if met else 'MISSED'}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--polls", type=int, default=2000, help="timed polls per measurement, count (default 2000)")
    p.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved rounds the polls of each peer are split into, count (default 5)",
    )
    p.add_argument("--warmup", type=int, default=200, help="untimed polls before each measurement, count (default 200)")
    p.add_argument(
        "--baud",
        type=int,
        default=115200,
        help="baud rate the emulator paces at for the wire-time comparison, bit/s; 0 skips it (default 115200)",
    )
    p.add_argument("--baud-polls", type=int, default=500, help="timed polls at --baud, count (default 500)")
    p.add_argument("--echo-bytes", type=int, default=44, help="raw echo request = reply size, bytes (default 44)")
    p.add_argument("--registers", type=int, default=10, help="holding registers per pymodbus poll, count (default 10)")
    p.add_argument("--timeout", type=float, default=2.0, help="reply timeout of every client, s (default 2)")
    p.add_argument(
        "--skip-sleeper",
        action="store_true",
        help="skip the comparison run of the emulator with --spin-us 0 (default: run it)",
    )
    p.add_argument("--skip-modbus", action="store_true", help="skip pymodbus and the socat echo (default: run them)")
    p.add_argument(
        "--modbus-transport",
        choices=("serial", "tcp"),
        default="serial",
        help="pymodbus over a socat pty pair, or Modbus/TCP on 127.0.0.1 as a secondary figure (default serial)",
    )
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="extra pass of ours with cProfile on both sides; print the top N functions by own time (default 0: off)",
    )
    p.add_argument(
        "--serve-modbus", metavar="rtu:PATH|tcp:PORT", help="internal: be the pymodbus server child (default: off)"
    )
    p.add_argument("--serve-echo", metavar="fd:N|path:PATH", help="internal: be the echo child (default: off)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.serve_modbus:
        return serve_modbus(args.serve_modbus, args.registers)
    if args.serve_echo:
        return serve_echo(args.serve_echo)
    counts = (args.polls, args.baud_polls, args.echo_bytes, args.registers, args.rounds)
    if min(counts) < 1 or args.warmup < 0 or args.baud < 0:
        raise SystemExit("poll_rate: counts must be >= 1 (--warmup >= 0, --baud >= 0)")

    print(
        f"poll_rate: {args.polls} timed status polls per peer in {args.rounds} interleaved rounds, "
        f"{args.warmup} warm-up polls first and {min(args.warmup, 20)} before each block, one request in flight; "
        f"{os.cpu_count()} CPUs; subprocess CPU from /proc in steps of {1000 / CLK_TCK:g} ms"
    )
    have_socat = shutil.which("socat") is not None
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp, contextlib.ExitStack() as stack:
        peers: list[Peer] = []

        def keep(peer: Peer) -> Peer:
            stack.callback(peer.close)
            peers.append(peer)
            return peer

        ours = keep(OursPeer(args, None))
        # What the emulator's spin window buys, and costs in CPU: the same, never spinning.
        sleeper = keep(OursPeer(args, None, extra=("--spin-us", "0"))) if not args.skip_sleeper else None
        modbus: Peer | None = None
        echo_socat: Peer | None = None
        if args.skip_modbus:
            print("pymodbus peer: skipped (--skip-modbus)")
        elif importlib.util.find_spec("pymodbus") is None:
            print("pymodbus peer: skipped, pymodbus is not installed (pip install pymodbus)")
        elif args.modbus_transport == "serial" and not have_socat:
            print("pymodbus peer: skipped, socat not found on PATH (install socat)")
        else:
            peer, failure = modbus_peer(args, Path(tmp))
            modbus = keep(peer)
            if failure:
                print(f"pymodbus over a pty: FAILED, {failure}")
        if not args.skip_modbus and have_socat:
            echo_socat = keep(EchoPeer(args, Path(tmp)))
        echo = keep(EchoPeer(args))
        blocks = dict(zip(peers, interleaved(peers, args.polls, args.rounds, min(args.warmup, 20)), strict=True))
        for peer in (ours, sleeper, modbus, echo, echo_socat):
            if peer is not None:
                print(Result.pooled(blocks[peer]).line())
        if modbus is not None:
            name = (
                "pymodbus" if not modbus.label.startswith("SECONDARY") else "pymodbus Modbus/TCP (SECONDARY, not a pty)"
            )
            print(ratio_line(name, blocks[ours], blocks[modbus], TARGET_VS_PYMODBUS))
        print(ratio_line("raw echo", blocks[ours], blocks[echo], TARGET_VS_ECHO))
        if sleeper is not None:
            ratios = sorted(s.rate / e.rate for s, e in zip(blocks[sleeper], blocks[echo], strict=True))
            median = statistics.median(ratios)
            print(f"for comparison, ours with --spin-us 0 / raw echo: {median:.2f}x polls/s (no target)")

    if args.baud:
        paced = OursPeer(args, args.baud)
        try:
            result = paced.measure(args.baud_polls, 0)
        finally:
            paced.close()
        print(result.line())
        request, reply = paced.request_bytes / paced.polls, paced.reply_bytes / paced.polls
        wire_ms = (request + reply) * 10 / args.baud * 1000
        p50 = result.pct_ms(0.5)
        mean = sum(result.latencies) / len(result.latencies) * 1000
        print(
            f"wire time of one poll at {args.baud} bit/s: ({request:.0f} + {reply:.0f} B) "
            f"x 10 / {args.baud} = {wire_ms:.3f} ms; ours p50 {p50:.3f} ms, mean {mean:.3f} ms; "
            f"ratio p50 / wire {p50 / wire_ms:.3f}x ({verdict(p50 / wire_ms, TARGET_VS_WIRE, False)})"
        )
    else:
        print("paced run: skipped (--baud 0)")

    if args.profile:
        print("\n".join(profile_ours(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
