"""History store contract tests, run over each backend (SQLite file and ``sqlite:///:memory:``).

File-only tests reach under the interface on purpose: to tamper with the audit table, hold the
database lock from a second connection, or bulk-load 30 days of rows for the query-plan check.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import sqlite3
import threading
import time
from datetime import datetime

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dashboard import store_sqlite
from dashboard.series import series_from_status
from dashboard.store import (
    GENESIS_HASH,
    ROLLUP_WIDTHS_MS,
    EventQuery,
    HistoryStore,
    StoreError,
    downsample,
    merge_buckets,
    open_store,
    rollup_level,
    verify_audit_rows,
)
from protocols.messages import (
    Actor,
    AlarmState,
    DiaryKind,
    DiaryRecord,
    DiarySource,
    EventCode,
    EventRecord,
    Priority,
    PumpStatus,
)
from protocols.vectors import EXCHANGE
from tests.fakes import scs_status

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PUMP = next(m for _, m, _ in EXCHANGE if isinstance(m, PumpStatus))
SCS_SERIES = len(series_from_status(scs_status()))


def scs_at(time_ms: int, battery_x100: int = 8250, power_uw: int = 450):
    return dataclasses.replace(scs_status(), time_ms=time_ms, battery_pct_x100=battery_x100, tissue_power_uw=power_uw)


def event(seq: int, state: AlarmState = AlarmState.NONE, code: EventCode = EventCode.THERAPY_ON) -> EventRecord:
    priority = Priority.NONE if state == AlarmState.NONE else Priority.MEDIUM
    return EventRecord(seq, T0 + seq * 1000, code, priority, state, seq, -seq, Actor.CLINICIAN)


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


@pytest.fixture(params=["file", "memory"])
def url(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'history.db'}" if request.param == "file" else "sqlite:///:memory:"


@pytest.fixture
def file_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'history.db'}"


@pytest.fixture
def store(url):
    with open_store(url, batch_seconds=0.02) as s:
        yield s


# --- opening ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    ["postgres://u:hunter2@db/h", "sqlite://", "sqlite:/h.db", "sqlite:///", "sqlite:///h.db?mode=ro", "h.db", ""],
)
def test_bad_url_names_it_and_the_supported_form(bad):
    with pytest.raises(StoreError) as info:
        open_store(bad)
    assert isinstance(info.value, ValueError)
    assert "sqlite:///:memory:" in str(info.value) and "sqlite:///relative/path.db" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert bad.replace("hunter2", "***") in str(info.value)


def test_relative_and_absolute_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///rel.db") as s:
        s.add_status("d", scs_at(T0), 1.0)
    with open_store(f"sqlite:///{tmp_path}/rel.db") as s:  # sqlite:////abs/path
        assert s.series_names("d")


def test_not_sqlite_file_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("not a database\n" * 10)
    with pytest.raises(StoreError, match=r"notes\.db is not a SQLite database"):
        open_store(f"sqlite:///{path}")
    assert path.read_text() == "not a database\n" * 10


def test_foreign_sqlite_and_other_schema_version_are_refused(tmp_path):
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(StoreError, match=r"foreign\.db is a SQLite database but not a history store"):
        open_store(f"sqlite:///{foreign}")
    newer = tmp_path / "newer.db"
    open_store(f"sqlite:///{newer}").close()
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"newer\.db has history schema version 99; this dashboard reads 3"):
        open_store(f"sqlite:///{newer}")
    with pytest.raises(StoreError, match="missing"):
        open_store(f"sqlite:///{tmp_path}/missing/dir/h.db")


def test_a_version_1_store_gains_the_actor_column_and_keeps_its_events(tmp_path):
    """A history file from before the patient role opens: its events read as the device's, new ones keep who."""
    path = tmp_path / "old.db"
    v1 = store_sqlite.SCHEMA.replace("INSERT INTO schema_version VALUES (3);", "INSERT INTO schema_version VALUES (1);")
    v1 = v1.replace("    actor INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (device, seq)", "    PRIMARY KEY (device, seq)")
    v1 = v1.replace(_DIARY_DDL, "")  # nor a diary
    conn = sqlite3.connect(path)
    conn.executescript(v1)
    conn.execute("INSERT INTO events VALUES ('d', 1, ?, ?, 0, 0, 5, 6)", (T0, int(EventCode.THERAPY_ON)))
    conn.commit()
    conn.close()
    with open_store(f"sqlite:///{path}") as s:
        s.add_events("d", [event(2)])
        s.flush()
        assert [(e["seq"], e["actor"], e["arg0"]) for e in s.events("d")] == [(1, "DEVICE", 5), (2, "CLINICIAN", 2)]
        s.add_diary("d", [DiaryRecord(1, T0, DiaryKind.NRS, 7, DiarySource.CONTROLLER)])
        s.flush()
        assert s.last_diary_seq("d") == 1  # and it gained the diary table
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
    conn.close()


