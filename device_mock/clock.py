"""Device time: a clock protocol, the simulated clock with a speed factor, and a manual clock.

Device models never read a clock; the device loop reads one of these and calls
``model.advance_to(now_ms)``. Times are integers in milliseconds since the Unix epoch (the unit
of every ``_ms`` wire field). The simulated clock maps the link's monotonic wall time to device
time at ``speed`` device seconds per wall second; changing speed or setting the time re-anchors it
so device time never jumps unless set explicitly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

MIN_SPEED = 1.0
MAX_SPEED = 10_000_000.0


class Clock(Protocol):
    """Anything that tells device time."""

    def now_ms(self) -> int:
        """Current device time, ms since epoch."""
        ...

    @property
    def speed(self) -> float:
        """Device seconds per wall second."""
        ...


class SimClock:
    """Device time running ``speed`` times faster than the wall clock, from ``start_ms``."""

    def __init__(self, start_ms: int, speed: float = 1.0, wall: Callable[[], float] = time.monotonic) -> None:
        self._check_speed(speed)
        self._wall = wall
        self._anchor_wall = wall()
        self._anchor_ms = start_ms
        self._speed = speed

    @staticmethod
    def _check_speed(speed: float) -> None:
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"speed {speed:g} outside {MIN_SPEED:g}..{MAX_SPEED:g}")

    @property
    def speed(self) -> float:
        """Device seconds per wall second."""
        return self._speed

    def now_ms(self) -> int:
        """Current device time, ms since epoch."""
        return self._anchor_ms + int((self._wall() - self._anchor_wall) * self._speed * 1000.0)

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on, without a jump in device time."""
        self._check_speed(speed)
        self._reanchor(self.now_ms())
        self._speed = speed

    def set_time(self, time_ms: int) -> None:
        """Set device time (the programmer's clock-set command)."""
        self._reanchor(time_ms)

    def _reanchor(self, time_ms: int) -> None:
        self._anchor_wall = self._wall()
        self._anchor_ms = time_ms


class ManualClock:
    """A clock that moves only when told: for tests and for stepping through scenarios."""

    def __init__(self, start_ms: int, speed: float = 1.0) -> None:
        self._now = start_ms
        self._speed = speed

    @property
    def speed(self) -> float:
        """Nominal speed, reported to clients."""
        return self._speed

    def now_ms(self) -> int:
        """Current device time, ms since epoch."""
        return self._now

    def advance(self, ms: int) -> None:
        """Move device time forward by ``ms``."""
        if ms < 0:
            raise ValueError("a clock does not run backwards")
        self._now += ms

    def set_time(self, time_ms: int) -> None:
        """Set device time."""
        self._now = time_ms

    def set_speed(self, speed: float) -> None:
        """Record a nominal speed."""
        self._speed = speed
