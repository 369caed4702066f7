"""Runs ``implant-mock`` as a real subprocess for end-to-end tests and parses what it prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_DEVICE_LINE = re.compile(r"^(?P<name>\S+): (?P<kind>\w+) serial=(?P<serial>\S+) port=(?P<port>\S+).* key=(?P<key>\S+)")
STOPPED_LINE = "implant-mock: stopped, state saved"


def announced(line: str) -> bool:
    """The line ``implant-mock`` prints once every device is served."""
    return line.startswith("implant-mock:") and "device(s)" in line


@dataclass
class MockedDevice:
    """One served device as printed at start-up."""

    name: str
    kind: str
    serial: str
    port: str
    key: Path


class MockProcess:
    """``implant-mock`` with the given arguments; stopped (SIGTERM, then kill) by ``stop()``."""

    def __init__(
        self,
        args: list[str],
        state_dir: Path,
        timeout_s: float = 20.0,
        ready: Callable[[str], bool] = announced,
    ) -> None:
        """Start it and read its output until ``ready(line)`` (default: every device announced)."""
        command = [sys.executable, "-m", "device_mock.cli", "--state", str(state_dir), *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.devices: dict[str, MockedDevice] = {}
        self.lines: list[str] = []
        self._stderr: list[str] = []
        self._stderr_thread = threading.Thread(target=self._drain_stderr, name="mock-stderr", daemon=True)
        self._stderr_thread.start()
        self._stdout_thread: threading.Thread | None = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self._take(line)
            if ready(line):
                # Keep reading (the stop line comes later), so a chatty process never blocks on a full pipe.
                self._stdout_thread = threading.Thread(target=self._drain_stdout, name="mock-stdout", daemon=True)
                self._stdout_thread.start()
                return
        self.stop()
        raise RuntimeError(f"implant-mock did not start: {self.lines} {''.join(self._stderr)}")

    def _take(self, line: str) -> None:
        self.lines.append(line.rstrip("\n"))
        match = _DEVICE_LINE.match(line)
        if match:
            d = match.groupdict()
            self.devices[d["name"]] = MockedDevice(d["name"], d["kind"], d["serial"], d["port"], Path(d["key"]))

    def _drain_stdout(self) -> None:
        for line in self.proc.stdout:
            self._take(line)

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        """What the process wrote to stderr so far."""
        return "".join(self._stderr)

    def kill9(self) -> None:
        """SIGKILL: no chance to save or clean up."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close_pipes()

    def _close_pipes(self) -> None:
        for thread in (self._stderr_thread, self._stdout_thread):
            if thread is not None:
                thread.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if not pipe.closed:
                pipe.close()

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; kill if it does not end in time. Returns the exit code.

        Afterwards ``lines`` holds everything it printed, its last words (the stop line) included.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._close_pipes()
        return self.proc.returncode
