"""The history store: what the dashboard keeps, behind one interface, and ``open_store(url)``.

Owns: the ``HistoryStore`` contract (series, events, the latest status, the audit log, CSV
export), URL parsing, server-side downsampling, the audit hash chain and the CSV formats, all
engine-independent. ``dashboard.store_sqlite`` is the one engine today; another engine implements
``HistoryStore`` and reuses the helpers here. Must not import Dash, the device link or auth.

Times: series and events are keyed by *device* time (``time_ms``, ms since the Unix epoch on the
device clock); ``received_at_s`` (host wall time) is kept only with the latest status, for
staleness. Writes are asynchronous: ``add_*`` queue rows for the writer and return at once; reads
see committed rows; ``flush()`` makes everything queued so far visible.

Series reads return at most ``max_points`` points: the first, min, max and last of equal-time
buckets (M4, ``tsdownsample``), so spikes survive zooming out. Long ranges read per-minute or
per-hour rollup buckets (first/min/max/last, kept by the writer) between raw rows at both ends,
so a 30-day chart at 2000 points reads 720 hourly buckets, not 2.6 M rows: the cost follows the
range and ``max_points`` asked (at most ~30k rows at 1 Hz), never the length of the history.

CSV formats (UTF-8, header row, ``time_utc`` is ISO-8601 UTC with milliseconds and a ``Z``; every
text cell that a spreadsheet would run as a formula is written with a ``'`` in front, numbers stay
numbers, see ``dashboard.csv_cells``):

* series, wide: ``time_utc,time_ms,<name>...`` one row per device timestamp, one column per
  series, an empty cell where a series has no value at that time (every series of one status share
  its ``time_ms``, so rows are full in practice);
* events: ``device,seq,time_utc,time_ms,code,priority,state,arg0,arg1,actor`` (enum names);
* audit: ``id,time_utc,time_ms,user,role,device,action,before,after,result,command_id,prev_hash,
  hash`` with ``before``/``after`` as canonical JSON. ``verify_audit_rows(csv.DictReader(f))``
  checks an exported log off the machine.

The audit log (docs/security.md R14) records settings, never secrets: callers pass the parameters of a
command (amplitudes, rates, modes), not keys, MAC tags, nonces or passwords. ``add_audit`` refuses
``bytes`` values and field names such as ``key``, ``tag``, ``password``, ``secret``, ``token``.
"""

from __future__ import annotations

import hashlib
import heapq
import importlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from itertools import groupby
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from tsdownsample import M4Downsampler

from protocols.messages import (
    Actor,
    AlarmState,
    DiaryRecord,
    EventCode,
    EventRecord,
    Priority,
    PumpStatus,
    ScsStatus,
)

from . import csv_cells

