"""``LinkPool``: a few threads drive many ``DeviceLink``s, so one dashboard serves a thousand devices.

A link on its own thread blocks in its port between polls; a thousand of them are a thousand
threads. In a pool a link runs in *steps* (``DeviceLink._step``: a connect, a poll, a page of the
event log, a look for pushes, the queued commands), each on whichever worker is free, and between
steps it waits without a thread: a poller thread holds one selector (epoll: no descriptor limit)
over every connected link's port and a heap of due times, and hands a link to the workers when its
port turns readable (a push), its next poll is due, or ``kick`` says a command or a stop came.

One step of a link runs at a time, so a link still has one owner of its port at any moment and
keeps every guarantee it has on its own thread (exactly-once commands, read-back, audit, reconnect
with backoff, technical alarms). A step that blocks (a device that stopped answering: up to the
client's timeout times its tries) holds one worker, not the pool: ``workers`` bounds how many such
devices can stall at once before the others' polls are late. Only the poller touches the selector
and the heap; workers and ``kick`` post to it. Must not import Dash, Flask or ``device_mock``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import selectors
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .link import DeviceLink

log = logging.getLogger(__name__)
DEFAULT_WORKERS = 8  # enough for a few devices that stop answering at once without delaying the rest [E]
_IDLE_WAIT_S = 0.1  # longest poller sleep; also how often a link without a descriptor looks for pushes
_STOP_GRACE_S = 0.3  # as DeviceLink: a running exchange may finish this long before it is aborted


@dataclass(eq=False)
class _Slot:
    """Where a link is in the pool: waiting ("armed"), handed to the workers ("queued") or "running"."""

    state: str = "queued"
    generation: int = 0  # bumped at each arming: a timer or readiness of an older arming is stale
    kicked: bool = False  # a kick while running: run again at once after this step


class LinkPool:
    """A poller thread and ``workers`` worker threads driving every link added to it."""

    def __init__(self, workers: int = DEFAULT_WORKERS, name: str = "links") -> None:
        if workers < 1:
            raise ValueError(f"a link pool needs at least one worker, not {workers}")
        self.workers, self.name = workers, name
        self._lock = threading.Lock()
        self._slots: dict[DeviceLink, _Slot] = {}
        self._work: queue.SimpleQueue[DeviceLink | None] = queue.SimpleQueue()
        self._requests: queue.SimpleQueue[tuple[DeviceLink, int, float, int | None]] = queue.SimpleQueue()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._registered: dict[DeviceLink, int] = {}  # the poller's own: which descriptor each link waits on
        self._timers: list[tuple[float, int, DeviceLink, int]] = []
        self._seq = itertools.count()
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self.steps = 0  # steps run so far (for the bench)

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> LinkPool:
        """Start the poller and the workers (once)."""
        if self._threads:
            return self
        self._threads.append(threading.Thread(target=self._poll_loop, name=f"{self.name}-poller", daemon=True))
        for i in range(self.workers):
            self._threads.append(threading.Thread(target=self._work_loop, name=f"{self.name}-{i}", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop every link (all at once, each closing its session and port), then the threads."""
        with self._lock:
            links = list(self._slots)
        for link in links:
            link._stop.set()
            self.kick(link)
        deadline = time.monotonic() + _STOP_GRACE_S
        for link in links:
            link._finished.wait(max(0.0, deadline - time.monotonic()))
        late = [link for link in links if not link._finished.is_set()]
        for link in late:  # blocked in an exchange: make its client's deadlines pass now
            link._abort.set()
        deadline = time.monotonic() + timeout_s
        for link in late:
            if not link._finished.wait(max(0.0, deadline - time.monotonic())):
                log.error("%s: link did not stop within %.1f s", link.name, _STOP_GRACE_S + timeout_s)
        self._closing.set()
        for _ in range(self.workers):
            self._work.put(None)
        self._poke()
        for thread in self._threads:
            thread.join(timeout_s)
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> LinkPool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def threads(self) -> list[threading.Thread]:
        """The pool's threads (poller first)."""
        return list(self._threads)

    def __len__(self) -> int:
        with self._lock:
            return len(self._slots)

    # --- what links call -------------------------------------------------------------------------
    def add(self, link: DeviceLink) -> None:
        """Take ``link`` on (``DeviceLink.start`` calls this): its first step (the connect) is queued."""
        if self._closing.is_set():
            raise RuntimeError(f"link pool {self.name} is stopped")
        with self._lock:
            if link in self._slots:
                return
            self._slots[link] = _Slot()
        self._work.put(link)

    def kick(self, link: DeviceLink) -> None:
        """Run ``link``'s next step now (a command was queued, or a stop asked), not when it is due."""
        with self._lock:
            slot = self._slots.get(link)
            if slot is None:
                return
            if slot.state == "running":
                slot.kicked = True
                return
            if slot.state != "armed":
                return  # queued already
            slot.state, slot.generation = "queued", slot.generation + 1
        self._work.put(link)

    # --- workers ---------------------------------------------------------------------------------
    def _work_loop(self) -> None:
        while True:
            link = self._work.get()
            if link is None:
                return
            with self._lock:
                slot = self._slots.get(link)
                if slot is None or slot.state != "queued":
                    continue
                slot.state = "running"
            try:
                due = link._step(0.0)
            except BaseException:  # _step logs and finishes on its own faults; this is a last resort
                log.exception("%s: link step failed", link.name)
                due = None
            self.steps += 1
            self._after_step(link, slot, due)

    def _after_step(self, link: DeviceLink, slot: _Slot, due: float | None) -> None:
        now = time.monotonic()
        with self._lock:
            if due is None:
                self._slots.pop(link, None)
                slot.state = "done"
            elif slot.kicked or due <= now:
                slot.kicked, slot.state = False, "queued"
            else:
                slot.state, slot.generation = "armed", slot.generation + 1
            state, generation = slot.state, slot.generation
        if state == "queued":
            self._work.put(link)
        elif state == "armed":
            fd = link.wait_fd()
            # Without a descriptor (a socket:// or in-memory port) pushes are looked for every 0.1 s.
            self._requests.put((link, generation, due if fd is not None else min(due, now + _IDLE_WAIT_S), fd))
            self._poke()
        if state == "done":
            self._requests.put((link, -1, 0.0, None))  # drop its descriptor from the selector
            self._poke()

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (the poller will wake anyway) or closed (stopping)

    # --- the poller ------------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._closing.is_set():
            timeout = _IDLE_WAIT_S
            if self._timers:
                timeout = min(timeout, max(0.0, self._timers[0][0] - time.monotonic()))
            for key, _ in self._selector.select(timeout):
                if key.data is None:
                    self._drain_wake()
                    continue
                link, generation = key.data
                self._unregister(link)
                self._fire(link, generation)
            self._take_requests()
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                _, _, link, generation = heapq.heappop(self._timers)
                self._fire(link, generation)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _take_requests(self) -> None:
        while True:
            try:
                link, generation, due, fd = self._requests.get_nowait()
            except queue.Empty:
                return
            self._unregister(link)
            if generation < 0:
                continue
            if fd is not None:
                self._register(link, generation, fd)
            heapq.heappush(self._timers, (due, next(self._seq), link, generation))

    def _register(self, link: DeviceLink, generation: int, fd: int) -> None:
        try:
            self._selector.register(fd, selectors.EVENT_READ, (link, generation))
        except KeyError:  # the number is still mapped to a link whose port closed and whose request is to come
            previous = self._selector.get_key(fd).data
            self._selector.unregister(fd)
            if previous is not None:
                self._registered.pop(previous[0], None)
            try:
                self._selector.register(fd, selectors.EVENT_READ, (link, generation))
            except (KeyError, ValueError, OSError):
                return
        except (ValueError, OSError):  # closed meanwhile: the timer still runs the link
            return
        self._registered[link] = fd

    def _unregister(self, link: DeviceLink) -> None:
        fd = self._registered.pop(link, None)
        if fd is not None:
            try:
                self._selector.unregister(fd)
            except (KeyError, ValueError):
                pass

    def _fire(self, link: DeviceLink, generation: int) -> None:
        with self._lock:
            slot = self._slots.get(link)
            if slot is None or slot.generation != generation or slot.state != "armed":
                return  # stale: the link ran since this was armed
            slot.state = "queued"
        self._work.put(link)
