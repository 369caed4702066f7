"""The trial as the dashboard reads it from the store: period, call, decision, relief after an implant."""

from __future__ import annotations

import pytest

from dashboard.store import open_store
from dashboard.trial_data import DECISION_ACTION, MONTH_MS, months_relief, trial_view
from protocols.messages import (
    Actor,
    AlarmState,
    DiaryKind,
    DiaryRecord,
    DiarySource,
    EventCode,
    EventRecord,
    Lifecycle,
    Priority,
)
from protocols.trials import TrialRule

T0 = 1_767_225_600_000
DAY = 86_400_000


@pytest.fixture
def store():
    s = open_store("sqlite:///:memory:")
    yield s
    s.close()


def lifecycle(seq: int, at: int, new: Lifecycle, old: int) -> EventRecord:
    return EventRecord(
        seq, at, EventCode.LIFECYCLE_CHANGED, Priority.NONE, AlarmState.NONE, int(new), old, Actor.CLINICIAN
    )


def pain(seq: int, at: int, value: int) -> DiaryRecord:
    return DiaryRecord(seq, at, DiaryKind.NRS, value, DiarySource.CONTROLLER)


def test_the_trial_runs_between_its_lifecycle_entries_and_an_implant_gives_relief_by_month(store):
    start, end = T0 + 7 * DAY, T0 + 14 * DAY
    diary = [pain(i + 1, T0 + i * DAY // 2, 8) for i in range(14)]  # baseline 8 of 10
    diary += [pain(15 + i, start + i * DAY // 2, 4) for i in range(14)]  # trial: half
    after = [(3, 3), (6, 4), (12, 6)]  # months after the implant -> pain
    seq = 29
    for month, value in after:
        diary.append(pain(seq, end + month * MONTH_MS - DAY, value))
        seq += 1
    store.add_diary("scs a", diary)
    store.add_events("scs a", [lifecycle(1, start, Lifecycle.TRIAL, 0), lifecycle(2, end, Lifecycle.IMPLANTED, 1)])
    store.add_audit("dr.lee", "clinician", "scs a", DECISION_ACTION, {}, {"decision": "Implant"}, "recorded", None)
    store.flush()
    view = trial_view(store, "scs a", "scs", TrialRule(), Lifecycle.IMPLANTED)
    assert (view.baseline_from_ms, view.trial_from_ms, view.trial_to_ms, view.ended) == (T0, start, end, True)
    assert view.call is not None and view.call.responder and view.call.relief == pytest.approx(0.5)
    assert view.decision["decision"] == "Implant" and view.decision["user"] == "dr.lee"
    relief = months_relief(view, end)
    assert relief == pytest.approx({3: 1 - 3 / 8, 6: 1 - 4 / 8, 12: 1 - 6 / 8})
    stricter = trial_view(store, "scs a", "scs", TrialRule(threshold=0.6), Lifecycle.IMPLANTED)
    assert not stricter.call.responder and stricter.call.reasons == ("relief 50 % is below 60 %",)


def test_a_trial_still_running_runs_to_the_newest_entry_and_waits_for_scores_on_both_sides(store):
    store.add_events("scs a", [lifecycle(1, T0, Lifecycle.TRIAL, 0)])
    store.add_diary("scs a", [pain(1, T0 + DAY, 5)])
    store.flush()
    view = trial_view(store, "scs a", "scs", TrialRule(), Lifecycle.TRIAL)
    assert not view.ended and view.trial_to_ms == T0 + DAY and view.call is None  # no baseline score yet