GENESIS_HASH = "0" * 64
SUPPORTED_URLS = "sqlite:///relative/path.db, sqlite:////absolute/path.db or sqlite:///:memory:"
EVENT_COLUMNS = ("device", "seq", "time_utc", "time_ms", "code", "priority", "state", "arg0", "arg1", "actor")
AUDIT_COLUMNS = (
    "id",
    "time_utc",
    "time_ms",
    "user",
    "role",
    "device",
    "action",
    "before",
    "after",
    "result",
    "command_id",
    "prev_hash",
    "hash",
)
_SECRET_WORDS = frozenset({"key", "keys", "tag", "tags", "password", "passwd", "secret", "token", "nonce", "hmac"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StoreError(ValueError):
    """The store cannot be opened or used: bad URL, foreign file, other schema, closed, write failure."""


@dataclass(frozen=True)
class StoreStats:
    """Writer counters since the store was opened."""

    rows_written: int
    batches: int
    dropped_batches: int
    dropped_rows: int
    queue_depth: int
    queue_capacity: int
    write_errors: int


@dataclass(frozen=True)
class LatestStatus:
    """The newest status snapshot of a device (by device time) and when the host received it."""

    device: str
    status: ScsStatus | PumpStatus
    received_at_s: float


@dataclass(frozen=True)
class EventQuery:
    """Which events a page shows: a device's, filtered by code, priority and device time, newest first.

    Pages are keyed by sequence number, so new events arriving never shift a page being read:
    ``before_seq`` asks for the page older than that entry, ``after_seq`` for the page newer than
    it (both 0: the newest page). ``alarms_only`` keeps alarm state changes (the alarm history).
    """

    device: str
    codes: tuple[int, ...] = ()  # empty: every code
    priorities: tuple[int, ...] = ()  # empty: every priority
    start_ms: int = 0  # 0: no lower bound
    end_ms: int = 0  # 0: no upper bound
    before_seq: int = 0
    after_seq: int = 0
    alarms_only: bool = False
    limit: int = 20


@dataclass(frozen=True)
class EventPage:
    """One page of events (newest first), how many match in all, and whether older or newer pages exist."""

    rows: list[dict[str, Any]]
    total: int
    has_older: bool
    has_newer: bool


@dataclass(frozen=True)
class AuditEntry:
    """One audit record as stored; ``before``/``after`` are canonical JSON text."""

    id: int
    time_ms: int
    user: str
    role: str
    device: str
    action: str
    before: str
    after: str
    result: str
    command_id: int | None
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        """The entry for display: settings parsed back, time also as ISO-8601 UTC."""
        return {
            "id": self.id,
            "time_ms": self.time_ms,
            "time_utc": iso_utc(self.time_ms),
            "user": self.user,
            "role": self.role,
            "device": self.device,
            "action": self.action,
            "before": json.loads(self.before),
            "after": json.loads(self.after),
            "result": self.result,
            "command_id": self.command_id,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class HistoryStore(ABC):
    """What the dashboard reads and writes. Every method is safe to call from any thread."""

    # --- writes (queued; see flush) ------------------------------------------------------------
    @abstractmethod
    def add_status(self, device: str, status: ScsStatus | PumpStatus, received_at_s: float) -> None:
        """Queue one row per ``series_from_status`` value at ``status.time_ms``; keep it as the latest.

        Under overload (queue full for ``put_timeout_s``) the snapshot is dropped and counted in stats().
        """

    @abstractmethod
    def add_series(self, device: str, name: str, times_ms: Iterable[int], values: Iterable[float]) -> None:
        """Queue many points of one series (import, backfill), upserted by time, in batch-sized items.

        Values must be finite: a NaN raises ValueError, and the chunks before it stay queued.
        """

    @abstractmethod
    def add_events(self, device: str, events: Iterable[EventRecord]) -> None:
        """Queue event-log entries, upserted by (device, seq): re-adding one never duplicates it.

        Never dropped: if the writer has no room for ``control_timeout_s`` this raises StoreError.
        """

    @abstractmethod
    def add_diary(self, device: str, entries: Iterable[DiaryRecord]) -> None:
        """Queue diary entries (SPEC 4.7), upserted by (device, seq); never dropped, like events."""

    @abstractmethod
    def add_audit(
        self,
        user: str,
        role: str,
        device: str | None,
        action: str,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        result: str,
        command_id: int | None,
    ) -> int:
        """Append a hash-chained audit entry (settings only, never secrets); return its id once committed."""

    @abstractmethod
    def flush(self) -> None:
        """Return once everything queued before the call is committed; raise StoreError if a write failed."""

    @abstractmethod
    def close(self) -> None:
        """Flush, stop the writer and release connections. Idempotent."""

    @abstractmethod
    def stats(self) -> StoreStats:
        """Writer counters."""

    # --- reads -------------------------------------------------------------------------------------
    @abstractmethod
    def devices(self) -> list[str]:
        """Devices with a stored status or series, sorted."""

    @abstractmethod
    def latest_status(self, device: str) -> LatestStatus | None:
        """The newest stored status of ``device``."""

    @abstractmethod
    def series_names(self, device: str) -> list[str]:
        """Stored series of ``device``, sorted."""

    @abstractmethod
    def time_range(self, device: str) -> tuple[int, int] | None:
        """(first, last) device time over all series of ``device``, None if it has none."""

    @abstractmethod
    def series(
        self, device: str, name: str, start_ms: int, end_ms: int, max_points: int = 2000
    ) -> tuple[np.ndarray, np.ndarray]:
        """(times_ms int64, values float64) in [start_ms, end_ms], M4-downsampled above max_points."""

    @abstractmethod
    def series_after(self, device: str, name: str, after_ms: int, limit: int = 10000) -> tuple[np.ndarray, np.ndarray]:
        """The oldest ``limit`` rows strictly after ``after_ms`` (page on with the last time returned)."""

    @abstractmethod
    def last_event_seq(self, device: str) -> int:
        """Highest stored event seq of ``device``, 0 if none."""

    @abstractmethod
    def last_diary_seq(self, device: str) -> int:
        """Highest stored diary seq of ``device``, 0 if none."""

    @abstractmethod
    def diary(self, device: str) -> list[DiaryRecord]:
        """Every stored diary entry of ``device``, by sequence number."""

    @abstractmethod
    def event_seq_gaps(self, device: str, from_seq: int = 1) -> list[tuple[int, int]]:
        """Missing seq ranges (first, last), inclusive, from ``from_seq`` to the highest stored seq."""

    @abstractmethod
    def events(
        self,
        device: str | None,
        since_seq: int = 0,
        codes: Iterable[int] | None = None,
        limit: int = 500,
        *,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Events with seq > since_seq, oldest first (by seq; by time across devices) unless newest_first."""

    @abstractmethod
    def event_page(self, query: EventQuery) -> EventPage:
        """One page of a device's events as ``query`` asks, newest first (see ``EventQuery``)."""

    @abstractmethod
    def alarm_history(self, device: str | None, limit: int = 200) -> list[dict[str, Any]]:
        """Alarm state changes (events whose state is not NONE), newest first."""

    @abstractmethod
    def audit(self, limit: int = 200) -> list[dict[str, Any]]:
        """The newest audit entries, newest first, as ``AuditEntry.as_dict()``."""

    @abstractmethod
    def verify_audit(self) -> int | None:
        """Id of the first audit entry whose chain breaks (edited, or missing), None if intact."""

    # --- export ------------------------------------------------------------------------------------
    @abstractmethod
    def export_series_csv(self, device: str, names: Iterable[str], start_ms: int, end_ms: int, out: TextIO) -> None:
        """Write the wide series CSV (module docstring) of [start_ms, end_ms] to ``out``."""

    @abstractmethod
    def export_events_csv(self, device: str | None, out: TextIO) -> None:
        """Write the events CSV of one device or all, oldest first."""

    @abstractmethod
    def export_audit_csv(self, out: TextIO) -> None:
        """Write the whole audit log as CSV, oldest first, hashes included."""

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- opening -------------------------------------------------------------------------------------
_ENGINES = {"sqlite": ("dashboard.store_sqlite", "SqliteStore")}


def parse_url(url: str) -> tuple[str, str]:
    """(engine, target) of a store URL; target is a file path or ``:memory:``. Raises StoreError."""
    parts = urlsplit(url) if isinstance(url, str) else None
    valid = (
        parts is not None
        and parts.scheme in _ENGINES
        and url.startswith(f"{parts.scheme}:///")
        and not parts.query
        and not parts.fragment
        and len(url) > len(f"{parts.scheme}:///")
    )
    if not valid:
        raise StoreError(f"unsupported store URL {_redact(url)!r}: use {SUPPORTED_URLS}")
    return parts.scheme, url[len(f"{parts.scheme}:///") :]


def open_store(url: str, **options: Any) -> HistoryStore:
    """Open (creating if missing) the store at ``url``; ``options`` go to the engine (batch sizes…)."""
    engine, target = parse_url(url)
    module_name, class_name = _ENGINES[engine]
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(target, **options)


def _redact(url: object) -> str:
    """The URL without a password, so an error message never leaks one."""
    text = str(url)
    try:
        parts = urlsplit(text)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable URL>"
    return text


# --- series --------------------------------------------------------------------------------------
def downsample(times: np.ndarray, values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points keeping first, min, max and last of equal-time buckets (M4).

    Lines drawn from M4 output are pixel-identical to the full data at that width, so peaks and
    dips (an impedance spike, a battery dip) never vanish from a zoomed-out chart.
    """
    if max_points < 4:
        raise ValueError(f"max_points must be at least 4, got {max_points}")
    if len(times) <= max_points:
        return times, values
    if max_points < 8:  # one bucket (tsdownsample needs two)
        index = np.unique([0, np.argmin(values), np.argmax(values), len(values) - 1])
    else:
        index = np.unique(M4Downsampler().downsample(times, values, n_out=max_points - max_points % 4))
    return times[index], values[index]


ROLLUP_WIDTHS_MS = (60_000, 3_600_000)  # bucket width of rollup levels 1, 2; each a multiple of the one before
_I, _F = np.int64, np.float64
_BUCKET = np.dtype(  # the columns of a rollup bucket, in merge_buckets order
    [
        ("n", _I),
        ("t_first", _I),
        ("v_first", _F),
        ("t_min", _I),
        ("v_min", _F),
        ("t_max", _I),
        ("v_max", _F),
        ("t_last", _I),
        ("v_last", _F),
    ]
)


def rollup_level(start_ms: int, end_ms: int, max_points: int) -> int:
    """0 to read raw rows, else the coarsest rollup level whose buckets are no wider than the output's."""
    output_width = (end_ms - start_ms + 1) / max(1, max_points // 4)
    return sum(1 for width in ROLLUP_WIDTHS_MS if width <= output_width)


def merge_buckets(rows: Iterable[tuple]) -> tuple:
    """One bucket ``(n, t_first, v_first, t_min, v_min, t_max, v_max, t_last, v_last)`` from finer ones.

    A raw point is the bucket ``(1, t, v, t, v, t, v, t, v)``, so both rollup levels merge the same way.
    """
    rows = list(rows)  # one bucket's worth
    first, last = min(rows, key=lambda r: r[1]), max(rows, key=lambda r: r[7])
    low, high = min(rows, key=lambda r: (r[4], r[3])), max(rows, key=lambda r: (r[6], -r[5]))
    return (sum(r[0] for r in rows), *first[1:3], *low[3:5], *high[5:7], *last[7:9])


def bucket_points(rows: Iterable[tuple]) -> tuple[np.ndarray, np.ndarray]:
    """The first, min, max and last points of rollup buckets (as ``merge_buckets`` gives), by time, once each."""
    b = np.fromiter(rows, dtype=_BUCKET)
    times = np.concatenate([b["t_first"], b["t_min"], b["t_max"], b["t_last"]])
    values = np.concatenate([b["v_first"], b["v_min"], b["v_max"], b["v_last"]])
    times, index = np.unique(times, return_index=True)
    return times, values[index]


def iso_utc(time_ms: int) -> str:
    """ISO-8601 UTC with milliseconds: ``2026-01-01T00:00:00.000Z``."""
    return (_EPOCH + timedelta(milliseconds=time_ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_series_csv(out: TextIO, names: list[str], columns: list[Iterator[tuple[int, float]]]) -> int:
    """Merge per-series (time, value) iterators, each sorted by time, into wide rows; return the row count."""
    writer = csv_cells.writer(out)
    writer.writerow(["time_utc", "time_ms", *names])
    tagged = [_tag(column, i) for i, column in enumerate(columns)]
    count = 0
    for t, group in groupby(heapq.merge(*tagged), key=lambda row: row[0]):
        cells: list[float | str] = [""] * len(names)
        for _, i, v in group:
            cells[i] = float(v)  # a number, written as repr(float): -1.5 stays -1.5
        writer.writerow([iso_utc(t), t, *cells])
        count += 1
    return count


def _tag(column: Iterator[tuple[int, float]], index: int) -> Iterator[tuple[int, int, float]]:
    return ((t, index, v) for t, v in column)


# --- events --------------------------------------------------------------------------------------
def _enum_name(enum_cls: type[IntEnum], value: int) -> str:
    try:
        return enum_cls(value).name
    except ValueError:
        return f"0x{value:04x}"


def event_dict(
    device: str, seq: int, time_ms: int, code: int, priority: int, state: int, arg0: int, arg1: int, actor: int = 0
):
    """A stored event for display and JSON: enum fields by name (unknown codes as hex)."""
    return {
        "device": device,
        "seq": seq,
        "time_ms": time_ms,
        "code": _enum_name(EventCode, code),
        "priority": _enum_name(Priority, priority),
        "state": _enum_name(AlarmState, state),
        "arg0": arg0,
        "arg1": arg1,
        "actor": _enum_name(Actor, actor),
    }


def write_events_csv(out: TextIO, events: Iterable[dict[str, Any]]) -> None:
    """The events CSV of ``event_dict`` rows."""
    writer = csv_cells.writer(out)
    writer.writerow(EVENT_COLUMNS)
    for e in events:
        writer.writerow([e["device"], e["seq"], iso_utc(e["time_ms"]), *(e[c] for c in EVENT_COLUMNS[3:])])


DIARY_COLUMNS = ("device", "seq", "time_utc", "time_ms", "kind", "value", "source")


def write_diary_csv(out: TextIO, device: str, entries: Iterable[DiaryRecord]) -> None:
    """A device's diary as CSV (SPEC 4.7 names and units), by sequence number."""
    writer = csv_cells.writer(out)
    writer.writerow(DIARY_COLUMNS)
    for e in entries:
        writer.writerow([device, e.seq, iso_utc(e.time_ms), e.time_ms, e.kind.name, e.value, e.source.name])


# --- audit ---------------------------------------------------------------------------------------
def canonical_json(settings: Mapping[str, Any]) -> str:
    """Settings as canonical JSON (sorted keys, no spaces); refuses secrets (see module docstring)."""
    _refuse_secrets(settings, "settings")
    try:
        return json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"audit settings must be plain JSON values: {exc}") from exc


def _refuse_secrets(value: Any, where: str) -> None:
    if isinstance(value, bytes | bytearray | memoryview):
        raise StoreError(f"audit {where} holds raw bytes: log settings, never keys or tags")
    if isinstance(value, Mapping):
        for k, v in value.items():
            words = set(re.split(r"[^a-z0-9]+", str(k).lower()))
            if words & _SECRET_WORDS:
                raise StoreError(f"audit {where} has field {k!r}: keys, tags and passwords are never logged")
            _refuse_secrets(v, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_secrets(item, where)


def audit_hash(entry_id: int, time_ms: int, user: str, role: str, device: str, action: str, before: str,
               after: str, result: str, command_id: int | None, prev_hash: str) -> str:  # fmt: skip
    """SHA-256 (hex) of an entry's fields, ``prev_hash`` included: the link of the chain."""
    record = [entry_id, time_ms, user, role, device, action, before, after, result, command_id, prev_hash]
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def verify_audit_rows(rows: Iterable[AuditEntry | Mapping[str, Any]], last_id: int | None = None) -> int | None:
    """Id of the first entry that breaks the chain, None if intact.

    ``rows`` are oldest first, as stored or as read back from the audit CSV. An edited entry fails
    its own hash; a deleted one leaves a hole in the ids, reported as the missing id; ``last_id``
    (the highest id ever given, if known) also catches a deleted tail.
    """
    expected_prev, expected_id = GENESIS_HASH, 1
    for row in rows:
        e = row if isinstance(row, AuditEntry) else _entry_from_mapping(row)
        if e.id != expected_id:
            return min(e.id, expected_id)
        fields = (e.id, e.time_ms, e.user, e.role, e.device, e.action, e.before, e.after, e.result, e.command_id)
        if e.prev_hash != expected_prev or audit_hash(*fields, e.prev_hash) != e.hash:
            return e.id
        expected_prev, expected_id = e.hash, e.id + 1
    if last_id is not None and last_id >= expected_id:
        return expected_id
    return None


def _entry_from_mapping(row: Mapping[str, Any]) -> AuditEntry:
    """An entry from a CSV row: text cells restored to what was stored (undoing the formula guard)."""
    command_id = row["command_id"]
    text = {name: csv_cells.restore(row[name]) for name in ("user", "role", "device", "action", "before", "after")}
    return AuditEntry(
        id=int(row["id"]),
        time_ms=int(row["time_ms"]),
        **text,
        result=csv_cells.restore(row["result"]),
        command_id=None if command_id in (None, "") else int(command_id),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def write_audit_csv(out: TextIO, entries: Iterable[AuditEntry]) -> None:
    """The audit CSV, hashes included, so the chain can be verified off the machine."""
    writer = csv_cells.writer(out)
    writer.writerow(AUDIT_COLUMNS)
    for e in entries:
        command_id = "" if e.command_id is None else e.command_id
        head = (e.id, iso_utc(e.time_ms), e.time_ms, e.user, e.role, e.device, e.action, e.before, e.after)
        writer.writerow([*head, e.result, command_id, e.prev_hash, e.hash])
