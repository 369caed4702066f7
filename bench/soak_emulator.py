"""The soak run's emulator (docs/security.md R24): ``implant-mock`` as a subprocess, its ``/proc`` figures and scenario.

``Emulator`` starts ``implant-mock``, parses the device lines it prints and stops it with SIGTERM
(SIGKILL if it does not end); ``children.read_proc`` samples a process's figures.
``DeviceNoise``, ``disconnect_starts`` and ``write_scenario`` make the scenario file the emulator
plays: line noise on what the device sends for the whole run, and periodic disconnects.
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from children import DEVICE_LINE, Child, mock_ready

START_ISO = "2026-01-01T00:00:00Z"
START_MS = int(dt.datetime.fromisoformat(START_ISO.replace("Z", "+00:00")).timestamp() * 1000)


# --- the emulator subprocess ---------------------------------------------------------------------
class Emulator(Child):
    """``implant-mock`` as a subprocess: started, its device lines parsed, stopped with SIGTERM then SIGKILL."""

    def __init__(self, command: list[str], timeout_s: float = 30.0) -> None:
        super().__init__(command, mock_ready, timeout_s)
        self.devices = [m.groupdict() for line in self.lines if (m := DEVICE_LINE.match(line))]


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
