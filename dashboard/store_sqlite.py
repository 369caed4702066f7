"""SQLite engine of the history store: one file in WAL mode, one writer thread, pooled readers.

Writes: ``add_status`` / ``add_events`` turn their input into rows in the caller's thread and put
one item on a bounded queue. The ``store-writer`` thread owns the write connection and commits
what it gathered with ``executemany`` every ``batch_rows`` rows or ``batch_seconds`` seconds, on
``flush()`` and on ``close()``. When the queue is full the producer waits ``put_timeout_s`` and then
drops the item and counts it: memory never grows with a slow disk. Events, audit entries and
flushes are never dropped (a lost event would be a gap, a lost entry a hole in the audit trail):
they wait up to ``control_timeout_s`` for room and then raise StoreError. All go through the one
writer, so the audit hash chain has one order.

Reads: a pool of read-only connections (one per concurrent reader thread), WAL snapshots, so
readers never block the writer. ``sqlite:///:memory:`` has one connection shared by the writer and
readers under a lock instead (a private in-memory database per store; for tests and demos).

Tables (``SCHEMA_VERSION`` 3; ``diary(device, seq, ...)`` holds each device's patient diary, SPEC 4.7):
``series(id, device, name)`` names each series once and
``samples(series_id, t, v)`` is a WITHOUT ROWID table keyed (series_id, t): the primary key *is*
the (device, name, t) index, so a range or newest-N read is one B-tree descent plus a sequential
walk, independent of history length. ``latest`` keeps the newest status per device as JSON;
``events`` is keyed (device, seq); ``audit`` is append-only (triggers refuse UPDATE and DELETE).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from protocols.codec import from_json, message_class, to_json
from protocols.messages import DiaryKind, DiaryRecord, DiarySource, EventRecord, PumpStatus, ScsStatus

from .series import series_from_status
from .store import (
    GENESIS_HASH,
    ROLLUP_WIDTHS_MS,
    AuditEntry,
    EventPage,
    EventQuery,
    HistoryStore,
    LatestStatus,
    StoreError,
    StoreStats,
    audit_hash,
    bucket_points,
    canonical_json,
    downsample,
    event_dict,
    merge_buckets,
    rollup_level,
    verify_audit_rows,
    write_audit_csv,
    write_events_csv,
    write_series_csv,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3  # the script below writes this number into schema_version
# Version 1 stores lacked events.actor (who made each change, SPEC 3.8): opened, they gain it, 0 = the device.
MIGRATE_1_TO_2 = """
BEGIN IMMEDIATE;
ALTER TABLE events ADD COLUMN actor INTEGER NOT NULL DEFAULT 0;
UPDATE schema_version SET version = 2;
COMMIT;
"""
# Version 2 stores had no patient diary (SPEC 4.7): opened, they gain its empty table (the same
# statement as in SCHEMA below).
MIGRATE_2_TO_3 = """
BEGIN IMMEDIATE;
CREATE TABLE diary (
    device TEXT NOT NULL, seq INTEGER NOT NULL, time_ms INTEGER NOT NULL, kind INTEGER NOT NULL,
    value INTEGER NOT NULL, source INTEGER NOT NULL, PRIMARY KEY (device, seq)
) WITHOUT ROWID;
UPDATE schema_version SET version = 3;
COMMIT;
"""
SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (3);
CREATE TABLE diary (
    device TEXT NOT NULL, seq INTEGER NOT NULL, time_ms INTEGER NOT NULL, kind INTEGER NOT NULL,
    value INTEGER NOT NULL, source INTEGER NOT NULL, PRIMARY KEY (device, seq)
) WITHOUT ROWID;
CREATE TABLE series (id INTEGER PRIMARY KEY, device TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (device, name));
CREATE TABLE samples (
    series_id INTEGER NOT NULL, t INTEGER NOT NULL, v REAL NOT NULL, PRIMARY KEY (series_id, t)
) WITHOUT ROWID;
CREATE TABLE rollup (
    series_id INTEGER NOT NULL, level INTEGER NOT NULL, bucket INTEGER NOT NULL, n INTEGER NOT NULL,
    t_first INTEGER NOT NULL, v_first REAL NOT NULL, t_min INTEGER NOT NULL, v_min REAL NOT NULL,
    t_max INTEGER NOT NULL, v_max REAL NOT NULL, t_last INTEGER NOT NULL, v_last REAL NOT NULL,
    PRIMARY KEY (series_id, level, bucket)
) WITHOUT ROWID;
CREATE TABLE latest (
    device TEXT PRIMARY KEY, msg_type INTEGER NOT NULL, time_ms INTEGER NOT NULL,
    received_at_s REAL NOT NULL, status TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE events (
    device TEXT NOT NULL, seq INTEGER NOT NULL, time_ms INTEGER NOT NULL, code INTEGER NOT NULL,
    priority INTEGER NOT NULL, state INTEGER NOT NULL, arg0 INTEGER NOT NULL, arg1 INTEGER NOT NULL,
    actor INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (device, seq)
) WITHOUT ROWID;
CREATE INDEX events_by_time ON events (time_ms);
CREATE INDEX alarms_by_device_time ON events (device, time_ms) WHERE state != 0;
CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, user TEXT NOT NULL, role TEXT NOT NULL,
    device TEXT NOT NULL, action TEXT NOT NULL, before TEXT NOT NULL, after TEXT NOT NULL, result TEXT NOT NULL,
    command_id INTEGER, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
COMMIT;
"""
SQLITE_MAGIC = b"SQLite format 3\x00"