_DIARY_DDL = store_sqlite.SCHEMA[
    store_sqlite.SCHEMA.index("CREATE TABLE diary") : store_sqlite.SCHEMA.index("CREATE TABLE series")
]


def test_the_diary_is_kept_by_sequence_and_re_adding_an_entry_never_duplicates_it(store):
    entries = [
        DiaryRecord(1, T0, DiaryKind.ODI, 48, DiarySource.CONTROLLER),
        DiaryRecord(2, T0 + 1000, DiaryKind.NRS, 7, DiarySource.CONTROLLER),
        DiaryRecord(3, T0 - 5000, DiaryKind.NRS, 4, DiarySource.CLINICIAN),  # typed for an earlier time
    ]
    store.add_diary("scs a", entries[:2])
    store.add_diary("scs a", entries[1:])
    store.add_diary("other", entries[:1])
    store.flush()
    assert store.diary("scs a") == entries and store.last_diary_seq("scs a") == 3
    assert store.last_diary_seq("other") == 1 and store.last_diary_seq("none") == 0


def test_file_is_wal_with_schema_version(file_url):
    with open_store(file_url) as s:
        path = s.path
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(store_sqlite.SCHEMA_VERSION,)]
    conn.close()


def test_memory_stores_are_private(store):
    with open_store("sqlite:///:memory:") as other:
        store.add_status("d", scs_at(T0), 1.0)
        store.flush()
        assert other.devices() == [] and store.devices() == ["d"]


# --- lifecycle -------------------------------------------------------------------------------------
def test_close_flushes_queued_rows_and_stops_the_writer(file_url):
    s = open_store(file_url, batch_rows=10**6, batch_seconds=3600)
    assert isinstance(s, HistoryStore)
    for i in range(50):
        s.add_status("d", scs_at(T0 + i * 1000), 1.0)
    assert s.stats().rows_written == 0  # nothing reached the size or time limit
    s.close()
    s.close()  # idempotent
    assert not any(t.name == "store-writer" for t in threading.enumerate())
    with pytest.raises(StoreError, match="closed"):
        s.add_status("d", scs_at(T0), 1.0)
    with pytest.raises(StoreError, match="closed"):
        s.series_names("d")
    s.flush()  # nothing left to flush
    with open_store(file_url) as again:
        assert len(again.series_after("d", "battery_pct", 0)[0]) == 50


def test_batches_commit_by_size_and_by_time(url):
    with open_store(url, batch_rows=2 * SCS_SERIES, batch_seconds=3600) as s:
        s.add_status("d", scs_at(T0), 1.0)
        s.add_status("d", scs_at(T0 + 1000), 1.0)
        wait_for(lambda: s.stats().batches == 1)
    with open_store(url, batch_rows=10**6, batch_seconds=0.01) as s:
        s.add_status("d", scs_at(T0), 1.0)
        wait_for(lambda: s.stats().rows_written == SCS_SERIES)


def test_stats_count_rows_and_batches(store):
    for i in range(10):
        store.add_status("d", scs_at(T0 + i), 1.0)
    store.add_events("d", [event(1), event(2)])
    store.flush()
    stats = store.stats()
    assert stats.rows_written == 10 * SCS_SERIES + 2
    assert stats.batches >= 1 and stats.dropped_batches == stats.dropped_rows == stats.write_errors == 0
    assert stats.queue_depth == 0 and stats.queue_capacity == 1024


