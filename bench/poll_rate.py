"""Poll rate: status polls per second and latency through DeviceClient over the emulator's own pty, with peers.

Ours: ``DeviceClient.status()`` against ``implant-mock`` (``python -m device_mock.cli --device scs
--speed 1 --state TMP``) run as a subprocess, as a user runs it, so client and server sit on
different cores. Peers measured in the same run, one at a time, with the same number of polls:
(i) pymodbus: its async RTU client reading ``--registers`` holding registers per poll from its own
async serial RTU server (a subprocess) over a ``socat`` pty pair; (ii) the floor of any request and
reply over a pty: a pyserial client writing ``--echo-bytes`` and reading them back from an echo
subprocess on the other end of an ``os.openpty`` pair (and, to show what the socat hop costs
pymodbus, the same echo over a socat pair). Then, with ``--baud`` passed to the emulator (it paces
bytes at their wire time), our latency beside the wire time of one poll. CPU per poll is the process
time of each side (``/proc`` for the subprocesses). Run: ``python bench/poll_rate.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import io
import math
import os
import pstats
import re
import selectors
import shutil
import signal
import socket
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

from protocols.auth import load_pairing_key
from protocols.client import DeviceClient
from protocols.transport import open_port

_DEVICE_LINE = re.compile(r"^(?P<name>\S+): (?P<kind>\w+) serial=(?P<serial>\S+) port=(?P<port>\S+).* key=(?P<key>\S+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
TARGET_VS_PYMODBUS = 2.0
TARGET_VS_ECHO = 0.5
TARGET_VS_WIRE = 1.15


# --- child processes -----------------------------------------------------------------------------
class Proc:
    """A subprocess that reports readiness on stdout; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    def __init__(
        self,
        command: Sequence[str],
        ready: Callable[[str], bool],
        timeout_s: float = 20.0,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.command = list(command)
        self.lines: list[str] = []
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=self._stderr, bufsize=0, env=env, pass_fds=tuple(pass_fds)
        )
        try:
            self._wait_ready(ready, timeout_s)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, ready: Callable[[str], bool], timeout_s: float) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        pending = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(left):
                    continue
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for raw in complete:
                    line = raw.decode(errors="replace")
                    self.lines.append(line)
                    if ready(line):
                        return
        try:
            code = self.proc.wait(timeout=0.5)
            why = f"exited with code {code} before it was ready"
        except subprocess.TimeoutExpired:
            why = f"was not ready after {timeout_s:g} s"
        raise RuntimeError(
            f"{' '.join(self.command[:4])} ... {why}; stdout: {self.lines}; stderr: {self.stderr().strip()!r}"
        )

    def stderr(self) -> str:
        """What the process wrote to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def cpu_s(self) -> float | None:
        """User + system CPU seconds of the process so far (None where /proc is not available)."""
        return proc_cpu_s(self.proc.pid)

    def stop(self) -> int:
        """SIGTERM and wait; SIGKILL if it does not end in time. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()
        return self.proc.returncode