# Every statement is a constant with ? or :name parameters; nothing is ever formatted into SQL.
SERIES_RANGE = (
    "SELECT t, v FROM samples WHERE series_id = (SELECT id FROM series WHERE device = ? AND name = ?)"
    " AND t >= ? AND t <= ? ORDER BY t"
)
SERIES_AFTER = (
    "SELECT t, v FROM samples WHERE series_id = (SELECT id FROM series WHERE device = ? AND name = ?)"
    " AND t > ? ORDER BY t LIMIT ?"
)
ROLLUP_RANGE = (
    "SELECT n, t_first, v_first, t_min, v_min, t_max, v_max, t_last, v_last FROM rollup"
    " WHERE series_id = (SELECT id FROM series WHERE device = ? AND name = ?)"
    " AND level = ? AND bucket >= ? AND bucket <= ? ORDER BY bucket"
)
ROLLUP_FROM_SAMPLES = "SELECT 1, t, v, t, v, t, v, t, v FROM samples WHERE series_id = ? AND t >= ? AND t < ?"
ROLLUP_FROM_LEVEL = (
    "SELECT n, t_first, v_first, t_min, v_min, t_max, v_max, t_last, v_last FROM rollup"
    " WHERE series_id = ? AND level = ? AND bucket >= ? AND bucket < ?"
)
UPSERT_ROLLUP = "INSERT OR REPLACE INTO rollup VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
SERIES_NAMES = "SELECT name FROM series WHERE device = ? ORDER BY name"
TIME_RANGE = (
    "SELECT min(lo), max(hi) FROM (SELECT (SELECT min(t) FROM samples WHERE series_id = s.id) AS lo,"
    " (SELECT max(t) FROM samples WHERE series_id = s.id) AS hi FROM series AS s WHERE s.device = ?)"
)
DEVICES = "SELECT device FROM latest UNION SELECT device FROM series ORDER BY 1"
LATEST = "SELECT msg_type, received_at_s, status FROM latest WHERE device = ?"
LAST_SEQ = "SELECT coalesce(max(seq), 0) FROM events WHERE device = ?"
LAST_DIARY_SEQ = "SELECT coalesce(max(seq), 0) FROM diary WHERE device = ?"
DIARY = "SELECT seq, time_ms, kind, value, source FROM diary WHERE device = ? ORDER BY seq"
UPSERT_DIARY = (
    "INSERT INTO diary VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device, seq) DO UPDATE SET"
    " time_ms = excluded.time_ms, kind = excluded.kind, value = excluded.value, source = excluded.source"
)
SEQ_GAPS = (
    "SELECT prev + 1, seq - 1 FROM (SELECT seq, lag(seq, 1, :start - 1) OVER (ORDER BY seq) AS prev"
    " FROM events WHERE device = :device AND seq >= :start) WHERE seq - prev > 1"
)
EVENTS = {  # (one device?, newest first?) -> SQL; one static string each, so each gets its index plan
    (True, False): (
        "SELECT device, seq, time_ms, code, priority, state, arg0, arg1, actor FROM events WHERE device = :device"
        " AND seq > :since AND (:codes IS NULL OR code IN (SELECT value FROM json_each(:codes)))"
        " ORDER BY seq LIMIT :limit"
    ),
    (True, True): (
        "SELECT device, seq, time_ms, code, priority, state, arg0, arg1, actor FROM events WHERE device = :device"
        " AND seq > :since AND (:codes IS NULL OR code IN (SELECT value FROM json_each(:codes)))"
        " ORDER BY seq DESC LIMIT :limit"
    ),
    (False, False): (
        "SELECT device, seq, time_ms, code, priority, state, arg0, arg1, actor FROM events"
        " WHERE seq > :since AND (:codes IS NULL OR code IN (SELECT value FROM json_each(:codes)))"
        " ORDER BY time_ms, device, seq LIMIT :limit"
    ),
    (False, True): (
        "SELECT device, seq, time_ms, code, priority, state, arg0, arg1, actor FROM events"
        " WHERE seq > :since AND (:codes IS NULL OR code IN (SELECT value FROM json_each(:codes)))"
        " ORDER BY time_ms DESC, device, seq DESC LIMIT :limit"
    ),
}
_PAGE_FILTER = (
    " FROM events WHERE device = :device"
    " AND (:codes IS NULL OR code IN (SELECT value FROM json_each(:codes)))"
    " AND (:priorities IS NULL OR priority IN (SELECT value FROM json_each(:priorities)))"
    " AND (:start = 0 OR time_ms >= :start) AND (:end = 0 OR time_ms <= :end)"
    " AND (:alarms = 0 OR state != 0)"
)
_PAGE_COLUMNS = "SELECT device, seq, time_ms, code, priority, state, arg0, arg1, actor"
EVENT_PAGE_OLDER = f"{_PAGE_COLUMNS}{_PAGE_FILTER} AND (:before = 0 OR seq < :before) ORDER BY seq DESC LIMIT :limit"
EVENT_PAGE_NEWER = f"{_PAGE_COLUMNS}{_PAGE_FILTER} AND seq > :after ORDER BY seq LIMIT :limit"
EVENT_PAGE_COUNT = f"SELECT COUNT(*){_PAGE_FILTER}"
EVENT_PAGE_EXISTS = (
    f"SELECT EXISTS(SELECT 1{_PAGE_FILTER} AND seq < :before), EXISTS(SELECT 1{_PAGE_FILTER} AND seq > :after)"
)
ALARMS_DEVICE = (
    "SELECT device, seq, time_ms, code, priority, state, arg0, arg1, actor FROM events"
    " WHERE device = ? AND state != 0 ORDER BY time_ms DESC, seq DESC LIMIT ?"
)
ALARMS_ALL = (
    "SELECT device, seq, time_ms, code, priority, state, arg0, arg1, actor FROM events"
    " WHERE state != 0 ORDER BY time_ms DESC, device, seq DESC LIMIT ?"
)
AUDIT_ALL = (
    "SELECT id, time_ms, user, role, device, action, before, after, result, command_id, prev_hash, hash"
    " FROM audit ORDER BY id"
)
AUDIT_NEWEST = (
    "SELECT id, time_ms, user, role, device, action, before, after, result, command_id, prev_hash, hash"
    " FROM audit ORDER BY id DESC LIMIT ?"
)
AUDIT_LAST_ID = "SELECT seq FROM sqlite_sequence WHERE name = 'audit'"
AUDIT_HEAD = (
    "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'audit'), 0),"
    " (SELECT hash FROM audit ORDER BY id DESC LIMIT 1)"
)
INSERT_AUDIT = "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_SERIES = "INSERT OR IGNORE INTO series (device, name) VALUES (?, ?)"
SELECT_SERIES = "SELECT id FROM series WHERE device = ? AND name = ?"
UPSERT_SAMPLE = "INSERT INTO samples VALUES (?, ?, ?) ON CONFLICT (series_id, t) DO UPDATE SET v = excluded.v"
UPSERT_EVENT = (
    "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device, seq) DO UPDATE SET"
    " time_ms = excluded.time_ms, code = excluded.code, priority = excluded.priority, state = excluded.state,"
    " arg0 = excluded.arg0, arg1 = excluded.arg1, actor = excluded.actor"
)
UPSERT_LATEST = (
    "INSERT INTO latest VALUES (?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET msg_type = excluded.msg_type,"
    " time_ms = excluded.time_ms, received_at_s = excluded.received_at_s, status = excluded.status"
    " WHERE excluded.time_ms >= latest.time_ms"
)
_POINT = np.dtype([("t", np.int64), ("v", np.float64)])


