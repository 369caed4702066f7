"""Child processes of the benches: start one, wait for its ready line, read its ``/proc`` figures, stop it.

``Child`` runs a command with unbuffered stdout, waits until a line satisfies ``ready``, keeps every
stdout line and all of stderr, and stops with SIGTERM (SIGKILL if it does not end). ``proc_cpu_s``
and ``read_proc`` sample any process from ``/proc``. ``DEVICE_LINE`` and ``mock_ready`` read what
``implant-mock`` prints at start.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

READ_SIZE = 4096
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
DEVICE_LINE = re.compile(r"^(?P<name>\S+): (?P<kind>\w+) serial=(?P<serial>\S+) port=(?P<port>\S+).* key=(?P<key>\S+)")


def mock_ready(line: str) -> bool:
    """The line ``implant-mock`` prints once every device is served."""
    return line.startswith("implant-mock:") and "device(s)" in line


class Child:
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
        self.exit_code: int | None = None
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        self._stderr_text = ""
        self.proc = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            pass_fds=tuple(pass_fds),
        )
        try:
            self._wait_ready(ready, timeout_s)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def _wait_ready(self, ready: Callable[[str], bool], timeout_s: float) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        pending = b""
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, READ_SIZE)
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
        """What the process wrote to stderr so far (all of it, once stopped)."""
        if self._stderr.closed:
            return self._stderr_text
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def cpu_s(self) -> float | None:
        """User + system CPU seconds of the process so far (None where /proc is not available)."""
        return proc_cpu_s(self.proc.pid)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM and wait; SIGKILL if it does not end in time. Returns the exit code (-9 when killed).

        The rest of stdout is kept in ``lines`` (``implant-mock`` prints "stopped, state saved").
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout_s)
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.lines += self.proc.stdout.read().decode(errors="replace").splitlines()
            self.proc.stdout.close()
        if not self._stderr.closed:
            self._stderr_text = self.stderr()
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


def _cpu_of(stat: str) -> float:
    ticks = stat.rpartition(")")[2].split()
    return (int(ticks[11]) + int(ticks[12])) / CLK_TCK  # utime, stime (fields 14 and 15 of proc(5))


def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of ``pid``; None when it is gone or there is no ``/proc``."""
    try:
        return _cpu_of(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return None


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
    return ProcSample(rss, fds, threads, _cpu_of(stat))
