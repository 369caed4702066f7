"""The log-in throttle: after a few failures, attempts by that user name or from that address wait.

Owns the failure counters and the delays (docs/security.md R18, password guessing). Two counters per
attempt, one keyed by the user name as typed and one by the client address, so neither guessing
one account from many addresses nor many accounts from one address goes fast. After
``free_failures`` failures on a key, the next attempt on it is refused until ``first_delay_s``
after the last failure; each further failure doubles that delay, up to ``max_delay_s``. A refused
attempt never reaches the password check and does not count as a failure (so it cannot push the
wait further out). A success clears the user name's counter; the address keeps its count (a
guesser with one account of their own must not reset it by logging in to it). A key with no
failure for ``forget_after_s`` starts again from zero.

Counting is atomic: :meth:`LoginThrottle.begin` counts the attempt as a failure before the password
is checked and :meth:`LoginThrottle.succeeded` takes it back, so parallel requests cannot all slip
in before the first failure is recorded.

The client address is what the server sees (``request.remote_addr``); behind a reverse proxy every
client shares the proxy's address, and ``X-Forwarded-For`` is not trusted. Counters live in this
process's memory, at most ``max_keys`` per kind (oldest dropped first), and hold no password.
Must not import Flask, Dash, the store, the device link or ``device_mock``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_FREE_FAILURES = 5  # [E] enough for a few typos, far too few for guessing
DEFAULT_FIRST_DELAY_S = 1.0
DEFAULT_MAX_DELAY_S = 300.0  # [E] 5 min: from the 14th failure on, 12 guesses an hour per key
DEFAULT_FORGET_AFTER_S = 3600.0  # [E] an hour without failure forgets the count
DEFAULT_MAX_KEYS = 10_000  # [E] per kind; a few MB at most
MAX_KEY_CHARS = 256  # a longer user name is counted by its first 256 characters


@dataclass(frozen=True)
class Refusal:
    """An attempt refused by the throttle: which counter refused it and how long until the next may try."""

    kind: str  # "user" or "address"
    failures: int
    wait_s: float

    def message(self) -> str:
        """The sentence the log-in page shows."""
        who = "this user name" if self.kind == "user" else "this address"
        return f"Too many failed log-ins for {who}. Try again in {retry_text(self.wait_s)}."


def retry_text(wait_s: float) -> str:
    """``wait_s`` rounded up, in words: ``1 second``, ``16 seconds``, ``4 min 16 s``."""
    seconds = max(1, math.ceil(wait_s))
    if seconds < 120:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} minutes"


@dataclass
class _Count:
    failures: int
    last_at: float


class LoginThrottle:
    """Failure counters by user name and by client address, and the wait they impose. Thread-safe.

    Defaults: ``free_failures=5``, ``first_delay_s=1``, ``max_delay_s=300`` (5 min),
    ``forget_after_s=3600``, ``max_keys=10000``; ``clock`` is the time source (seconds).
    """

    def __init__(
        self,
        *,
        free_failures: int = DEFAULT_FREE_FAILURES,
        first_delay_s: float = DEFAULT_FIRST_DELAY_S,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        forget_after_s: float = DEFAULT_FORGET_AFTER_S,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free_failures < 1:
            raise ValueError(f"free_failures must be at least 1, not {free_failures}")
        if not 0 < first_delay_s <= max_delay_s:
            raise ValueError(f"need 0 < first_delay_s ({first_delay_s}) <= max_delay_s ({max_delay_s})")
        if forget_after_s < max_delay_s:
            raise ValueError(f"forget_after_s ({forget_after_s}) must be at least max_delay_s ({max_delay_s})")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys}")
        self.free_failures = free_failures
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, OrderedDict[str, _Count]] = {"user": OrderedDict(), "address": OrderedDict()}

    def delay_s(self, failures: int) -> float:
        """How long after its last failure a key with ``failures`` failures waits (0 below the threshold)."""
        if failures < self.free_failures:
            return 0.0
        return min(self.first_delay_s * 2.0 ** min(failures - self.free_failures, 64), self.max_delay_s)

    def begin(self, username: str, address: str) -> Refusal | None:
        """Start an attempt: a :class:`Refusal` if either key must wait, else the attempt is counted as failed.

        Call :meth:`succeeded` if the password then matches.
        """
        keys = {"user": username[:MAX_KEY_CHARS], "address": address}
        now = self._clock()
        with self._lock:
            for kind, key in keys.items():
                count = self._live(kind, key, now)
                if count is not None:
                    wait = count.last_at + self.delay_s(count.failures) - now
                    if wait > 0:
                        return Refusal(kind, count.failures, wait)
            for kind, key in keys.items():
                count = self._live(kind, key, now) or _Count(0, now)
                table = self._counts[kind]
                table[key] = _Count(count.failures + 1, now)
                table.move_to_end(key)
                while len(table) > self.max_keys:
                    table.popitem(last=False)
        return None

    def succeeded(self, username: str, address: str) -> None:
        """The attempt :meth:`begin` counted was a success: clear the user name, take it back from the address."""
        with self._lock:
            self._counts["user"].pop(username[:MAX_KEY_CHARS], None)
            count = self._counts["address"].get(address)
            if count is not None:
                count.failures -= 1
                if count.failures <= 0:
                    del self._counts["address"][address]

    def failures(self, kind: str, key: str) -> int:
        """The failures counted now on ``key`` (``kind`` is ``user`` or ``address``)."""
        with self._lock:
            count = self._live(kind, key[:MAX_KEY_CHARS] if kind == "user" else key, self._clock())
            return count.failures if count is not None else 0

    def _live(self, kind: str, key: str, now: float) -> _Count | None:
        table = self._counts[kind]
        count = table.get(key)
        if count is not None and now - count.last_at >= self.forget_after_s:
            del table[key]
            return None
        return count