def proc_cpu_s(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime (fields 14 and 15 of proc(5))


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


# --- ours ----------------------------------------------------------------------------------------
@dataclass
class OursResult:
    result: Result
    request_bytes: float
    reply_bytes: float


def start_emulator(state_dir: Path, baud: int | None, profile_to: Path | None = None) -> tuple[Proc, str, Path]:
    """``implant-mock`` serving one SCS on a pty it creates; returns the process, its port and its key file."""
    profiler = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
    command = [sys.executable, *profiler, "-m", "device_mock.cli", "--state", str(state_dir)]
    command += ["--device", "scs", "--speed", "1", *(["--baud", str(baud)] if baud else [])]
    emulator = Proc(command, lambda line: line.startswith("implant-mock:") and "device(s)" in line)
    for line in emulator.lines:
        match = _DEVICE_LINE.match(line)
        if match:
            return emulator, match["port"], Path(match["key"])
    emulator.stop()
    raise RuntimeError(f"implant-mock printed no device line: {emulator.lines}")


def bench_ours(
    args: argparse.Namespace, polls: int, baud: int | None, profile: int = 0
) -> tuple[OursResult, list[str]]:
    """Polls through DeviceClient; with ``profile`` > 0, both sides under cProfile, top functions returned."""
    report: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        prof_path = Path(tmp) / "emulator.prof" if profile else None
        emulator, port_path, key_file = start_emulator(Path(tmp) / "state", baud, prof_path)
        try:
            port = open_port(port_path, baudrate=baud or 115200)
            client = DeviceClient(port, load_pairing_key(key_file), timeout=args.timeout, owns_port=True)
            try:
                client.identify()
                client.open_session()
                for _ in range(args.warmup):
                    client.status()
                written, received, retries = client.stats.bytes_tx, client.link_stats.bytes_rx, client.stats.retries
                label = "ours" if not baud else f"ours at --baud {baud}"
                label += " (DeviceClient <-> implant-mock subprocess, its pty)"
                profiler = None
                if profile:
                    profiler = cProfile.Profile()
                    profiler.enable()
                rtts: list[float] = []

                def poll() -> None:
                    client.status()
                    rtts.append(client.stats.last_rtt_s)

                result = time_polls(label, poll, polls, 0, {"emulator": emulator.pid})
                if profiler is not None:
                    profiler.disable()
                    report += top_functions("client (bench process)", pstats.Stats(profiler), profile)
                request = (client.stats.bytes_tx - written) / polls
                reply = (client.link_stats.bytes_rx - received) / polls
                rtt_p50 = sorted(rtts)[(len(rtts) - 1) // 2] * 1000
                result.note = (
                    f"stats.last_rtt_s p50 {rtt_p50:.3f} ms; request {request:.0f} B, reply {reply:.0f} B, "
                    f"retries {client.stats.retries - retries}"
                )
            finally:
                client.close()
        finally:
            code = emulator.stop()
        if code != 0:
            raise RuntimeError(f"implant-mock exited with {code}: {emulator.lines} {emulator.stderr()!r}")
        if prof_path is not None:
            title = "emulator (subprocess, whole run incl. start-up)"
            report += top_functions(title, pstats.Stats(str(prof_path)), profile)
    return OursResult(result, request, reply), report


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


async def modbus_polls(args: argparse.Namespace, target: str, pids: dict[str, int], label: str) -> Result:
    from pymodbus import FramerType
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

    if target.startswith("tcp:"):
        client: Any = AsyncModbusTcpClient("127.0.0.1", port=int(target[4:]), timeout=args.timeout, retries=0)
    else:
        client = AsyncModbusSerialClient(
            target, framer=FramerType.RTU, baudrate=115200, timeout=args.timeout, retries=0
        )
    try:
        if not await client.connect():
            raise RuntimeError(f"pymodbus client could not open {target}")
        count = args.registers
        expected = list(range(count))

        async def poll() -> None:
            reply = await client.read_holding_registers(0, count=count, device_id=1)
            if reply.isError():
                raise RuntimeError(f"pymodbus read failed: {reply}")

        first = await client.read_holding_registers(0, count=count, device_id=1)
        if first.isError() or list(first.registers) != expected:
            raise RuntimeError(f"pymodbus read returned {first}, expected registers {expected}")
        return await time_polls_async(label, poll, args.polls, args.warmup, pids)
    finally:
        client.close()


def bench_modbus(args: argparse.Namespace, tmp: Path) -> tuple[Result, str]:
    """(result, note): the RTU-over-pty figure, or the TCP one (secondary) if the serial server fails."""
    import pymodbus

    version = pymodbus.__version__
    failure = ""
    if args.modbus_transport == "serial":
        socat, a, b, log = start_socat(tmp, "modbus")
        try:
            server = Proc(
                [sys.executable, __file__, "--serve-modbus", f"rtu:{a}", "--registers", str(args.registers)],
                lambda line: line == "ready",
            )
            try:
                label = f"pymodbus {version} RTU (async client <-> async serial server subprocess, socat pty pair)"
                pids = {"server": server.pid, "socat": socat.pid}
                return asyncio.run(modbus_polls(args, str(b), pids, label)), ""
            finally:
                server.stop()
        except Exception as exc:  # any failure of the serial path: say what, then the TCP figure
            failure = f"pymodbus {version} serial RTU server over a socat pty: {type(exc).__name__}: {exc}"
        finally:
            stop_socat(socat, log)
    with socket.socket() as probe:  # a free port on loopback for the server to listen on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Proc(
        [sys.executable, __file__, "--serve-modbus", f"tcp:{port}", "--registers", str(args.registers)],
        lambda line: line == "ready",
    )
    try:
        label = f"SECONDARY figure, not a pty: pymodbus {version} Modbus/TCP on 127.0.0.1 (async client <-> server)"
        return asyncio.run(modbus_polls(args, f"tcp:{port}", {"server": server.pid}, label)), failure
    finally:
        server.stop()


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


def echo_polls(args: argparse.Namespace, path: str, pids: dict[str, int], label: str) -> Result:
    request = bytes((i * 37 + 11) & 0xFF for i in range(args.echo_bytes))
    with serial.Serial(path, baudrate=115200, timeout=args.timeout) as port:

        def poll() -> None:
            port.write(request)
            if port.read(len(request)) != request:
                raise RuntimeError("echo: short or wrong read")

        return time_polls(label, poll, args.polls, args.warmup, pids)


def bench_echo(args: argparse.Namespace) -> Result:
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        path = os.ttyname(slave)
        try:
            echo = Proc(
                [sys.executable, __file__, "--serve-echo", f"fd:{master}"], lambda line: line == "ready", 10, (master,)
            )
        finally:
            os.close(master)  # the child has its own copy
        try:
            label = f"raw echo floor (pyserial <-> echo subprocess, os.openpty), {args.echo_bytes} B each way"
            return echo_polls(args, path, {"echo": echo.pid}, label)
        finally:
            echo.stop()
    finally:
        os.close(slave)


def bench_echo_socat(args: argparse.Namespace, tmp: Path) -> Result:
    socat, a, b, log = start_socat(tmp, "echo")
    try:
        echo = Proc([sys.executable, __file__, "--serve-echo", f"path:{a}"], lambda line: line == "ready", 10)
        try:
            label = f"raw echo over a socat pty pair (the hop pymodbus pays), {args.echo_bytes} B each way"
            return echo_polls(args, str(b), {"echo": echo.pid, "socat": socat.pid}, label)
        finally:
            echo.stop()
    finally:
        stop_socat(socat, log)


# --- main ----------------------------------------------------------------------------------------
def verdict(value: float, target: float, at_least: bool) -> str:
    met = value >= target if at_least else value <= target
    return f"target {'>=' if at_least else '<='} {target:g}x: {'met' if met else 'MISSED'}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--polls", type=int, default=2000, help="timed polls per measurement, count (default 2000)")
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
    if min(args.polls, args.baud_polls, args.echo_bytes, args.registers) < 1 or args.warmup < 0 or args.baud < 0:
        raise SystemExit("poll_rate: counts must be >= 1 (--warmup >= 0, --baud >= 0)")

    print(
        f"poll_rate: {args.polls} timed status polls per measurement after {args.warmup} warm-up polls, "
        f"one request in flight; {os.cpu_count()} CPUs; subprocess CPU from /proc in steps of {1000 / _CLK_TCK:g} ms"
    )
    ours, _ = bench_ours(args, args.polls, None)
    print(ours.result.line())
    modbus: Result | None = None
    echo_socat: Result | None = None
    have_socat = shutil.which("socat") is not None
    with tempfile.TemporaryDirectory(prefix="bench-poll-") as tmp:
        if args.skip_modbus:
            print("pymodbus peer: skipped (--skip-modbus)")
        elif importlib.util.find_spec("pymodbus") is None:
            print("pymodbus peer: skipped, pymodbus is not installed (pip install pymodbus)")
        elif args.modbus_transport == "serial" and not have_socat:
            print("pymodbus peer: skipped, socat not found on PATH (install socat)")
        else:
            modbus, failure = bench_modbus(args, Path(tmp))
            if failure:
                print(f"pymodbus over a pty: FAILED, {failure}")
            print(modbus.line())
        if not args.skip_modbus and have_socat:
            echo_socat = bench_echo_socat(args, Path(tmp))
    echo = bench_echo(args)
    print(echo.line())
    if echo_socat is not None:
        print(echo_socat.line())
    if modbus is not None:
        ratio = ours.result.rate / modbus.rate
        peer = "pymodbus" if not modbus.label.startswith("SECONDARY") else "pymodbus Modbus/TCP (SECONDARY, not a pty)"
        print(f"ratio ours / {peer}: {ratio:.2f}x polls/s ({verdict(ratio, TARGET_VS_PYMODBUS, True)})")
    ratio = ours.result.rate / echo.rate
    print(f"ratio ours / raw echo: {ratio:.2f}x polls/s ({verdict(ratio, TARGET_VS_ECHO, True)})")

    if args.baud:
        paced, _ = bench_ours(args, args.baud_polls, args.baud)
        print(paced.result.line())
        wire_ms = (paced.request_bytes + paced.reply_bytes) * 10 / args.baud * 1000
        p50 = paced.result.pct_ms(0.5)
        mean = sum(paced.result.latencies) / len(paced.result.latencies) * 1000
        print(
            f"wire time of one poll at {args.baud} bit/s: ({paced.request_bytes:.0f} + {paced.reply_bytes:.0f} B) "
            f"x 10 / {args.baud} = {wire_ms:.3f} ms; ours p50 {p50:.3f} ms, mean {mean:.3f} ms; "
            f"ratio p50 / wire {p50 / wire_ms:.3f}x ({verdict(p50 / wire_ms, TARGET_VS_WIRE, False)})"
        )
    else:
        print("paced run: skipped (--baud 0)")

    if args.profile:
        profiled, report = bench_ours(args, args.polls, None, profile=args.profile)
        print(f"profiled pass of ours (cProfile on both sides slows it): {profiled.result.rate:,.0f} polls/s")
        print("\n".join(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
