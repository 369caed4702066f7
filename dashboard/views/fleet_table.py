"""The fleet overview's data, without Dash: one row per device, filters, sorting, paging and counts.

Pure (snapshots in, rows out), so a thousand devices are ranked, filtered and cut to one page in
a few milliseconds on the server and only that page goes to the browser. Every text is words, not
wire names: "Low reservoir", "Stimulator", "Online", with units a person reads (mL, mA, %).
Rank of the worst alarm: high > medium > low > technical (the link's own) > none.
Must not import Dash components, the link thread or ``device_mock``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from protocols.messages import DeviceKind, Priority, PumpStatus, ScsStatus

PAGE_SIZE = 25  # rows per page: one screen [E]
KIND_WORDS = {DeviceKind.SCS: "Stimulator", DeviceKind.PUMP: "Pump"}
ALARM_WORDS = {4: "High", 3: "Medium", 2: "Low", 1: "Technical", 0: "None"}  # by rank
ALARM_RANK = {Priority.HIGH: 4, Priority.MEDIUM: 3, Priority.LOW: 2}
TECHNICAL = 1
LINK_ORDER = ("online", "stale", "connecting", "offline")
COLUMNS = (  # (key, heading)
    ("name", "Device"),
    ("kind", "Kind"),
    ("serial", "Serial"),
    ("alarm", "Worst alarm"),
    ("link", "Link"),
    ("battery", "Battery"),
    ("therapy", "Therapy"),
    ("seen", "Last status"),
)
SORT_KEYS = frozenset(key for key, _ in COLUMNS)
_DIGITS = re.compile(r"(\d+)")
_WIRE_NAME = re.compile(r"\b[A-Z]+_[A-Z_]+\b")  # an ErrorCode or EventCode name inside a link error


@dataclass(frozen=True)
class Row:
    """One device as the overview shows it (texts) and sorts it (keys)."""

    name: str
    kind: str  # "Stimulator", "Pump", or "—" before the device identified itself
    serial: str
    alarm_rank: int  # 4 high ... 1 technical, 0 none
    alarm: str  # the worst alarm in words, "" when none
    alarms: int  # how many alarms are active (device and technical)
    link: str  # a LinkState value: online, stale, connecting, offline
    battery_pct: float | None
    therapy: str  # "8.20 of 20 mL" (pump) or "3.20 mA, on" (stimulator)
    age_s: float | None


def words(code_name: str) -> str:
    """An event code's name as words: LOW_RESERVOIR -> "Low reservoir"."""
    return code_name.replace("_", " ").capitalize()


def row(snapshot: Any) -> Row:
    """The overview row of a ``LinkSnapshot``."""
    status, identity = snapshot.status, snapshot.identity
    rank, alarm, count = 0, "", 0
    if status is not None and status.alarms:
        worst = max(status.alarms, key=lambda a: ALARM_RANK.get(a.priority, 0))
        rank, alarm, count = ALARM_RANK.get(worst.priority, 0), words(worst.code.name), len(status.alarms)
    if snapshot.technical_alarm:
        count += 1
        if rank < TECHNICAL:
            text = _WIRE_NAME.sub(lambda m: words(m.group(0)).lower(), snapshot.technical_alarm)
            rank, alarm = TECHNICAL, text[:1].upper() + text[1:]
    battery = status.battery_pct_x100 / 100 if status is not None else None
    therapy = ""
    if isinstance(status, PumpStatus):
        therapy = f"{status.reservoir_ul / 1000:.2f} of {status.capacity_ul / 1000:.0f} mL"
    elif isinstance(status, ScsStatus):
        amp = status.areas[0].amplitude_ua / 1000 if status.areas else 0.0
        therapy = f"{amp:.2f} mA, {'on' if status.therapy_on else 'off'}"
    return Row(
        name=snapshot.name,
        kind=KIND_WORDS.get(identity.kind, "—") if identity is not None else "—",
        serial=identity.serial if identity is not None else "",
        alarm_rank=rank,
        alarm=alarm,
        alarms=count,
        link=snapshot.state.value,
        battery_pct=battery,
        therapy=therapy,
        age_s=snapshot.age_s,
    )


def natural(text: str) -> tuple:
    """A sort key that puts scs-2 before scs-10."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(text))


def _key(column: str):
    missing = float("inf")
    keys = {
        "name": lambda r: natural(r.name),
        "kind": lambda r: (r.kind, natural(r.name)),
        "serial": lambda r: (r.serial, natural(r.name)),
        "link": lambda r: (LINK_ORDER.index(r.link) if r.link in LINK_ORDER else 9, natural(r.name)),
        "battery": lambda r: (missing if r.battery_pct is None else r.battery_pct, natural(r.name)),
        "therapy": lambda r: (r.kind, r.therapy, natural(r.name)),
        "seen": lambda r: (missing if r.age_s is None else r.age_s, natural(r.name)),
    }
    return keys[column]


def ordered(rows: list[Row], column: str = "alarm", descending: bool = True) -> list[Row]:
    """Rows sorted by ``column``; by alarm, the worst first and, at equal rank, by name."""
    if column not in SORT_KEYS:
        raise ValueError(f"no column {column!r} to sort by; valid: {', '.join(sorted(SORT_KEYS))}")
    by_name = sorted(rows, key=lambda r: natural(r.name))  # the tie-break: stable sorts keep it
    if column == "alarm":
        return sorted(by_name, key=lambda r: (r.alarm_rank, r.alarms), reverse=descending)
    return sorted(by_name, key=_key(column), reverse=descending)


def matches(r: Row, search: str, kind: str, alarm: str, link: str) -> bool:
    """Whether ``r`` passes the filters: "" or "all" lets everything through."""
    if search:
        needle = search.strip().lower()
        if needle and needle not in r.name.lower() and needle not in r.serial.lower():
            return False
    if kind not in ("", "all") and r.kind != kind:
        return False
    if alarm not in ("", "all") and ALARM_WORDS[r.alarm_rank] != alarm:
        return False
    return link in ("", "all") or r.link == link


def counts(rows: list[Row]) -> dict[str, Counter]:
    """Devices per alarm class (words) and per link state, over the whole fleet."""
    return {
        "alarm": Counter(ALARM_WORDS[r.alarm_rank] for r in rows),
        "link": Counter(r.link for r in rows),
    }


def page_of(rows: list[Row], page: int, size: int = PAGE_SIZE) -> tuple[list[Row], int, int]:
    """Rows of page ``page`` (0-based, clamped), that page and the number of pages (at least 1)."""
    pages = max(1, -(-len(rows) // size))
    page = min(max(0, page), pages - 1)
    return rows[page * size : (page + 1) * size], page, pages


def since(age_s: float | None) -> str:
    """How long ago the last status came, in words."""
    if age_s is None:
        return "never"
    if age_s < 60:
        return f"{age_s:.0f} s ago"
    if age_s < 3600:
        return f"{age_s / 60:.0f} min ago"
    return f"{age_s / 3600:.1f} h ago"