def test_full_queue_drops_and_counts_samples_but_never_events(file_url):
    with open_store(file_url, queue_size=2, put_timeout_s=0.01, control_timeout_s=0.2, batch_rows=1) as s:
        blocker = sqlite3.connect(s.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the writer's next commit waits on this lock
        for i in range(12):
            s.add_status("d", scs_at(T0 + i * 1000), 1.0)
            assert s.stats().queue_depth <= 2
        with pytest.raises(StoreError, match="not keeping up"):
            s.add_events("d", [event(1)])  # refused loudly, never dropped silently
        blocker.execute("ROLLBACK")
        blocker.close()
        s.flush()
        stats = s.stats()
    assert stats.dropped_batches >= 12 - 3
    assert stats.rows_written + stats.dropped_rows == 12 * SCS_SERIES
    assert stats.rows_written == (12 - stats.dropped_batches) * SCS_SERIES


def test_failed_write_is_reported_by_flush(file_url):
    with open_store(file_url, busy_timeout_s=0.05) as s:
        blocker = sqlite3.connect(s.path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        s.add_status("d", scs_at(T0), 1.0)
        with pytest.raises(StoreError, match="a write failed: database is locked"):
            s.flush()
        blocker.execute("ROLLBACK")
        blocker.close()
        s.add_status("d", scs_at(T0 + 1000), 1.0)
        s.flush()  # the error was reported once; the writer goes on
        assert s.stats().write_errors == 1 and s.stats().dropped_rows == SCS_SERIES
        assert len(s.series("d", "battery_pct", 0, 2 * T0)[0]) == 1


# --- series ----------------------------------------------------------------------------------------
def test_status_round_trip(store):
    statuses = [scs_at(T0 + i * 1000, battery_x100=9000 - i, power_uw=400 + i) for i in range(3)]
    for i, status in enumerate(statuses):
        store.add_status("stim", status, 100.0 + i)
    store.add_status("pump", PUMP, 50.0)
    store.flush()
    assert store.devices() == ["pump", "stim"]
    assert store.series_names("stim") == sorted(series_from_status(statuses[0]))
    assert store.series_names("pump") == sorted(series_from_status(PUMP))
    times, values = store.series("stim", "battery_pct", T0, T0 + 2000)
    assert times.dtype == np.int64 and values.dtype == np.float64
    assert times.tolist() == [T0, T0 + 1000, T0 + 2000]
    assert values.tolist() == [90.0, 89.99, 89.98]
    for name, value in series_from_status(PUMP).items():
        assert store.series("pump", name, 0, 2 * T0)[1].tolist() == [value]
    assert store.time_range("stim") == (T0, T0 + 2000)
    assert store.time_range("nobody") is None
    latest = store.latest_status("stim")
    assert latest.status == statuses[-1] and latest.received_at_s == 102.0
    assert store.latest_status("pump").status == PUMP
    assert store.latest_status("nobody") is None


def test_latest_keeps_the_newest_device_time_and_same_time_upserts(store):
    store.add_status("d", scs_at(T0 + 5000, battery_x100=5000), 1.0)
    store.add_status("d", scs_at(T0, battery_x100=7000), 2.0)  # backfill of an older snapshot
    store.add_status("d", scs_at(T0, battery_x100=7100), 3.0)  # same device time again
    store.flush()
    assert store.latest_status("d").status.battery_pct_x100 == 5000
    assert store.series("d", "battery_pct", 0, 2 * T0)[1].tolist() == [71.0, 50.0]


def test_series_after_returns_only_newer_rows_and_pages(store):
    for i in range(10):
        store.add_status("d", scs_at(T0 + i * 1000, battery_x100=i * 100), 1.0)
    store.flush()
    times, values = store.series_after("d", "battery_pct", T0 + 6000)
    assert times.tolist() == [T0 + 7000, T0 + 8000, T0 + 9000] and values.tolist() == [7.0, 8.0, 9.0]
    assert store.series_after("d", "battery_pct", T0 + 9000)[0].size == 0
    page = store.series_after("d", "battery_pct", 0, limit=4)[0]
    assert page.tolist() == [T0 + i * 1000 for i in range(4)]
    assert store.series_after("d", "battery_pct", int(page[-1]), limit=4)[0][0] == T0 + 4000
    assert store.series_after("d", "no_such_series", 0)[0].size == 0


def spiky(n: int, step_ms: int, every: int):
    """A smooth series with a planted spike up and down in the middle of each run of ``every`` points."""
    times = T0 + np.arange(n, dtype=np.int64) * step_ms
    values = np.sin(np.arange(n) / 50.0)
    ups, downs = np.arange(every // 3, n, every), np.arange(2 * every // 3, n, every)
    values[ups] += 10 + np.arange(len(ups)) % 7
    values[downs] -= 10 + np.arange(len(downs)) % 5
    return times, values, np.concatenate([ups, downs])


def assert_downsampled(times, values, full_t, full_v, spikes, max_points):
    assert len(times) <= max_points
    assert times[0] == full_t[0] and times[-1] == full_t[-1]
    assert np.all(np.diff(times) > 0)
    index = np.searchsorted(full_t, times)
    assert np.array_equal(full_t[index], times) and np.array_equal(full_v[index], values)  # real points only
    assert set(full_t[spikes].tolist()) <= set(times.tolist())  # every bucket's min and max survive


def test_downsampling_keeps_first_last_and_each_buckets_min_and_max(store):
    full_t, full_v, spikes = spiky(20_000, 1000, every=200)
    store.add_series("d", "battery_pct", full_t, full_v)
    store.flush()
    span = (int(full_t[0]), int(full_t[-1]))
    assert rollup_level(*span, 2000) == 0  # raw rows, M4 in numpy
    times, values = store.series("d", "battery_pct", *span, max_points=2000)
    assert_downsampled(times, values, full_t, full_v, spikes, 2000)
    few_t, few_v = store.series("d", "battery_pct", span[0], span[0] + 9000, max_points=2000)
    assert few_t.tolist() == full_t[:10].tolist() and few_v.tolist() == full_v[:10].tolist()


@pytest.mark.parametrize(("n", "step_ms", "level"), [(172_800, 1000, 1), (43_200, 60_000, 2)])
def test_long_ranges_read_rollups_and_still_keep_extremes(store, n, step_ms, level):
    full_t, full_v, spikes = spiky(n, step_ms, every=n // 300)
    store.add_series("d", "battery_pct", full_t, full_v)
    store.flush()
    start, end = int(full_t[0]) + 1234, int(full_t[-1])  # start mid-bucket: raw head, rollups, raw tail
    assert rollup_level(start, end, 2000) == level
    inside = full_t >= start
    times, values = store.series("d", "battery_pct", start, end, max_points=2000)
    assert_downsampled(times, values, full_t[inside], full_v[inside], spikes - int(np.argmax(inside)), 2000)
    # a late value in an old bucket (backfill) updates the rollups of every level
    store.add_series("d", "battery_pct", [int(full_t[n // 2])], [1e6])
    store.flush()
    assert store.series("d", "battery_pct", start, end, max_points=2000)[1].max() == 1e6


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.lists(st.tuples(st.integers(-200, 400), st.floats(-1e3, 1e3, allow_nan=False)), max_size=30),
        min_size=1,
        max_size=8,
    )
)
@example([[(0, 1.0)], [(-199, 2.0), (-199, 3.0)]])  # one time twice in a batch, after the bucket's last
def test_rollups_kept_in_step_batch_by_batch_equal_a_recompute(tmp_path_factory, batches):
    # Batches mostly move forward in time (the writer merges them into its copy of the newest
    # bucket) but may hold late points, repeats and rewrites (recomputed from the store).
    path = tmp_path_factory.mktemp("rollups") / "history.db"
    clock = T0
    with open_store(f"sqlite:///{path}") as s:
        for batch in batches:
            times = [clock + step * 20_000 for step, _ in batch]  # steps of 20 s: buckets of 60 s and 1 h
            clock += 200 * 20_000
            if batch:
                s.add_series("d", "battery_pct", times, [v for _, v in batch])
                s.flush()
    conn = sqlite3.connect(path)
    samples = conn.execute("SELECT t, v FROM samples").fetchall()
    stored = {(level, bucket): tuple(rest) for level, bucket, *rest in conn.execute("SELECT level, bucket, n,"
              " t_first, v_first, t_min, v_min, t_max, v_max, t_last, v_last FROM rollup")}  # fmt: skip
    conn.close()
    expected = {}
    for level, width in enumerate(ROLLUP_WIDTHS_MS, 1):
        for bucket in {t // width for t, _ in samples}:
            inside = [(1, t, v, t, v, t, v, t, v) for t, v in samples if t // width == bucket]
            expected[(level, bucket)] = merge_buckets(inside)
    assert stored == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=400),
    st.integers(4, 64),
)
def test_downsample_property(values, max_points):
    v = np.array(values, dtype=np.float64)
    t = T0 + np.arange(len(v), dtype=np.int64) * 7
    times, out = downsample(t, v, max_points)
    assert len(times) <= max_points and times[0] == t[0] and times[-1] == t[-1]
    assert out.max() == v.max() and out.min() == v.min()


def test_newest_points_read_uses_the_index_at_any_history_length(file_url, record_property):
    with open_store(file_url) as s:
        s.add_series("d", "battery_pct", [T0], [1.0])
        s.flush()
        conn = sqlite3.connect(s.path, isolation_level=None)
        (sid,) = conn.execute("SELECT id FROM series WHERE device = 'd'").fetchone()
        for rows in (3_600, 2_592_000):  # an hour, then 30 days at 1 Hz
            conn.execute(
                "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ?)"
                " INSERT OR IGNORE INTO samples SELECT ?, ? + i * 1000, i FROM c",
                (rows - 1, sid, T0),
            )
            last = T0 + (rows - 1) * 1000
            for sql in (store_sqlite.SERIES_RANGE, store_sqlite.SERIES_AFTER):
                plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, ("d", "x", 0, 0)))
                assert "SEARCH samples USING PRIMARY KEY (series_id=? AND t>?" in plan and "SCAN" not in plan
            plan = " | ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + store_sqlite.ROLLUP_RANGE, [0] * 5))
            assert "SEARCH rollup USING PRIMARY KEY (series_id=? AND level=? AND bucket>? AND bucket<?)" in plan
            started = time.perf_counter()
            times, values = s.series("d", "battery_pct", last - 59_000, last)
            record_property(f"newest_60_of_{rows}_rows_ms", round((time.perf_counter() - started) * 1000, 3))
            assert len(times) == 60 and times[-1] == last and values[-1] == rows - 1
            assert s.series_after("d", "battery_pct", last - 60_000)[0].tolist() == times.tolist()
        conn.close()


# --- events ----------------------------------------------------------------------------------------
def test_events_upsert_is_idempotent_and_gaps_are_found(store):
    store.add_events("d", [event(s) for s in (3, 4, 6, 7, 10)])
    store.add_events("d", [event(s) for s in (3, 4, 6)])  # re-read after a reconnect
    store.flush()
    assert store.last_event_seq("d") == 10 and store.last_event_seq("other") == 0
    assert [e["seq"] for e in store.events("d")] == [3, 4, 6, 7, 10]
    assert store.event_seq_gaps("d") == [(1, 2), (5, 5), (8, 9)]
    assert store.event_seq_gaps("d", from_seq=3) == [(5, 5), (8, 9)]
    store.add_events("d", [event(s) for s in range(1, 11)])
    store.flush()
    assert store.event_seq_gaps("d") == [] and len(store.events("d")) == 10
    assert store.stats().rows_written == 18


def test_events_filters_and_alarm_history(store):
    store.add_events("a", [event(1), event(2, AlarmState.ACTIVE, EventCode.LOW_RESERVOIR), event(3)])
    store.add_events("a", [event(4, AlarmState.ACKNOWLEDGED, EventCode.LOW_RESERVOIR)])
    store.add_events("b", [event(1, AlarmState.CLEARED, EventCode.OCCLUSION), event(5)])
    store.flush()
    first = store.events("a", limit=1)[0]
    assert first == {
        "device": "a",
        "seq": 1,
        "time_ms": T0 + 1000,
        "code": "THERAPY_ON",
        "priority": "NONE",
        "state": "NONE",
        "arg0": 1,
        "arg1": -1,
        "actor": "CLINICIAN",
    }
    assert [e["seq"] for e in store.events("a", since_seq=2)] == [3, 4]
    assert [e["seq"] for e in store.events("a", codes={EventCode.LOW_RESERVOIR})] == [2, 4]
    assert [e["seq"] for e in store.events("a", limit=2, newest_first=True)] == [4, 3]
    by_time = [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 5)]
    assert [(e["device"], e["seq"]) for e in store.events(None)] == by_time
    assert [(e["seq"], e["state"]) for e in store.alarm_history("a")] == [(4, "ACKNOWLEDGED"), (2, "ACTIVE")]
    assert [(e["device"], e["seq"]) for e in store.alarm_history(None, 2)] == [("a", 4), ("a", 2)]


# --- audit -----------------------------------------------------------------------------------------
def add_entries(s, count: int) -> list[int]:
    return [
        s.add_audit("alice", "clinician", "stim", "therapy_set", {"on": i % 2 == 0}, {"on": i % 2 == 1}, "ok", i)
        for i in range(count)
    ]


def test_audit_chain_is_linked_and_verifies(store):
    assert store.verify_audit() is None
    ids = [*add_entries(store, 4), store.add_audit("bob", "viewer", None, "login", {}, {}, "ok", None)]
    assert ids == [1, 2, 3, 4, 5]
    entries = store.audit(10)
    assert [e["id"] for e in entries] == [5, 4, 3, 2, 1]
    assert entries[-1]["prev_hash"] == GENESIS_HASH
    assert all(newer["prev_hash"] == older["hash"] for newer, older in itertools.pairwise(entries))
    assert entries[0]["device"] == "" and entries[0]["command_id"] is None
    assert entries[1]["before"] == {"on": False} and entries[1]["after"] == {"on": True}
    assert store.verify_audit() is None


@pytest.mark.parametrize(
    ("tamper", "broken"),
    [
        ('UPDATE audit SET after = \'{"on":"x"}\' WHERE id = 3', 3),
        ("UPDATE audit SET result = 'ok' , user = 'mallory' WHERE id = 1", 1),
        ("DELETE FROM audit WHERE id = 3", 3),
        ("DELETE FROM audit WHERE id = 5", 5),
    ],
)
def test_editing_or_deleting_an_audit_row_breaks_the_chain_there(file_url, tamper, broken):
    with open_store(file_url) as s:
        add_entries(s, 5)
        conn = sqlite3.connect(s.path, isolation_level=None)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(tamper)
        conn.execute("DROP TRIGGER audit_no_update")  # an attacker with the file can do this too
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute(tamper)
        conn.close()
        assert s.verify_audit() == broken


def test_audit_refuses_secrets(store):
    for bad in ({"pairing_key": "00ff"}, {"program": {"tag": "x"}}, {"password": "x"}, {"blob": b"\x00"}):
        with pytest.raises(StoreError, match="never"):
            store.add_audit("alice", "clinician", "d", "program", {}, bad, "ok", 1)
    assert store.add_audit("alice", "clinician", "d", "program", {}, {"amplitude_ua": 3500, "monkey": 1}, "ok", 1)


# --- export ----------------------------------------------------------------------------------------
def test_series_csv_is_wide_with_iso_utc_times(store):
    for i in range(3):
        store.add_status("d", scs_at(T0 + i * 1000, battery_x100=8000 + i), 1.0)
    store.add_series("d", "battery_pct", [T0 + 500], [12.5])  # a time only one series has
    store.flush()
    out = io.StringIO()
    store.export_series_csv("d", ["battery_pct", "tissue_power_uw"], T0, T0 + 1000, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["time_ms"] for r in rows] == [str(T0), str(T0 + 500), str(T0 + 1000)]
    assert rows[0]["time_utc"] == "2026-01-01T00:00:00.000Z"
    assert all(datetime.fromisoformat(r["time_utc"]).timestamp() * 1000 == int(r["time_ms"]) for r in rows)
    assert [r["battery_pct"] for r in rows] == ["80.0", "12.5", "80.01"]
    assert [r["tissue_power_uw"] for r in rows] == ["450.0", "", "450.0"]


def test_events_and_audit_csv_parse_back(store):
    store.add_events("d", [event(1), event(2, AlarmState.ACTIVE, EventCode.LOW_RESERVOIR)])
    store.flush()
    out = io.StringIO()
    store.export_events_csv("d", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["seq"], r["code"], r["state"], r["arg1"]) for r in rows] == [
        ("1", "THERAPY_ON", "NONE", "-1"),
        ("2", "LOW_RESERVOIR", "ACTIVE", "-2"),
    ]
    add_entries(store, 3)
    out = io.StringIO()
    store.export_audit_csv(out)
    entries = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [e["id"] for e in entries] == ["1", "2", "3"]
    assert verify_audit_rows(entries) is None  # verifiable off the machine
    entries[1]["before"] = '{"on":true}'
    assert verify_audit_rows(entries) == 2


# --- concurrency -----------------------------------------------------------------------------------
def test_concurrent_readers_see_consistent_data(url):
    total = 300
    errors: list[BaseException] = []
    done = threading.Event()

    def read(s) -> None:
        seen = 0
        try:
            while not done.is_set():
                times, values = s.series("d", "battery_pct", 0, 2 * T0, max_points=10**6)
                assert np.all(np.diff(times) > 0) and len(times) >= seen
                assert np.array_equal(values, (times - T0) / 1000 / 100)
                seen = len(times)
                out = io.StringIO()
                s.export_series_csv("d", ["battery_pct", "impedance_15_ohm"], 0, 2 * T0, out)
                rows = list(csv.reader(io.StringIO(out.getvalue())))[1:]
                assert all(r[2] and r[3] for r in rows)  # a status (first and last series) commits whole
        except BaseException as exc:
            errors.append(exc)

    with open_store(url, batch_rows=3 * SCS_SERIES, batch_seconds=0.005) as s:
        readers = [threading.Thread(target=read, args=(s,), name=f"reader-{i}") for i in range(4)]
        for r in readers:
            r.start()
        for i in range(total):
            s.add_status("d", scs_at(T0 + i * 1000, battery_x100=i), 1.0)
        s.flush()
        done.set()
        for r in readers:
            r.join(timeout=10)
        assert len(s.series_after("d", "battery_pct", 0)[0]) == total
    assert not errors, errors[0]


def test_event_pages_are_newest_first_keyed_by_seq_and_filtered(store):
    # 45 events: every 5th an active low-reservoir alarm, the rest therapy on.
    store.add_events(
        "a", [event(s, AlarmState.ACTIVE, EventCode.LOW_RESERVOIR) if s % 5 == 0 else event(s) for s in range(1, 46)]
    )
    store.add_events("b", [event(1)])
    store.flush()
    newest = store.event_page(EventQuery("a", limit=20))
    assert [e["seq"] for e in newest.rows] == list(range(45, 25, -1))
    assert (newest.total, newest.has_older, newest.has_newer) == (45, True, False)
    store.add_events("a", [event(46)])  # a new event does not shift the page being read
    store.flush()
    older = store.event_page(EventQuery("a", before_seq=newest.rows[-1]["seq"], limit=20))
    assert [e["seq"] for e in older.rows] == list(range(25, 5, -1)) and older.has_older and older.has_newer
    oldest = store.event_page(EventQuery("a", before_seq=6, limit=20))
    assert [e["seq"] for e in oldest.rows] == [5, 4, 3, 2, 1] and not oldest.has_older
    back = store.event_page(EventQuery("a", after_seq=25, limit=20))
    assert [e["seq"] for e in back.rows] == list(range(45, 25, -1)) and back.has_newer  # 46 is newer
    alarms = store.event_page(EventQuery("a", codes=(EventCode.LOW_RESERVOIR,), limit=4))
    assert [e["seq"] for e in alarms.rows] == [45, 40, 35, 30] and alarms.total == 9
    medium = store.event_page(EventQuery("a", priorities=(Priority.MEDIUM,), alarms_only=True, limit=50))
    assert medium.total == 9 and all(e["state"] == "ACTIVE" for e in medium.rows)
    window = store.event_page(EventQuery("a", start_ms=T0 + 10_000, end_ms=T0 + 12_000))
    assert [e["seq"] for e in window.rows] == [12, 11, 10]
    assert store.event_page(EventQuery("nobody")).rows == []
