"""CSV formula injection: text cells a spreadsheet would run get a leading quote; numbers stay numbers."""

from __future__ import annotations

import csv
import io

import pytest

from dashboard import csv_cells
from dashboard.store import open_store, verify_audit_rows
from protocols.messages import Actor, AlarmState, EventCode, EventRecord, Priority

T0 = 1_767_225_600_000
FORMULA = '=HYPERLINK("http://evil.example","x")'


@pytest.mark.parametrize(
    ("text", "written"),
    [
        (FORMULA, "'" + FORMULA),
        ("+1", "'+1"),
        ("-1.5", "'-1.5"),  # text that looks like a number is still text
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("'=x", "''=x"),  # already quoted: one more, so restore() gives it back exactly
        ("'x", "'x"),
        ("pump a", "pump a"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_text_cells_that_start_a_formula_are_quoted_and_restore_exactly(text, written):
    assert csv_cells.neutralise(text) == written
    assert csv_cells.restore(written) == text


def test_numbers_are_not_text_cells():
    out = io.StringIO()
    csv_cells.writer(out).writerow(["-x", -1, -1.5, 0.0, None, "ok"])
    assert out.getvalue() == "'-x,-1,-1.5,0.0,,ok\n"


@pytest.fixture
def store(tmp_path):
    s = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    yield s
    s.close()


def test_series_export_quotes_a_formula_header_and_keeps_negative_values_numbers(store):
    store.add_series("=pump", FORMULA, [T0, T0 + 1000], [-1.5, 2.0])
    store.flush()
    out = io.StringIO()
    store.export_series_csv("=pump", [FORMULA], T0, T0 + 1000, out)
    lines = out.getvalue().splitlines()
    assert next(csv.reader([lines[0]])) == ["time_utc", "time_ms", "'" + FORMULA]
    assert lines[1:] == ["2026-01-01T00:00:00.000Z,1767225600000,-1.5", "2026-01-01T00:00:01.000Z,1767225601000,2.0"]


def test_events_export_quotes_a_formula_device_name_and_keeps_negative_args(store):
    store.add_events(
        "-pump", [EventRecord(1, T0, EventCode.LOW_RESERVOIR, Priority.MEDIUM, AlarmState.ACTIVE, 3, -2, Actor.DEVICE)]
    )
    store.flush()
    out = io.StringIO()
    store.export_events_csv("-pump", out)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert (row["device"], row["code"], row["arg0"], row["arg1"]) == ("'-pump", "LOW_RESERVOIR", "3", "-2")


def test_audit_export_quotes_formula_cells_and_still_verifies(store):
    store.add_audit("alice", "clinician", "@pump", "+therapy", {"on": False}, {"on": True}, "=ok", 7)
    store.add_audit("bob", "viewer", "'=quoted", "therapy", {}, {}, "ok", None)
    out = io.StringIO()
    store.export_audit_csv(out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["device"], r["action"], r["result"]) for r in rows] == [
        ("'@pump", "'+therapy", "'=ok"),
        ("''=quoted", "therapy", "ok"),
    ]
    assert verify_audit_rows(rows) is None  # the chain checks out off the machine, guard undone
    rows[0]["device"] = "'@other"
    assert verify_audit_rows(rows) == 1
