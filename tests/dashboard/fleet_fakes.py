"""A fleet of fake links for the overview: varied kinds, alarms and link states, no device behind them.

``fleet_links(n)`` gives ``n`` links named scs-1, pump-1, scs-2, ...: every 9th has a high alarm,
every 7th a medium one, every 5th a low one, every 11th is offline with a technical alarm and every
13th stale; the rest are online without an alarm. ``expected(n)`` says how many of each there are.
"""

from __future__ import annotations

import collections
import dataclasses
from dataclasses import dataclass

from dashboard.link import LinkSnapshot, LinkState
from device_mock.pump import Pump, PumpConfig
from protocols.messages import (
    ActiveAlarm,
    AlarmState,
    DeviceKind,
    EventCode,
    IdentifyReply,
    Priority,
    PumpStatus,
    ScsStatus,
)
from tests.fakes import scs_status

ALARMS = {
    "high": ActiveAlarm(EventCode.LEAD_OPEN, Priority.HIGH, AlarmState.ACTIVE),
    "pump-high": ActiveAlarm(EventCode.MOTOR_STALL, Priority.HIGH, AlarmState.ACTIVE),
    "medium": ActiveAlarm(EventCode.LOW_RESERVOIR, Priority.MEDIUM, AlarmState.ACTIVE),
    "low": ActiveAlarm(EventCode.BATTERY_LOW, Priority.LOW, AlarmState.ACTIVE),
}


PUMP_STATUS = Pump(PumpConfig(), 1_767_225_600_000, 1).status()  # a real one, its alarms and fill replaced


def pump_status(alarms: tuple[ActiveAlarm, ...], reservoir_ul: int) -> PumpStatus:
    """A pump status with these alarms and this much drug left."""
    return dataclasses.replace(PUMP_STATUS, alarms=alarms, reservoir_ul=reservoir_ul)


def classify(i: int) -> str:
    """What fleet member ``i`` (0-based) is: high, medium, low, offline, stale or ok."""
    for every, what in ((9, "high"), (7, "medium"), (5, "low"), (11, "offline"), (13, "stale")):
        if i % every == every - 1:
            return what
    return "ok"


@dataclass
class FleetLink:
    """A link with a fixed, varied snapshot."""

    name: str
    index: int

    def snapshot(self) -> LinkSnapshot:
        i, what = self.index, classify(self.index)
        kind = DeviceKind.SCS if i % 2 == 0 else DeviceKind.PUMP
        serial = f"{'SCS' if kind is DeviceKind.SCS else 'PUMP'}-{i * 7919 % 0xFFFFFF:06X}"
        identity = IdentifyReply(kind, "Test", serial, "1.0.0", 0, 0, 0x2D, 0)
        alarm = {"high": "high" if kind is DeviceKind.SCS else "pump-high", "medium": "medium", "low": "low"}
        alarms = (ALARMS[alarm[what]],) if what in alarm else ()
        status: ScsStatus | PumpStatus
        if kind is DeviceKind.SCS:
            status = dataclasses.replace(scs_status(), alarms=alarms, battery_pct_x100=1_000 + 37 * i % 9_000)
        else:
            status = pump_status(alarms, 500 + 97 * i % 19_000)
        state = {"offline": LinkState.OFFLINE, "stale": LinkState.STALE}.get(what, LinkState.ONLINE)
        technical = {"offline": "no reply: LINK_TIMEOUT after 4 tries", "stale": "no data for 9.0 s"}.get(what)
        return LinkSnapshot(
            name=self.name,
            url="fake://",
            state=state,
            identity=identity,
            status=status,
            status_received_at=0.0,
            age_s=0.5 + i % 3,
            last_seen_wall=None,
            rtt_ms=1.0,
            counters={},
            technical_alarm=technical,
            reconnects=0,
            next_retry_in_s=None,
            session_open=state is LinkState.ONLINE,
            last_event_seq=None,
        )

    def submit(self, command, user, role):  # the overview never programs
        raise AssertionError("the overview sent a command")


def fleet_links(n: int) -> dict[str, FleetLink]:
    """``n`` links, scs-1, pump-1, scs-2, ..."""
    names = [f"{'scs' if i % 2 == 0 else 'pump'}-{i // 2 + 1}" for i in range(n)]
    return {name: FleetLink(name, i) for i, name in enumerate(names)}


def expected(n: int) -> collections.Counter:
    """How many members of each class ``fleet_links(n)`` has."""
    return collections.Counter(classify(i) for i in range(n))
