"""The soak run's emulator (SECURITY.md R24): ``implant-mock`` as a subprocess, its ``/proc`` figures, its scenario.

``Emulator`` starts ``implant-mock``, parses the device lines it prints and stops it with SIGTERM
(SIGKILL if it does not end); ``read_proc`` samples a process's RSS, descriptors, threads and CPU.
``DeviceNoise``, ``disconnect_starts`` and ``write_scenario`` make the scenario file the emulator
plays: line noise on what the device sends for the whole run, and periodic disconnects.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

START_ISO = "2026-01-01T00:00:00Z"
START_MS = int(dt.datetime.fromisoformat(START_ISO.replace("Z", "+00:00")).timestamp() * 1000)
_DEVICE_LINE = re.compile(r"^(?P<name>\S+): (?P<kind>\w+) serial=(?P<serial>\S+) port=(?P<port>\S+).* key=(?P<key>\S+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
READ_SIZE = 4096


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