# --- queue items ---------------------------------------------------------------------------------
@dataclass(slots=True)
class _Samples:
    device: str
    rows: list[tuple[str, int, float]]  # (name, t, v)
    latest: tuple[str, int, int, float, str] | None = None


@dataclass(slots=True)
class _Events:
    rows: list[tuple[Any, ...]]


@dataclass(slots=True)
class _Diary:
    rows: list[tuple[Any, ...]]


@dataclass(slots=True)
class _Audit:
    fields: tuple[Any, ...]  # time_ms, user, role, device, action, before, after, result, command_id
    done: Future = field(default_factory=Future)


@dataclass(slots=True)
class _Flush:
    done: Future = field(default_factory=Future)


_STOP = object()


class SqliteStore(HistoryStore):
    """``HistoryStore`` on one SQLite file (or a private in-memory database for ``:memory:``)."""

    def __init__(
        self,
        path: str,
        *,
        batch_rows: int = 500,
        batch_seconds: float = 0.5,
        queue_size: int = 1024,
        put_timeout_s: float = 0.1,
        control_timeout_s: float = 30.0,
        busy_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._memory = path == ":memory:"
        self.path = path if self._memory else os.path.abspath(path)  # readers open later: pin the cwd now
        if batch_rows < 1 or queue_size < 1:
            raise ValueError(f"batch_rows and queue_size must be positive, got {batch_rows} and {queue_size}")
        self._batch_rows, self._batch_seconds, self._put_timeout_s = batch_rows, batch_seconds, put_timeout_s
        self._control_timeout_s, self._busy_timeout_s, self._clock = control_timeout_s, busy_timeout_s, clock
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._db_lock = threading.Lock() if self._memory else contextlib.nullcontext()
        self._state = threading.Condition()
        self._closed, self._inflight = False, 0
        self._idle: list[sqlite3.Connection] = []  # reader pool: at most one per concurrent reader
        self._counts = dict.fromkeys(("rows_written", "batches", "dropped_batches", "dropped_rows", "write_errors"), 0)
        self._error: Exception | None = None
        self._conn = self._open_writer()
        # writer state, touched only by the writer thread
        self._pending: list[_Samples | _Events] = []
        self._pending_rows, self._deadline = 0, 0.0
        self._series_ids: dict[tuple[str, str], int] = {}
        # The writer's copy of each series' newest rollup bucket per level, as committed:
        # (series_id, level) -> (bucket, row). Points after its last one merge into it in memory.
        self._open_buckets: dict[tuple[int, int], tuple[int, tuple]] = {}
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    # --- connections -------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open history store {self.path}: {exc}") from exc

    def _open_writer(self) -> sqlite3.Connection:
        if not self._memory:
            _check_sqlite_file(self.path)
        conn = self._connect()
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not self._memory:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            if not tables:
                conn.executescript(SCHEMA)
            elif "schema_version" not in tables:
                raise StoreError(f"{self.path} is a SQLite database but not a history store (no schema_version)")
            else:
                version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
                if version == 1:
                    conn.executescript(MIGRATE_1_TO_2)
                    version = 2
                if version == 2:
                    conn.executescript(MIGRATE_2_TO_3)
                    version = 3
                if version != SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has history schema version {version}; this dashboard reads {SCHEMA_VERSION}"
                    )
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open history store {self.path}: {exc}") from exc
        except StoreError:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _read(self, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection for reading; ``snapshot`` holds one read transaction for several statements."""
        try:
            yield from self._reader(snapshot)
        except sqlite3.Error as exc:
            raise StoreError(f"history store {self.path}: read failed: {exc}") from exc

    def _reader(self, snapshot: bool) -> Iterator[sqlite3.Connection]:
        if self._memory:
            with self._db_lock:
                self._check_open()
                yield from self._in_transaction(self._conn, snapshot)
            return
        with self._state:
            self._check_open()
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
        try:
            yield from self._in_transaction(conn, snapshot)
        finally:
            with self._state:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    @staticmethod
    def _in_transaction(conn: sqlite3.Connection, snapshot: bool) -> Iterator[sqlite3.Connection]:
        if not snapshot:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"history store {self.path} is closed")

    # --- producer side -----------------------------------------------------------------------------
    def _enqueue(self, item: Any, rows: int, droppable: bool) -> None:
        """Queue ``item``: samples are dropped and counted after put_timeout_s; anything else waits, then raises."""
        with self._state:
            self._check_open()
            self._inflight += 1
        try:
            self._queue.put(item, timeout=self._put_timeout_s if droppable else self._control_timeout_s)
        except queue.Full:
            if not droppable:
                raise StoreError(f"history writer of {self.path} is not keeping up") from None
            with self._state:
                self._counts["dropped_batches"] += 1
                self._counts["dropped_rows"] += rows
        finally:
            with self._state:
                self._inflight -= 1
                self._state.notify_all()

    def add_status(self, device: str, status: ScsStatus | PumpStatus, received_at_s: float) -> None:
        rows = [(name, status.time_ms, v) for name, v in series_from_status(status).items()]
        snapshot = json.dumps(to_json(status), separators=(",", ":"))
        latest = (device, int(status.TYPE), status.time_ms, float(received_at_s), snapshot)
        self._enqueue(_Samples(device, rows, latest), len(rows), droppable=True)

    def add_series(self, device: str, name: str, times_ms: Iterable[int], values: Iterable[float]) -> None:
        points = zip(times_ms, values, strict=True)
        while chunk := [(name, int(t), float(v)) for t, v in itertools.islice(points, self._batch_rows)]:
            if not all(math.isfinite(v) for _, _, v in chunk):
                raise ValueError(f"series {name!r}: values must be finite (SQLite stores NaN as NULL)")
            self._enqueue(_Samples(device, chunk), len(chunk), droppable=True)

    def add_events(self, device: str, events: Iterable[EventRecord]) -> None:
        rows = [
            (device, e.seq, e.time_ms, int(e.code), int(e.priority), int(e.state), e.arg0, e.arg1, int(e.actor))
            for e in events
        ]
        for start in range(0, len(rows), self._batch_rows):
            chunk = rows[start : start + self._batch_rows]
            self._enqueue(_Events(chunk), len(chunk), droppable=False)  # a dropped event would be a gap

    def add_diary(self, device: str, entries: Iterable[DiaryRecord]) -> None:
        rows = [(device, e.seq, e.time_ms, int(e.kind), e.value, int(e.source)) for e in entries]
        for start in range(0, len(rows), self._batch_rows):
            chunk = rows[start : start + self._batch_rows]
            self._enqueue(_Diary(chunk), len(chunk), droppable=False)  # a dropped entry would be a gap

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
        time_ms = int(self._clock() * 1000)
        fields = (time_ms, user, role, device or "", action, canonical_json(before), canonical_json(after), result)
        item = _Audit((*fields, command_id))
        self._enqueue(item, 1, droppable=False)
        return self._wait(item.done)

    def flush(self) -> None:
        with self._state:
            if self._closed:
                return
        item = _Flush()
        self._enqueue(item, 0, droppable=False)
        self._wait(item.done)

    def _wait(self, done: Future) -> Any:
        try:
            return done.result(timeout=self._control_timeout_s)
        except FutureTimeout:
            raise StoreError(f"history writer of {self.path} did not answer in {self._control_timeout_s} s") from None

    def close(self) -> None:
        with self._state:
            if self._closed:
                return
            self._closed = True
            self._state.wait_for(lambda: self._inflight == 0)
        while self._thread.is_alive():  # room appears as the writer drains; a dead writer needs no stop
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()
        with self._state:
            for conn in self._idle:
                conn.close()
            self._idle.clear()
        with self._db_lock:
            self._conn.close()
        if self._error is not None:
            error, self._error = self._error, None
            raise StoreError(f"history store {self.path}: a write failed: {error}") from error

    def stats(self) -> StoreStats:
        with self._state:
            counts = dict(self._counts)
        return StoreStats(**counts, queue_depth=self._queue.qsize(), queue_capacity=self._queue.maxsize)

    # --- the writer thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            timeout = max(0.0, self._deadline - time.monotonic()) if self._pending else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._commit()
                continue
            if item is _STOP:
                self._commit()
                return
            if isinstance(item, _Flush):
                self._commit()
                error, self._error = self._error, None
                if error is None:
                    item.done.set_result(None)
                else:
                    item.done.set_exception(StoreError(f"history store {self.path}: a write failed: {error}"))
            elif isinstance(item, _Audit):
                self._commit()  # rows queued before the entry land before it
                self._append_audit(item)
            else:
                if not self._pending:
                    self._deadline = time.monotonic() + self._batch_seconds
                self._pending.append(item)
                self._pending_rows += len(item.rows)
                if self._pending_rows >= self._batch_rows:
                    self._commit()

    def _commit(self) -> None:
        if not self._pending:
            return
        pending, rows = self._pending, self._pending_rows
        self._pending, self._pending_rows = [], 0
        samples = [p for p in pending if isinstance(p, _Samples)]
        new_ids: dict[tuple[str, str], int] = {}
        try:
            with self._db_lock, self._transaction():
                for key in {(p.device, name) for p in samples for name, _, _ in p.rows}:
                    if key not in self._series_ids:
                        new_ids[key] = self._series_id(key)
                ids = self._series_ids | new_ids
                points = [(ids[(p.device, name)], t, v) for p in samples for name, t, v in p.rows]
                self._conn.executemany(UPSERT_SAMPLE, points)
                buckets = self._update_rollups(points)
                self._conn.executemany(UPSERT_EVENT, (r for p in pending if isinstance(p, _Events) for r in p.rows))
                self._conn.executemany(UPSERT_DIARY, (r for p in pending if isinstance(p, _Diary) for r in p.rows))
                self._conn.executemany(UPSERT_LATEST, (p.latest for p in samples if p.latest))
        except Exception as exc:  # the writer must outlive a bad batch: log, count, report at flush/close
            self._open_buckets.clear()  # they may hold what was rolled back: read them afresh
            log.exception("history store %s: batch of %d rows lost", self.path, rows)
            self._error = exc
            with self._state:
                self._counts["write_errors"] += 1
                self._counts["dropped_rows"] += rows
            return
        self._series_ids.update(new_ids)  # only ids that were committed
        for (sid, level, bucket), row in buckets.items():  # only buckets that were committed
            held = self._open_buckets.get((sid, level))
            if held is None or bucket >= held[0]:
                self._open_buckets[(sid, level)] = (bucket, row)
        with self._state:
            self._counts["rows_written"] += rows
            self._counts["batches"] += 1

    def _update_rollups(self, points: list[tuple[int, int, float]]) -> dict[tuple[int, int, int], tuple]:
        """Bring every rollup bucket the batch touched up to date; return them by (series, level, bucket).

        A series' points that all come after the last point of its newest bucket (the usual case: a
        device reports in time order) are merged into the writer's copy of that bucket, with no
        read. Anything else (a new bucket, a late point, a rewritten one) is recomputed level by
        level from the level below, as the store holds it.
        """
        done: dict[tuple[int, int, int], tuple] = {}
        finer = 1
        for level, width in enumerate(ROLLUP_WIDTHS_MS, 1):  # level by level: a recompute reads the one below
            grouped: dict[tuple[int, int], list[tuple]] = {}
            for sid, t, v in points:
                grouped.setdefault((sid, t // width), []).append((1, t, v, t, v, t, v, t, v))
            updates = []
            for (sid, bucket), raw in grouped.items():
                row = self._merged_in_memory(sid, level, bucket, raw)
                if row is None:
                    if level == 1:
                        source = self._conn.execute(ROLLUP_FROM_SAMPLES, (sid, bucket * width, (bucket + 1) * width))
                    else:
                        ratio = width // finer
                        source = self._conn.execute(
                            ROLLUP_FROM_LEVEL, (sid, level - 1, bucket * ratio, (bucket + 1) * ratio)
                        )
                    row = merge_buckets(source.fetchall())
                done[(sid, level, bucket)] = row
                updates.append((sid, level, bucket, *row))
            self._conn.executemany(UPSERT_ROLLUP, updates)
            finer = width
        return done

    def _merged_in_memory(self, sid: int, level: int, bucket: int, raw: list[tuple]) -> tuple | None:
        """The bucket with ``raw`` merged into the writer's copy, when that is exact: the copy is of
        this bucket and every point is new (after its last point, no time twice); else None."""
        held = self._open_buckets.get((sid, level))
        if held is None or held[0] != bucket:
            return None
        times = [r[1] for r in raw]
        if min(times) <= held[1][7] or len(set(times)) != len(times):
            return None
        return merge_buckets([held[1], *raw])

    def _series_id(self, key: tuple[str, str]) -> int:
        self._conn.execute(INSERT_SERIES, key)
        return self._conn.execute(SELECT_SERIES, key).fetchone()[0]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _append_audit(self, item: _Audit) -> None:
        try:
            with self._db_lock, self._transaction():
                last_id, prev_hash = self._conn.execute(AUDIT_HEAD).fetchone()
                entry_id = last_id + 1
                prev_hash = prev_hash or GENESIS_HASH
                digest = audit_hash(entry_id, *item.fields, prev_hash)
                self._conn.execute(INSERT_AUDIT, (entry_id, *item.fields, prev_hash, digest))
        except sqlite3.Error as exc:
            item.done.set_exception(StoreError(f"history store {self.path}: audit entry not written: {exc}"))
            return
        item.done.set_result(entry_id)

    # --- reads -------------------------------------------------------------------------------------
    def devices(self) -> list[str]:
        with self._read() as conn:
            return [row[0] for row in conn.execute(DEVICES)]

    def latest_status(self, device: str) -> LatestStatus | None:
        with self._read() as conn:
            row = conn.execute(LATEST, (device,)).fetchone()
        if row is None:
            return None
        msg_type, received_at_s, text = row
        try:
            status = from_json(message_class(msg_type), json.loads(text))
        except (KeyError, ValueError, TypeError) as exc:
            raise StoreError(f"stored status of {device!r} cannot be read with this schema: {exc}") from exc
        return LatestStatus(device, status, received_at_s)

    def series_names(self, device: str) -> list[str]:
        with self._read() as conn:
            return [row[0] for row in conn.execute(SERIES_NAMES, (device,))]

    def time_range(self, device: str) -> tuple[int, int] | None:
        with self._read() as conn:
            first, last = conn.execute(TIME_RANGE, (device,)).fetchone()
        return None if first is None else (first, last)

    def series(
        self, device: str, name: str, start_ms: int, end_ms: int, max_points: int = 2000
    ) -> tuple[np.ndarray, np.ndarray]:
        level = rollup_level(start_ms, end_ms, max_points)
        width = ROLLUP_WIDTHS_MS[level - 1] if level else 1
        first, last = -(-start_ms // width), (end_ms + 1) // width - 1  # the buckets wholly inside the range
        if level == 0 or first > last:
            with self._read() as conn:
                times, values = _points(conn.execute(SERIES_RANGE, (device, name, start_ms, end_ms)))
            return downsample(times, values, max_points)
        with self._read(snapshot=True) as conn:  # raw rows at both ends, rollup buckets between
            head = _points(conn.execute(SERIES_RANGE, (device, name, start_ms, first * width - 1)))
            body = bucket_points(conn.execute(ROLLUP_RANGE, (device, name, level, first, last)))
            tail = _points(conn.execute(SERIES_RANGE, (device, name, (last + 1) * width, end_ms)))
        times, values = (np.concatenate(parts) for parts in zip(head, body, tail, strict=True))
        return downsample(times, values, max_points)

    def series_after(self, device: str, name: str, after_ms: int, limit: int = 10000) -> tuple[np.ndarray, np.ndarray]:
        with self._read() as conn:
            return _points(conn.execute(SERIES_AFTER, (device, name, after_ms, limit)))

    def last_event_seq(self, device: str) -> int:
        with self._read() as conn:
            return conn.execute(LAST_SEQ, (device,)).fetchone()[0]

    def last_diary_seq(self, device: str) -> int:
        with self._read() as conn:
            return conn.execute(LAST_DIARY_SEQ, (device,)).fetchone()[0]

    def diary(self, device: str) -> list[DiaryRecord]:
        with self._read() as conn:
            return [
                DiaryRecord(seq, t, DiaryKind(kind), value, DiarySource(source))
                for seq, t, kind, value, source in conn.execute(DIARY, (device,))
            ]

    def event_seq_gaps(self, device: str, from_seq: int = 1) -> list[tuple[int, int]]:
        with self._read() as conn:
            return [(a, b) for a, b in conn.execute(SEQ_GAPS, {"device": device, "start": from_seq})]

    def events(
        self,
        device: str | None,
        since_seq: int = 0,
        codes: Iterable[int] | None = None,
        limit: int = 500,
        *,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        wanted = None if codes is None else json.dumps(sorted(int(c) for c in codes))
        params = {"device": device, "since": since_seq, "codes": wanted, "limit": limit}
        with self._read() as conn:
            return [event_dict(*row) for row in conn.execute(EVENTS[device is not None, newest_first], params)]

    def event_page(self, query: EventQuery) -> EventPage:
        def listed(values: tuple[int, ...]) -> str | None:
            return json.dumps(sorted(int(v) for v in values)) if values else None

        params: dict[str, Any] = {
            "device": query.device,
            "codes": listed(query.codes),
            "priorities": listed(query.priorities),
            "start": query.start_ms,
            "end": query.end_ms,
            "alarms": int(query.alarms_only),
            "before": query.before_seq,
            "after": query.after_seq,
            "limit": query.limit,
        }
        with self._read(snapshot=True) as conn:
            if query.after_seq and not query.before_seq:
                rows = list(conn.execute(EVENT_PAGE_NEWER, params))[::-1]
            else:
                rows = list(conn.execute(EVENT_PAGE_OLDER, params))
            total = conn.execute(EVENT_PAGE_COUNT, params).fetchone()[0]
            bounds = {**params, "before": rows[-1][1] if rows else 0, "after": rows[0][1] if rows else 0}
            older, newer = conn.execute(EVENT_PAGE_EXISTS, bounds).fetchone() if rows else (0, 0)
        return EventPage([event_dict(*row) for row in rows], total, bool(older), bool(newer))

    def alarm_history(self, device: str | None, limit: int = 200) -> list[dict[str, Any]]:
        sql, params = (ALARMS_ALL, (limit,)) if device is None else (ALARMS_DEVICE, (device, limit))
        with self._read() as conn:
            return [event_dict(*row) for row in conn.execute(sql, params)]

    def audit(self, limit: int = 200) -> list[dict[str, Any]]:
        with self._read() as conn:
            return [AuditEntry(*row).as_dict() for row in conn.execute(AUDIT_NEWEST, (limit,))]

    def verify_audit(self) -> int | None:
        with self._read(snapshot=True) as conn:
            last_id = conn.execute(AUDIT_LAST_ID).fetchone()
            entries = (AuditEntry(*row) for row in conn.execute(AUDIT_ALL))
            return verify_audit_rows(entries, last_id[0] if last_id else None)

    # --- export ------------------------------------------------------------------------------------
    def export_series_csv(self, device: str, names: Iterable[str], start_ms: int, end_ms: int, out: TextIO) -> None:
        wanted = list(dict.fromkeys(names))
        with self._read(snapshot=True) as conn:
            columns = [conn.execute(SERIES_RANGE, (device, n, start_ms, end_ms)) for n in wanted]
            write_series_csv(out, wanted, columns)

    def export_events_csv(self, device: str | None, out: TextIO) -> None:
        params = {"device": device, "since": 0, "codes": None, "limit": -1}
        with self._read() as conn:
            write_events_csv(out, (event_dict(*row) for row in conn.execute(EVENTS[device is not None, False], params)))

    def export_audit_csv(self, out: TextIO) -> None:
        with self._read() as conn:
            write_audit_csv(out, (AuditEntry(*row) for row in conn.execute(AUDIT_ALL)))


def _points(rows: Iterable[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(times int64, values float64) of (t, v) rows, without a Python list in between."""
    array = np.fromiter(rows, dtype=_POINT)
    return array["t"].copy(), array["v"].copy()


def _check_sqlite_file(path: str) -> None:
    """Refuse an existing non-empty file that is not SQLite, before SQLite touches it."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot open history store {path}: {exc}") from exc
    if head and head != SQLITE_MAGIC:
        raise StoreError(f"{path} is not a SQLite database; give a new path or an existing history store")
