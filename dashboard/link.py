"""``DeviceLink``: the single owner of one device connection, on its own thread.

The link thread connects, identifies, opens the session, then polls status every ``poll_s``,
copies the device's event log into the store without gaps, takes pushed events to react faster,
and runs programming commands handed to it by ``submit()``, so no second thread ever touches the
port. On a link failure it marks the device OFFLINE, records the reason as the technical alarm and
reconnects with exponential backoff (0.5 s doubling to a 30 s cap, docs/security.md R13). ``snapshot()``
is cheap, thread-safe and never waits for the link thread; it computes the age of the last good
status itself, so telemetry turns STALE with a technical alarm even while the thread is blocked.

Event-log cursor invariant: the store holds this device's events 1..cursor-1 without a gap, so
``store.last_event_seq(name) + 1`` is always a safe place to resume, even after the dashboard
restarts (entries the device dropped before they were read are logged as lost). Pushed events
are stored only when they extend that run; anything else is read from the device's log, which
stays the source of truth. A device log behind the cursor (a wiped or replaced device) is read
again from its first entry. The link never logs keys or tags.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from dataclasses import field as dc_field
from enum import Enum
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from protocols.client import DeviceClient
from protocols.codec import to_json
from protocols.errors import (
    AuthError,
    CodecError,
    CommandNotHandled,
    CommandUnresolved,
    DeviceRejected,
    ErrorCode,
    PairingKeyError,
    ProtocolError,
    SchemaMismatch,
)
from protocols.framing import Frame
from protocols.messages import (
    DiaryRecord,
    EventRecord,
    IdentifyReply,
    IdentifyRequest,
    Message,
    PumpStatus,
    ScsStatus,
    SessionClose,
    SessionConfirm,
    SessionOpen,
)

from .commands import LINK, UNKNOWN, CommandResult, audit_text, describe, outcome, settle, touched_fields
from .diary_copy import DiaryCopy

if TYPE_CHECKING:
    from .link_pool import LinkPool

log = logging.getLogger(__name__)

Status = ScsStatus | PumpStatus
Connect = Callable[..., DeviceClient]


class Store(Protocol):
    """What the link writes to (``dashboard.store.HistoryStore`` provides it; safe from any thread)."""

    def add_status(self, device: str, status: Status, received_at_s: float) -> None: ...

    def add_events(self, device: str, events: list[EventRecord]) -> None: ...

    def last_event_seq(self, device: str) -> int: ...

    def add_diary(self, device: str, entries: list[DiaryRecord]) -> None: ...

    def last_diary_seq(self, device: str) -> int: ...

    def add_audit(
        self,
        user: str,
        role: str,
        device: str,
        action: str,
        before: dict[str, Any],
        after: dict[str, Any],
        result: str,
        command_id: int | None,
    ) -> int: ...


PAGE_SIZE = 8  # event-log entries per read (the protocol's largest page)
_SLICE_S = 0.1  # longest wait for pushes before the command queue is looked at again
_STOP_GRACE_S = 0.3  # stop() lets a running exchange finish this long before aborting it
_ABORT_JUMP_S = 1e6  # how far each reading of the client's clock jumps after an abort
_IN_FLIGHT_WAIT_S = 30.0  # submit() waits this much more for a command already on the wire
_SESSION_MESSAGES = (IdentifyRequest, SessionOpen, SessionConfirm, SessionClose)
_PERMANENT = (SchemaMismatch, PairingKeyError, AuthError)  # retrying soon would only repeat them


class LinkState(Enum):
    """What the dashboard shows about a link."""

    CONNECTING = "connecting"
    ONLINE = "online"
    STALE = "stale"
    OFFLINE = "offline"


@dataclass(frozen=True)
class LinkSnapshot:
    """One consistent view of a link, taken by ``DeviceLink.snapshot()``."""

    name: str
    url: str
    state: LinkState
    identity: IdentifyReply | None
    status: Status | None
    status_received_at: float | None  # link clock (monotonic) of the last good status
    age_s: float | None  # how old that status is; None before the first one
    last_seen_wall: float | None  # epoch seconds of the last good status
    rtt_ms: float | None
    counters: dict[str, int]  # LinkStats plus requests/retries/timeouts/rejected/reopened, over all connections
    technical_alarm: str | None
    reconnects: int
    next_retry_in_s: float | None
    session_open: bool
    last_event_seq: int | None  # newest event stored without a gap before it


def backoff_delays(initial: float, cap: float) -> Iterator[float]:
    """``initial``, doubling each time, never above ``cap``: 0.5, 1, 2, 4, … 30, 30, …"""
    delay = initial
    while True:
        yield min(delay, cap)
        delay = min(delay * 2, cap)


@dataclass(eq=False)
class _Pending:
    command: Message
    user: str
    role: str
    state: str = "queued"  # -> "taken" by the link thread, or "cancelled" by submit(); under DeviceLink._lock
    result: CommandResult | None = None
    done: threading.Event = dc_field(default_factory=threading.Event)


class DeviceLink:
    """The one owner of a device's port: poller, event backfill and command runner on one thread.

    ``connect(url, key_file, clock=..., trace=...)`` must return a ``DeviceClient`` (or an object
    with its methods); the link passes its own clock (so ``stop()`` can cut a blocked exchange
    short) and a trace hook (to learn each command's id for the audit log). ``clock`` times the
    snapshot (ages, retry countdown); ``sleep(delay)``, for tests, replaces the wait between
    attempts, which otherwise wakes at once for ``stop()`` and refuses commands meanwhile.
    ``stop()`` cannot cut short a ``connect()`` blocked in the OS (a ``socket://`` connect).
    """

    def __init__(
        self,
        name: str,
        url: str,
        key_file: str | os.PathLike[str] | None,
        store: Store,
        *,
        poll_s: float = 1.0,
        stale_after_s: float = 5.0,
        backoff: tuple[float, float] = (0.5, 30.0),
        connect: Connect = DeviceClient.connect,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        pool: LinkPool | None = None,
    ) -> None:
        self.name, self.url, self.key_file, self.store = name, url, key_file, store
        self.pool = pool
        self.poll_s, self.stale_after_s, self.backoff = poll_s, stale_after_s, backoff
        self._connect, self._clock, self._sleep = connect, clock, sleep
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._abort = threading.Event()
        self._wake = threading.Event()
        self._commands: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = False
        self._finished = threading.Event()  # set by the last step: session closed, port closed, queue refused
        self._stepping: threading.Thread | None = None  # the thread inside _step() now, if any
        # Step state (only the thread running a step touches it): the client, when to poll, the backoff.
        self._client: DeviceClient | None = None
        self._next_poll = 0.0
        self._retry_deadline: float | None = None
        self._delays = backoff_delays(*backoff)
        self._sessions_before = 0
        self._polled_last = False
        self._tx_ids: dict[int, int] = {}
        self._abort_jumps = 0
        # Commands sent whose fate the device could not be asked about yet; settled after reconnecting.
        self._unresolved: list[tuple[_Pending, CommandUnresolved]] = []
        # Link-thread state (the event-log cursor and what the device last said about its log).
        self._cursor: int | None = None
        self._diary = DiaryCopy(name, store)  # the patient's diary, copied like the event log (SPEC 4.7)
        self._device_last_seq = 0
        # Shared state, read by snapshot() under _lock.
        self._state = LinkState.CONNECTING
        self._identity: IdentifyReply | None = None
        self._status: Status | None = None
        self._status_at: float | None = None
        self._status_wall: float | None = None
        self._rtt_ms: float | None = None
        self._base_counters: dict[str, int] = {}
        self._client_counters: dict[str, int] = {}
        self._error: str | None = None
        self._reconnects = 0
        self._sessions = 0
        self._retry_at: float | None = None
        self._session_open = False
        self._started_at: float | None = None
        self._stored_seq: int | None = None

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> DeviceLink:
        """Start the link (once): on its own thread ``link-<name>``, or handed to its ``pool``."""
        with self._lock:
            if self._started:
                if self._stop.is_set():
                    raise RuntimeError(f"link {self.name} was stopped: create a new one")
                return self
            self._started = True
            self._started_at = self._clock()
            if self.pool is None:
                self._thread = threading.Thread(target=self._run, name=f"link-{self.name}", daemon=True)
        if self._thread is not None:
            self._thread.start()
        else:
            assert self.pool is not None
            self.pool.add(self)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """End the link, closing the session and the port. Prompt (well under 1 s), idempotent."""
        self._stop.set()
        self._notify()
        if not self._started or self._stepping is threading.current_thread():
            self._refuse_queued("link stopped")
            return
        if not self._finished.wait(_STOP_GRACE_S):  # blocked in an exchange: make every client deadline pass now
            self._abort.set()
            self._finished.wait(timeout_s)
        if self._thread is not None:
            self._thread.join(timeout_s if self._finished.is_set() else 0.1)
        if not self._finished.is_set():
            log.error("%s: link did not stop within %.1f s", self.name, _STOP_GRACE_S + timeout_s)
        self._refuse_queued("link stopped")

    def _notify(self) -> None:
        """Have the link look at its command queue and stop flag now (not at its next poll)."""
        self._wake.set()
        if self.pool is not None:
            self.pool.kick(self)

    def __enter__(self) -> DeviceLink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True while the link is started, not finished and not asked to stop."""
        alive = self._thread.is_alive() if self._thread is not None else self._started
        return alive and not self._finished.is_set() and not self._stop.is_set()

    # --- reading ---------------------------------------------------------------------------------
    def snapshot(self) -> LinkSnapshot:
        """The link as the UI should show it now (a lock and a few copies; never waits for I/O)."""
        now = self._clock()
        with self._lock:
            status_at, error, state, retry_at = self._status_at, self._error, self._state, self._retry_at
            counters = dict(self._base_counters)
            for key, value in self._client_counters.items():
                counters[key] = counters.get(key, 0) + value
            started, identity, status = self._started_at, self._identity, self._status
            wall, rtt, reconnects, session_open = self._status_wall, self._rtt_ms, self._reconnects, self._session_open
            stored_seq = self._stored_seq
        age = None if status_at is None else max(0.0, now - status_at)
        since = status_at if status_at is not None else started
        silence = None if since is None else max(0.0, now - since)
        stale = silence is not None and silence > self.stale_after_s
        if stale and state is not LinkState.OFFLINE:
            state = LinkState.STALE
        alarm = error
        if stale:
            no_data = f"no data from {self.name} for {silence:.0f} s"
            alarm = no_data if alarm is None else f"{alarm} ({no_data})"
        return LinkSnapshot(
            name=self.name,
            url=self.url,
            state=state,
            identity=identity,
            status=status,
            status_received_at=status_at,
            age_s=age,
            last_seen_wall=wall,
            rtt_ms=rtt,
            counters=counters,
            technical_alarm=alarm,
            reconnects=reconnects,
            next_retry_in_s=None if retry_at is None else max(0.0, retry_at - now),
            session_open=session_open,
            last_event_seq=stored_seq,
        )

    # --- commands --------------------------------------------------------------------------------
    def submit(self, command: Message, user: str, role: str, timeout_s: float = 10.0) -> CommandResult:
        """Run ``command`` on the link thread; audit it with before/after; return the reply or refusal.

        The caller checks the role: this only records it. A command not taken by the link thread
        within ``timeout_s`` is withdrawn unsent (and audited as such); one already on the wire is
        waited for, since the client's retries bound it.
        """
        if not isinstance(command, Message) or isinstance(command, _SESSION_MESSAGES):
            raise ValueError(f"{type(command).__name__} is not a command the link can submit")
        pending = _Pending(command, user, role)
        if not self.running:
            return self._finish_unsent(pending, "link not running")
        self._commands.put(pending)
        self._notify()
        if not self.running:  # stopped meanwhile: the thread may have drained the queue already
            self._refuse_queued("link stopped")
        if pending.done.wait(timeout_s):
            assert pending.result is not None
            return pending.result
        with self._lock:
            cancelled = pending.state == "queued"
            if cancelled:
                pending.state = "cancelled"
        if cancelled:
            return self._finish_unsent(pending, f"not sent within {timeout_s:g} s: the link is busy or reconnecting")
        if pending.done.wait(_IN_FLIGHT_WAIT_S) and pending.result is not None:
            return pending.result
        return CommandResult(False, None, UNKNOWN, "no result yet, so it may have been applied; the audit log will say")

    def _finish_unsent(self, pending: _Pending, why: str) -> CommandResult:
        with self._lock:
            pending.state = "cancelled"
            before = touched_fields(self._status, pending.command)
        audit_id = self._audit(pending, before, {}, f"not sent: {why}", None)
        result = CommandResult(False, None, LINK, f"not sent: {why}", before=before, audit_id=audit_id)
        pending.result = result
        pending.done.set()
        return result

    def _refuse_queued(self, why: str) -> None:
        """Answer every waiting command with a refusal (the link cannot send now)."""
        while True:
            try:
                pending = self._commands.get_nowait()
            except queue.Empty:
                return
            if self._take(pending):
                self._finish_unsent(pending, why)

    def _take(self, pending: _Pending) -> bool:
        with self._lock:
            if pending.state != "queued":
                return False
            pending.state = "taken"
            return True

    def _run_commands(self, client: DeviceClient) -> None:
        while not self._stop.is_set():
            try:
                pending = self._commands.get_nowait()
            except queue.Empty:
                return
            if self._take(pending):
                self._execute(client, pending)

    def _execute(self, client: DeviceClient, pending: _Pending) -> None:
        """Send one command, read the status back, audit; re-raise a link failure after answering."""
        command = pending.command
        with self._lock:
            before = touched_fields(self._status, command)
        self._tx_ids.clear()
        reply: Message | None = None
        failure: BaseException | None = None
        try:
            reply = client.request(command)
        except CommandUnresolved as lost:
            reply, failure = settle(client, lost)  # never report a command that may have been applied as failed
        except (DeviceRejected, ProtocolError, OSError) as exc:
            failure = exc
        command_id = self._tx_ids.get(int(command.TYPE))
        if isinstance(failure, CommandUnresolved):
            command_id = failure.command_id
            self._unresolved = [*self._unresolved[-15:], (pending, failure)]  # the device remembers 16
        after: dict[str, Any] = {}
        link_down: BaseException | None = None
        if failure is None or isinstance(failure, DeviceRejected | CommandNotHandled):
            try:
                status = client.status()
                self._record_status(status, client)
                after = touched_fields(status, command)
            except (ProtocolError, OSError) as exc:
                link_down = exc
        elif not isinstance(failure, CodecError) or command_id is not None:
            link_down = failure
        result = outcome(reply, failure, command_id, link_down, before, after)
        audit_id = self._audit(pending, before, after, audit_text(result, link_down), command_id)
        pending.result = replace(result, audit_id=audit_id)
        pending.done.set()
        log.info("%s: %s by %s (%s): %s", self.name, type(command).__name__, pending.user, pending.role, result.message)
        if link_down is not None:
            raise link_down

    def _settle_unresolved(self, client: DeviceClient) -> None:
        """Ask the device about each command whose fate was unknown, and audit what it answers."""
        while self._unresolved:
            pending, lost = self._unresolved[0]
            reply, failure = settle(client, lost)
            if failure is lost:
                raise lost  # still cannot ask: the link is failing again
            self._unresolved.pop(0)
            result = outcome(reply, failure, lost.command_id, None, {}, {})
            text = f"settled after its reply was lost: {audit_text(result, None)}"
            self._audit(pending, {}, {}, text, lost.command_id)
            log.info("%s: %s (command 0x%08x) %s", self.name, type(lost.request).__name__, lost.command_id, text)

    def _audit(
        self, pending: _Pending, before: dict[str, Any], after: dict[str, Any], text: str, command_id: int | None
    ) -> int | None:
        action = f"{type(pending.command).__name__} {json.dumps(to_json(pending.command), separators=(',', ':'))}"
        try:
            return self.store.add_audit(pending.user, pending.role, self.name, action, before, after, text, command_id)
        except Exception:
            log.exception("%s: audit entry for %s could not be written", self.name, type(pending.command).__name__)
            return None

    # --- the link's work, one step at a time -----------------------------------------------------
    def _run(self) -> None:
        """The link's own thread: steps back to back; between retries, sleeps until due or woken."""
        while True:
            due = self._step(_SLICE_S)
            if due is None:
                return
            if self._client is None:  # waiting to reconnect: submit() and stop() wake it
                remaining = due - time.monotonic()
                if remaining > 0:
                    self._wake.wait(remaining)
                self._wake.clear()

    def _step(self, max_wait_s: float) -> float | None:
        """Do the link's next piece of work; return when (``time.monotonic``) it wants the next, None when done.

        A piece is a connect with its handshake, or one poll, one page of the event log or one look
        for pushes (waiting up to ``max_wait_s`` for them: a pool passes 0 and waits on the port's
        descriptor instead), after the queued commands. One thread at a time runs a link's steps.
        """
        self._stepping = threading.current_thread()
        try:
            if self._stop.is_set():
                self._finish()
                return None
            if self._client is not None:
                return self._serve_step(max_wait_s)
            if self._retry_deadline is not None:
                self._refuse_queued(f"link offline: {self._error}")
                if time.monotonic() < self._retry_deadline:
                    return self._retry_deadline
                self._end_wait()
            return self._connect_step()
        except Exception:  # a fault of the link's own (connect and exchange failures are handled above)
            log.exception("%s: link failed; it stops", self.name)
            with self._lock:
                self._error = "link failed: see the dashboard's log"
            self._finish()
            return None
        finally:
            self._stepping = None

    def wait_fd(self) -> int | None:
        """The descriptor a pool waits on for this link's pushes (None: none, or not connected)."""
        client = self._client
        fileno = getattr(client, "fileno", None) if client is not None else None
        return fileno() if fileno is not None else None

    def _connect_step(self) -> float:
        """Connect, identify, open the session, settle what a lost link left open; then poll at once."""
        self._sessions_before = self._sessions
        try:
            self._client = self._connect(self.url, self.key_file, clock=self._client_clock, trace=self._trace)
            with self._lock:
                self._state = LinkState.CONNECTING
            identity = self._client.identify()
            self._client.open_session()
            self._begin(identity)
            self._settle_unresolved(self._client)
        except Exception as exc:  # the link must outlive any failure; a link error is the usual one
            return self._fail(exc)
        self._next_poll = time.monotonic()
        return self._next_poll

    def _serve_step(self, max_wait_s: float) -> float:
        """Run queued commands, then poll status when due, else read a page of the log, else take pushes."""
        client = self._client
        assert client is not None
        try:
            self._run_commands(client)
            now = time.monotonic()
            if self._stop.is_set():
                return now
            behind = self._device_last_seq != self._next_seq() - 1
            # A late poll does not starve the log: when both are due, they take turns.
            if now >= self._next_poll and not (behind and self._polled_last):
                self._record_status(client.status(), client)
                self._next_poll = now + self.poll_s
                self._polled_last = True
            elif behind:
                self._read_page(client)
                self._polled_last = False
            elif self._diary.behind:
                self._diary.read_page(client)
                self._polled_last = False
            else:
                self._take_pushes(client.poll_pushes(min(max_wait_s, self._next_poll - now)))
                if self._diary.enabled:
                    self._diary.take_pushes(list(client.diary_pushes))
                    client.diary_pushes.clear()
        except Exception as exc:
            return self._fail(exc)
        more = self._device_last_seq != self._next_seq() - 1 or self._diary.behind
        if more or not self._commands.empty():
            return time.monotonic()  # more to read or to send: next in line again at once
        return self._next_poll

    def _fail(self, exc: BaseException) -> float:
        """A failed connect or exchange: technical alarm, port closed, and when to try again."""
        if self._sessions > self._sessions_before:
            self._delays = backoff_delays(*self.backoff)  # it worked for a while: start again at 0.5 s
        delay = self._failed(exc, self._delays)
        self._close(self._client)
        self._client = None
        now = time.monotonic()
        if self._stop.is_set():
            return now
        if self._sleep is not None:
            self._sleep(delay)
            self._refuse_queued(f"link offline: {self._error}")
            self._end_wait()
            return time.monotonic()
        self._retry_deadline = now + delay
        self._refuse_queued(f"link offline: {self._error}")
        return self._retry_deadline

    def _end_wait(self) -> None:
        self._retry_deadline = None
        with self._lock:
            self._retry_at = None
            if self._state is LinkState.OFFLINE:
                self._state = LinkState.CONNECTING

    def _finish(self) -> None:
        """The last step: close the session and the port, refuse what is queued, and say so."""
        try:
            self._close(self._client)
        finally:
            self._client = None
            with self._lock:
                self._state, self._session_open, self._retry_at = LinkState.OFFLINE, False, None
                self._error = self._error or "link stopped"
            self._refuse_queued("link stopped")
            self._finished.set()

    def _begin(self, identity: IdentifyReply) -> None:
        stored_next = self.store.last_event_seq(self.name) + 1
        with self._lock:
            previous = self._identity
            self._identity = identity
            self._session_open = True
            self._sessions += 1
            if self._sessions > 1:
                self._reconnects += 1
        self._cursor = stored_next if self._cursor is None else min(self._cursor, stored_next)
        if previous is not None and previous.serial != identity.serial:
            log.warning("%s: now a different device (serial changed): reading its whole event log", self.name)
            self._cursor = 1
        self._device_last_seq = self._next_seq() - 1
        self._diary.begin(identity)
        log.info(
            "%s: session open (%s %s, firmware %s)", self.name, identity.kind.name, identity.model, identity.firmware
        )

    def _next_seq(self) -> int:
        return self._cursor if self._cursor is not None else 1

    def _record_status(self, status: Status, client: DeviceClient) -> None:
        received = self._clock()
        wall = time.time()
        self.store.add_status(self.name, status, wall)
        counters = client.counters()
        with self._lock:
            self._status, self._status_at, self._status_wall = status, received, wall
            if not self._abort.is_set():  # an aborted client's clock is not a stopwatch
                self._rtt_ms = client.stats.last_rtt_s * 1000.0
            self._client_counters = counters
            self._state, self._error, self._retry_at = LinkState.ONLINE, None, None
            self._session_open = client.session is not None
        self._device_last_seq = status.last_event_seq
        self._diary.saw_status(status)

    def _read_page(self, client: DeviceClient) -> None:
        """One page of the event log from the cursor on (or a restart of the cursor)."""
        cursor = self._next_seq()
        page = client.read_events(cursor, PAGE_SIZE)
        self._device_last_seq = page.last_seq
        if page.last_seq < cursor - 1:
            log.warning(
                "%s: the device's event log restarted (its newest is #%d, we hold up to #%d): re-reading from #%d",
                self.name,
                page.last_seq,
                cursor - 1,
                page.first_seq,
            )
            self._cursor = page.first_seq
            with self._lock:
                self._stored_seq = page.first_seq - 1
            return
        if not page.entries:
            log.warning("%s: the device has no entries #%d..#%d any more", self.name, cursor, page.last_seq)
            self._cursor = page.last_seq + 1
            return
        if page.entries[0].seq > cursor:
            log.warning("%s: events #%d..#%d left the device's log unread", self.name, cursor, page.entries[0].seq - 1)
        self._store_events(list(page.entries))

    def _take_pushes(self, pushes: list[EventRecord]) -> None:
        """Store pushed events that extend the stored run; a gap is left for the log read to fill."""
        run: list[EventRecord] = []
        for event in sorted(pushes, key=lambda e: e.seq):
            if event.seq == self._next_seq() + len(run):
                run.append(event)
            self._device_last_seq = max(self._device_last_seq, event.seq)
        if run:
            self._store_events(run)

    def _store_events(self, events: list[EventRecord]) -> None:
        self.store.add_events(self.name, events)
        self._cursor = events[-1].seq + 1
        with self._lock:
            self._stored_seq = events[-1].seq

    def _failed(self, exc: BaseException, delays: Iterator[float]) -> float:
        """Record a failure as the technical alarm; return the delay before the next attempt."""
        text = describe(exc)
        permanent = isinstance(exc, _PERMANENT) or (
            isinstance(exc, DeviceRejected) and exc.code in (ErrorCode.BAD_MAC, ErrorCode.LOCKED_OUT)
        )
        delay = self.backoff[1] if permanent else next(delays)
        if isinstance(exc, DeviceRejected) and exc.retry_after_ms:
            delay = max(delay, exc.retry_after_ms / 1000.0)
        with self._lock:
            self._state, self._error, self._session_open = LinkState.OFFLINE, text, False
            self._retry_at = self._clock() + delay
        if self._stop.is_set():
            log.debug("%s: ended while stopping: %s", self.name, text)
        elif isinstance(exc, ProtocolError | OSError):
            log.warning("%s: link down: %s; retry in %.1f s", self.name, text, delay)
        else:
            log.error("%s: link thread failed; retry in %.1f s", self.name, delay, exc_info=exc)
        return delay

    def _close(self, client: DeviceClient | None) -> None:
        if client is None:
            return
        counters = client.counters()
        with self._lock:
            for key, value in counters.items():
                self._base_counters[key] = self._base_counters.get(key, 0) + value
            self._client_counters = {}
            self._session_open = False
        try:
            client.close()
        except Exception as exc:  # closing is best effort: the port may already be gone
            log.debug("%s: close failed: %s", self.name, exc)

    def _client_clock(self) -> float:
        """The client's clock: real time, until stop() aborts; then each reading jumps past every deadline."""
        if not self._abort.is_set():
            return time.monotonic()
        self._abort_jumps += 1
        return time.monotonic() + _ABORT_JUMP_S * self._abort_jumps

    def _trace(self, direction: str, item: Frame | ProtocolError) -> None:
        if direction == "tx" and isinstance(item, Frame):
            self._tx_ids[item.msg_type] = item.command_id
