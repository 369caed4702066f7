"""The receiver's wake-up budget (docs/security.md R10), sans-IO: time comes in as ``now``.

A device pays battery for every frame it wakes up to examine, so an attacker who can reach the
radio could drain it with correctly formatted frames (CVE-2017-12714). ``WakeBudget`` bounds that
cost: in each window of ``window_s`` seconds of the link clock (consecutive slices,
``floor(now / window_s)``) at most ``limit`` frames are admitted; the rest are refused, and the
caller drops them without further work. Frames of the verified active session never ask the budget
(``endpoint.py`` decides that), so a paired programmer is not starved by a flood.

A *flood episode* starts with the first refused frame and ends once one whole window has passed
without a refusal; ``roll`` reports the end, with what the episode dropped, once.
"""

from __future__ import annotations

import math
from typing import NamedTuple

WINDOW_S = 1.0  # R10 counts frames per second


class FloodEpisode(NamedTuple):
    """A finished flood: frames dropped and how long it lasted (first to last drop, whole windows)."""

    dropped: int
    seconds: float


class WakeBudget:
    """Admits at most ``limit`` frames per window and tracks flood episodes."""

    def __init__(self, limit: int, window_s: float = WINDOW_S) -> None:
        if limit < 1:
            raise ValueError(f"a wake-up budget admits at least 1 frame per window, not {limit}")
        if window_s <= 0:
            raise ValueError(f"a budget window lasts longer than 0 s, not {window_s}")
        self.limit = limit
        self.window_s = window_s
        self._window = -math.inf  # index of the current window
        self.admitted = 0  # frames admitted in the current window
        self.flooding = False
        self.episode_dropped = 0
        self._first_drop_window = 0.0
        self._last_drop_window = 0.0

    def admit(self, now: float) -> bool:
        """True if a frame arriving at ``now`` may be processed; False: drop it (counted in the episode)."""
        index = self._index(now)
        if index != self._window:
            self._window, self.admitted = index, 0
        if self.admitted < self.limit:
            self.admitted += 1
            return True
        if not self.flooding:
            self.flooding, self.episode_dropped, self._first_drop_window = True, 0, index
        self.episode_dropped += 1
        self._last_drop_window = index
        return False

    def roll(self, now: float) -> FloodEpisode | None:
        """The episode that ended by ``now`` (a whole window without a drop followed its last drop), once."""
        if not self.flooding or self._index(now) < self._last_drop_window + 2:
            return None
        self.flooding = False
        windows = self._last_drop_window - self._first_drop_window + 1
        return FloodEpisode(self.episode_dropped, windows * self.window_s)

    def _index(self, now: float) -> float:
        return math.floor(now / self.window_s)
