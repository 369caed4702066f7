"""One emulated device: a model, its clock, the protocol endpoint, scenario, persistence and pushes.

``Device`` is the glue between the pure model and the byte stream, and still does no I/O of its
own: ``receive(data)`` and ``tick()`` return the bytes to send; ``server.py`` moves them. Before
any request the model is advanced to the clock's device time (through the scenario, whose actions
happen at their exact device times). Requests common to every kind (status, event log, alarm
acknowledge, clock) are answered here; programming commands go to the model. Every new event-log
entry is pushed to the open session, and the state is saved before anything that reveals a new
event or a change leaves the device, so a restart never renumbers what a client has seen.

The endpoint's wake-up budget (docs/security.md R10) reaches the model here: every frame examined
outside the session is charged to the battery, and a flood raises the latching TELEMETRY_FLOOD
alarm (its event-log entry is the audit record, pushed like any other event).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from protocols.auth import AuthPolicy
from protocols.endpoint import DeviceEndpoint
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    Actor,
    AlarmAck,
    AlarmTest,
    Capability,
    ClockRead,
    ClockReply,
    ClockSet,
    CommandAck,
    DiaryAdd,
    DiaryPage,
    DiaryPush,
    DiaryRead,
    DiarySource,
    EventCode,
    EventLogPage,
    EventLogRead,
    EventPush,
    EventRecord,
    IdentifyReply,
    LifecycleSet,
    Message,
    StatusRequest,
)
from protocols.replies import ReplyMemory

from . import lifecycle
from .clock import Clock
from .faults import LinkFaults, Scenario
from .model import DeviceModel, require
from .patients.diary import VALUE_RANGES
from .state import StateStore

log = logging.getLogger(__name__)

MAX_EVENTS_PER_PAGE = 8
DAY_MS = 86_400_000
# [E] A clinician corrects drift or sets the time after a reset; a year covers any real case, and
# bounds what one authenticated ClockSet can cost (measured by bench/clock_step.py).
MAX_CLOCK_STEP_MS = 366 * DAY_MS
# [E] Pushes are a fast path (SPEC 4): after a burst of events only the newest are pushed, and a
# host reads the rest from the event log, so one large advance cannot flood the link.
MAX_PENDING_PUSHES = 64
BEAT_INTERVAL_S = 0.05  # device-time heartbeat between replies: the server's tick


class Device:
    """A model served over the protocol."""

    def __init__(
        self,
        model: DeviceModel,
        clock: Clock,
        pairing_key: bytes,
        *,
        store: StateStore | None = None,
        scenario: Scenario | None = None,
        link_faults: LinkFaults | None = None,
        policy: AuthPolicy | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        wall: Callable[[], float] = time.monotonic,
        save_interval_s: float = 1.0,
        first_save_in_s: float | None = None,
        replies: ReplyMemory | None = None,
        max_clock_step_ms: int = MAX_CLOCK_STEP_MS,
        patient_key: bytes | None = None,
    ) -> None:
        self.model = model
        self.clock = clock
        self.store = store
        self.scenario = scenario or Scenario.empty()
        self.link_faults = link_faults or LinkFaults()
        self._wall = wall
        self._save_interval_s = save_interval_s
        # A fleet staggers its devices' first periodic save, so they do not all write in one tick.
        first = save_interval_s if first_save_in_s is None else min(first_save_in_s, save_interval_s)
        self._saved_at = wall() - save_interval_s + first
        self._saved_seq = model.events.last_seq
        self._pending_pushes: deque[EventRecord] = deque(maxlen=MAX_PENDING_PUSHES)
        self.max_clock_step_ms = max_clock_step_ms
        self._beat_ms = clock.now_ms()
        self._beat_at = wall()
        self._dirty = False
        model.events.listeners.append(self._pending_pushes.append)
        model.events.listeners.append(self._log_event)
        self._pushed_diary_seq = self._saved_diary_seq = self._diary_seq()
        capabilities = model.capabilities | (Capability.DIARY if self._treatment() is not None else 0)
        identity = IdentifyReply(
            model.kind, model.model_name, model.serial, model.firmware, 0, 0, int(capabilities), 0, model.lifecycle
        )
        self._saved_replies = replies.version if replies is not None else 0
        self.endpoint = DeviceEndpoint(
            identity,
            self.handle,
            pairing_key,
            policy,
            rng,
            replies=replies,
            on_session_event=self._session_event,
            on_wake=self._wake,
            on_flood=self._flood,
            patient_key=patient_key,
        )

    @property
    def identity(self) -> IdentifyReply:
        """What the device answers to identify."""
        return self.endpoint.identity

    # --- the byte interface used by the server ----------------------------------------------------
    def receive(self, data: bytes) -> bytes:
        """Bytes in from the link; bytes to send back (replies, then pushes)."""
        now = self._wall()
        self.sync()
        out = self.endpoint.receive(data, now)
        return self._finish(out, now)

    def tick(self) -> bytes:
        """Advance the model and sessions; return pushes for new events (if a session is open)."""
        now = self._wall()
        self.sync()
        self.endpoint.tick(now)
        return self._finish(b"", now)

    def close(self) -> None:
        """Save the final state."""
        self.sync()
        self.save()
        if self.store is not None:
            self.store.close()

    # --- model time -------------------------------------------------------------------------------
    def sync(self) -> None:
        """Bring the model to the clock's device time, applying scenario actions on the way."""
        self.scenario.run_until(self, self.clock.now_ms())
        if hasattr(self.model, "set_telemetry_active"):
            self.model.set_telemetry_active(self.endpoint.sessions.active is not None)

    # --- requests ---------------------------------------------------------------------------------
    def handle(self, message: Message, role: Actor = Actor.CLINICIAN) -> Message:
        """Answer one verified request of a ``role`` session (the endpoint's handler).

        The event-log entries the request makes record ``role`` as their actor; what the clock or a
        fault does is the device's own (``sync`` ran before, outside this).
        """
        with self.model.events.acting(role):
            return self._handle(message, role)

    def _handle(self, message: Message, role: Actor) -> Message:
        if isinstance(message, StatusRequest):
            return self.model.status()
        if isinstance(message, EventLogRead):
            require("max_count", message.max_count, 1, MAX_EVENTS_PER_PAGE, "entries")
            events = self.model.events
            entries = tuple(events.read(message.from_seq, message.max_count))
            return EventLogPage(events.first_seq, events.last_seq, entries)
        if isinstance(message, AlarmAck):
            self._dirty = True
            return CommandAck(self.model.alarms.acknowledge(message.code, self.model.now_ms))
        if isinstance(message, AlarmTest):
            seq = self.model.alarms.start_test(self.model.now_ms)  # refused before anything changes
            self._dirty = True
            return CommandAck(seq)
        if isinstance(message, ClockRead):
            return ClockReply(self.model.now_ms, round(self.clock.speed * 1000))
        if isinstance(message, ClockSet):
            return self._set_clock(message.time_ms)
        if isinstance(message, LifecycleSet):
            seq = lifecycle.change(self.model, message.lifecycle)
            self.endpoint.identity = replace(self.endpoint.identity, lifecycle=message.lifecycle)
            self._dirty = True
            return CommandAck(seq)
        if isinstance(message, DiaryRead | DiaryAdd):
            return self._diary(message, role)
        if message.MUTATING:
            lifecycle.refuse_if_removed(self.model, type(message).__name__)
        reply = self.model.apply(message, role)
        self._dirty = self._dirty or message.MUTATING
        return reply

    def _treatment(self) -> Any:
        """The model's ``Treatment`` (its virtual patient), or None (a model may predate them)."""
        return getattr(self.model, "treatment", None)

    def _diary_seq(self) -> int:
        treatment = self._treatment()
        return treatment.last_seq if treatment is not None else 0

    def _diary(self, message: DiaryRead | DiaryAdd, role: Actor) -> DiaryPage:
        """Read the patient controller's diary, or add a score a person typed (SPEC 4.7)."""
        treatment = self._treatment()
        if treatment is None:
            raise DeviceRejected(ErrorCode.UNSUPPORTED, "no patient controller is paired with this device", "")
        patient = treatment.patient
        if isinstance(message, DiaryRead):
            require("max_count", message.max_count, 1, MAX_EVENTS_PER_PAGE, "entries")
            entries = tuple(patient.read(message.from_seq, message.max_count))
        else:
            now = self.model.now_ms
            at = message.time_ms or now
            require("time_ms", at, patient.state.baseline_from_ms, now, "ms")  # not before the diary, not ahead
            source = DiarySource.CLINICIAN if role is Actor.CLINICIAN else DiarySource.PATIENT
            low, high = VALUE_RANGES[message.kind]
            require("value", message.value, low, high)
            entries = (patient.add_entry(at, message.kind, message.value, source),)
            self._dirty = True
        kept = patient.state.diary
        return DiaryPage(kept[0].seq if kept else 0, treatment.last_seq, entries)

    def _set_clock(self, time_ms: int) -> Message:
        now = self.model.now_ms
        if time_ms < now:
            raise DeviceRejected(
                ErrorCode.STATE_CONFLICT,
                "device time cannot go backwards: the event log is in time order",
                "time_ms",
                time_ms,
                now,
            )
        if time_ms - now > self.max_clock_step_ms:
            days = self.max_clock_step_ms // DAY_MS
            raise DeviceRejected(
                ErrorCode.OUT_OF_RANGE,
                f"a clock set moves device time at most {days} days forward",
                "time_ms",
                time_ms,
                now + self.max_clock_step_ms,
            )
        self.clock.set_time(time_ms)
        self.sync()
        self._dirty = True
        seq = self.model.events.append(self.model.now_ms, EventCode.CLOCK_SET, arg0=(now - time_ms) // 1000).seq
        return CommandAck(seq)

    def _log_event(self, record: EventRecord) -> None:
        log.info(
            "%s #%d %s %s %s args=%d,%d",
            self.model.serial,
            record.seq,
            record.code.name,
            record.priority.name,
            record.state.name,
            record.arg0,
            record.arg1,
        )

    def _session_event(self, code: EventCode, arg: int, actor: Actor) -> int:
        self._dirty = True
        events = self.model.events
        with events.acting(actor):
            return events.append(self.model.now_ms, code, arg0=arg).seq

    def _wake(self, count: int) -> None:
        # Not marked dirty: a flood must not turn into a save per read; the periodic save keeps it.
        self.model.charge_wakeups(count)

    def _flood(self, flooding: bool, frames: int, seconds: int) -> None:
        """A flood episode began (``frames``: the budget per second) or ended (``frames``: dropped)."""
        alarms, now_ms, code = self.model.alarms, self.model.now_ms, EventCode.TELEMETRY_FLOOD
        self._dirty = True
        if flooding:
            log.warning("%s: telemetry flood: frames beyond %d/s are dropped", self.model.serial, frames)
            alarms.raise_alarm(code, now_ms, arg0=frames)
            return
        stats = self.endpoint.stats
        log.warning(
            "%s: telemetry flood over: %d frames dropped in %d s (link totals: %d dropped, %d wake-ups)",
            self.model.serial,
            frames,
            seconds,
            stats.rate_limited,
            self.model.wakeups,
        )
        alarms.clear_condition(code, now_ms, arg0=frames, arg1=seconds)

    # --- pushes and persistence -------------------------------------------------------------------
    def _finish(self, out: bytes, now: float) -> bytes:
        treatment, diary_seq = self._treatment(), self._diary_seq()
        grew = self.model.events.last_seq != self._saved_seq or diary_seq != self._saved_diary_seq
        # A new exactly-once entry is saved before its reply leaves: a restarted device must still
        # know the command, or a retry would apply it twice (SPEC 4).
        answered = self.endpoint.replies.version != self._saved_replies
        if self._dirty or grew or answered or now - self._saved_at >= self._save_interval_s:
            self.save(now)
        if out or now - self._beat_at >= BEAT_INTERVAL_S:
            self._beat(now)
        if not self._pending_pushes and diary_seq == self._pushed_diary_seq:
            return out
        pending, pushes = self._pending_pushes, bytearray(out)
        while pending:  # popleft, not clear(): an event logged meanwhile waits for the next call
            pushes += self.endpoint.push(EventPush(pending.popleft()), now)
        if treatment is not None and diary_seq != self._pushed_diary_seq:
            # the newest entries only, as many as events are held: a host catches up with DiaryRead
            fresh = treatment.new_entries(max(self._pushed_diary_seq, diary_seq - MAX_PENDING_PUSHES))
            for entry in fresh:
                pushes += self.endpoint.push(DiaryPush(entry), now)
            self._pushed_diary_seq = diary_seq
        return bytes(pushes)

    def _beat(self, now: float) -> None:
        """Record the device time before a reply can reveal it, so a crash never turns it back."""
        self._beat_at = now
        device_ms = self.model.now_ms
        if self.store is not None and device_ms > self._beat_ms:
            self.store.beat(device_ms)
        self._beat_ms = max(self._beat_ms, device_ms)

    def save(self, now: float | None = None) -> None:
        """Write the state now (atomically)."""
        replies = self.endpoint.replies
        if self.store is not None:
            self.store.save(
                self.model, self.clock.now_ms(), self.scenario.start_ms, self.scenario.position(), replies.to_state()
            )
        self._saved_at = self._wall() if now is None else now
        self._saved_seq = self.model.events.last_seq
        self._saved_diary_seq = self._diary_seq()
        self._saved_replies = replies.version
        self._dirty = False
