"""The numbered event log and the alarm state machine of a device.

The event log is the device's non-volatile record: every alarm state change, program change,
bolus, refill, fault and session, numbered from 1 without gaps, readable from any sequence
number. It keeps the newest ``capacity`` entries; older ones drop off the front (``first_seq``
moves), never renumbered.

Alarms follow IEC 60601-1-8 priorities. A condition raises its alarm (ACTIVE). When the condition
goes away a non-latching alarm clears by itself; a latching one stays until acknowledged. An
acknowledged alarm whose condition persists stays listed as ACKNOWLEDGED and clears when the
condition ends. Each state change is one event-log entry carrying the new state.

A device with a sounder (``alarm_tones.Sounder``) also sounds its unacknowledged alarms, each
from the time it was raised, and plays the clinician's alarm test.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import MAX_ALARMS, ActiveAlarm, Actor, AlarmState, EventCode, EventRecord, Priority

from .alarm_tones import SILENT, Sounder, ToneState


@dataclass(frozen=True)
class AlarmSpec:
    """How an alarm condition is signalled."""

    priority: Priority
    latching: bool


# Pump priorities follow the SynchroMed split: critical (therapy stopped) -> HIGH, non-critical -> MEDIUM.
ALARMS: dict[EventCode, AlarmSpec] = {
    EventCode.LOW_RESERVOIR: AlarmSpec(Priority.MEDIUM, latching=False),
    EventCode.EMPTY_RESERVOIR: AlarmSpec(Priority.HIGH, latching=True),
    EventCode.MOTOR_STALL: AlarmSpec(Priority.HIGH, latching=True),
    EventCode.OCCLUSION: AlarmSpec(Priority.HIGH, latching=True),
    EventCode.BATTERY_LOW: AlarmSpec(Priority.LOW, latching=False),
    EventCode.RECHARGE_NOW: AlarmSpec(Priority.MEDIUM, latching=False),
    EventCode.BATTERY_ERI: AlarmSpec(Priority.MEDIUM, latching=False),
    EventCode.BATTERY_EOS: AlarmSpec(Priority.HIGH, latching=True),
    EventCode.BATTERY_FAILURE: AlarmSpec(Priority.HIGH, latching=True),
    # The pump's battery advisory: the flow rate may be reset to a very low level [V Medtronic advisory].
    EventCode.BATTERY_REDUCED_PERFORMANCE: AlarmSpec(Priority.HIGH, latching=True),
    # A rechargeable cell left flat past its window is damaged for good: no charge, no therapy [V Protege].
    EventCode.BATTERY_DEEP_DISCHARGE: AlarmSpec(Priority.HIGH, latching=True),
    EventCode.LEAD_OPEN: AlarmSpec(Priority.MEDIUM, latching=True),
    EventCode.LEAD_SHORT: AlarmSpec(Priority.MEDIUM, latching=True),
    EventCode.LEAD_DISCONNECTED: AlarmSpec(Priority.MEDIUM, latching=False),  # a trial cable off: no stimulation [E]
    EventCode.MEMORY_ERROR: AlarmSpec(Priority.HIGH, latching=True),  # critical memory error [V SynchroMed II]
    EventCode.MEMORY_ERROR_MINOR: AlarmSpec(Priority.MEDIUM, latching=True),  # non-critical memory error [V]
    EventCode.CHARGE_DENSITY_LIMIT: AlarmSpec(Priority.LOW, latching=False),
    EventCode.TELEMETRY_FLOOD: AlarmSpec(Priority.LOW, latching=True),
    EventCode.LOCKOUT: AlarmSpec(Priority.LOW, latching=True),
    # The MRI magnet stops a SynchroMed II's motor, and a motor stall sounds the two-tone alarm [V Medtronic
    # MRI guidelines]; it clears when the motor restarts. A Prometra II's shut valve stops therapy until the
    # clinician resets it [V IFU]: critical by this table's rule, cleared by the reset [E].
    EventCode.MRI_SUSPEND: AlarmSpec(Priority.HIGH, latching=False),
    EventCode.FAV_CLOSED: AlarmSpec(Priority.HIGH, latching=False),
}

EventListener = Callable[[EventRecord], None]


class EventLog:
    """Numbered, bounded, append-only event log."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._entries: deque[EventRecord] = deque()
        self.next_seq = 1
        self.listeners: list[EventListener] = []
        self.actor = Actor.DEVICE  # who entries are made for now: a session's role while its command runs

    @contextmanager
    def acting(self, actor: Actor) -> Iterator[None]:
        """Record the entries made inside the block as ``actor``'s doing (who made each change)."""
        before, self.actor = self.actor, actor
        try:
            yield
        finally:
            self.actor = before

    @property
    def first_seq(self) -> int:
        """Oldest sequence number still stored (``next_seq`` when empty)."""
        return self._entries[0].seq if self._entries else self.next_seq

    @property
    def last_seq(self) -> int:
        """Newest sequence number (0 before the first event)."""
        return self.next_seq - 1

    def append(
        self,
        time_ms: int,
        code: EventCode,
        priority: Priority = Priority.NONE,
        state: AlarmState = AlarmState.NONE,
        arg0: int = 0,
        arg1: int = 0,
    ) -> EventRecord:
        """Record an event and tell the listeners; return the entry."""
        record = EventRecord(self.next_seq, time_ms, code, priority, state, _i32(arg0), _i32(arg1), self.actor)
        self.next_seq += 1
        self._entries.append(record)
        if len(self._entries) > self.capacity:
            self._entries.popleft()
        for listener in self.listeners:
            listener(record)
        return record

    def read(self, from_seq: int, max_count: int) -> list[EventRecord]:
        """Up to ``max_count`` entries from ``from_seq`` on (from the oldest kept, if it is older)."""
        if not self._entries or from_seq > self.last_seq:
            return []
        start = max(from_seq, self.first_seq) - self.first_seq
        return [self._entries[i] for i in range(start, min(start + max_count, len(self._entries)))]

    def __len__(self) -> int:
        return len(self._entries)

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state."""
        return {
            "capacity": self.capacity,
            "next_seq": self.next_seq,
            "entries": [
                [e.seq, e.time_ms, int(e.code), int(e.priority), int(e.state), e.arg0, e.arg1, int(e.actor)]
                for e in self._entries
            ],
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> EventLog:
        """Rebuild from ``to_state`` output."""
        log = cls(data["capacity"])
        log.next_seq = data["next_seq"]
        for seq, time_ms, code, priority, state, arg0, arg1, *actor in data["entries"]:  # no actor: saved before 3.8
            who = Actor(actor[0]) if actor else Actor.DEVICE
            log._entries.append(
                EventRecord(seq, time_ms, EventCode(code), Priority(priority), AlarmState(state), arg0, arg1, who)
            )
        return log


def _i32(value: int) -> int:
    """Fold an int into the signed 32-bit range of the wire arguments."""
    value = int(value) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass
class _Alarm:
    state: AlarmState
    condition: bool
    since_ms: int  # raised at: its tone repeats from here


class AlarmManager:
    """Alarm conditions of one device, logged to its event log (and sounded, if it has a sounder)."""

    def __init__(self, log: EventLog, sounder: Sounder | None = None) -> None:
        self.log = log
        self.sounder = sounder
        self.test_ms = 0  # start of the last alarm test, 0 if none
        self._alarms: dict[EventCode, _Alarm] = {}
        self._listed: tuple[ActiveAlarm, ...] | None = None  # what active() returns; None after any change

    def is_active(self, code: EventCode) -> bool:
        """True while the alarm is listed (active, acknowledged or latched)."""
        return code in self._alarms

    def raise_alarm(self, code: EventCode, time_ms: int, arg0: int = 0, arg1: int = 0) -> None:
        """The condition is present: raise the alarm unless it is already up."""
        self._listed = None
        alarm = self._alarms.get(code)
        if alarm is not None:
            alarm.condition = True
            return
        self._alarms[code] = _Alarm(AlarmState.ACTIVE, True, time_ms)
        self.log.append(time_ms, code, ALARMS[code].priority, AlarmState.ACTIVE, arg0, arg1)

    def clear_condition(self, code: EventCode, time_ms: int, arg0: int = 0, arg1: int = 0) -> None:
        """The condition is gone: clear the alarm unless it latches and is not yet acknowledged."""
        alarm = self._alarms.get(code)
        if alarm is None:
            return
        self._listed = None
        alarm.condition = False
        if ALARMS[code].latching and alarm.state is AlarmState.ACTIVE:
            return
        del self._alarms[code]
        self.log.append(time_ms, code, ALARMS[code].priority, AlarmState.CLEARED, arg0, arg1)

    def acknowledge(self, code: EventCode, time_ms: int) -> int:
        """Acknowledge an alarm; return the event-log sequence number of the change."""
        alarm = self._alarms.get(code)
        if alarm is None:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, f"no alarm {code.name} to acknowledge", "code", int(code))
        if alarm.state is AlarmState.ACKNOWLEDGED:
            return self.log.last_seq
        self._listed = None
        if alarm.condition:
            alarm.state = AlarmState.ACKNOWLEDGED
            new_state = AlarmState.ACKNOWLEDGED
        else:
            del self._alarms[code]
            new_state = AlarmState.CLEARED
        return self.log.append(time_ms, code, ALARMS[code].priority, new_state).seq

    def active(self) -> tuple[ActiveAlarm, ...]:
        """Listed alarms, highest priority first (at most the wire's maximum)."""
        if self._listed is None:  # every status poll asks; the list changes only through the methods above
            listed = sorted(self._alarms.items(), key=lambda item: (-ALARMS[item[0]].priority, item[0]))
            self._listed = tuple(
                ActiveAlarm(code, ALARMS[code].priority, alarm.state) for code, alarm in listed[:MAX_ALARMS]
            )
        return self._listed

    def start_test(self, time_ms: int) -> int:
        """Play every alarm tone once (the clinician's alarm test); return the ALARM_TEST entry's number."""
        if self.sounder is None:
            raise DeviceRejected(
                ErrorCode.UNSUPPORTED, "this device has no alarm sounder: its alerts show on the patient's controller"
            )
        self.test_ms = time_ms
        return self.log.append(time_ms, EventCode.ALARM_TEST, arg0=self.sounder.test_duration_ms()).seq

    def tone_state(self, time_ms: int) -> ToneState:
        """What the sounder plays at ``time_ms``: unacknowledged alarms and a test in progress."""
        if self.sounder is None:
            return SILENT
        active = [(code, a) for code, a in self._alarms.items() if a.state is AlarmState.ACTIVE]
        sounding = [(code, ALARMS[code].priority, a.since_ms) for code, a in active]
        return self.sounder.state(time_ms, sounding, self.test_ms)

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state."""
        return {
            "listed": {str(int(code)): [int(a.state), a.condition, a.since_ms] for code, a in self._alarms.items()},
            "test_ms": self.test_ms,
        }

    def load_state(self, data: dict[str, Any]) -> None:
        """Restore from ``to_state`` output (or the older form: the listed alarms alone, without raise times)."""
        listed = data["listed"] if "listed" in data else data
        self.test_ms = int(data.get("test_ms", 0)) if "listed" in data else 0
        # An alarm saved without its raise time sounds as if raised at the epoch: its repeats stay on a
        # fixed grid, and the next one is at most one interval away.
        self._alarms = {
            EventCode(int(code)): _Alarm(AlarmState(entry[0]), entry[1], int(entry[2]) if len(entry) > 2 else 0)
            for code, entry in listed.items()
        }
        self._listed = None
