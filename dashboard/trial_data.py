"""A trial as the dashboard shows and reports it, from the stored diary and event log alone.

``trial_view(store, name, rule)`` finds the trial's period in the event log (it starts at the
LIFECYCLE_CHANGED that put the system in TRIAL and ends at the one that took it out; still open,
it runs to the newest diary entry), the baseline before it (from the diary's first entry), the
therapy periods on the same time axis, the clinician's recorded decision (the newest audit entry
of action ``trial decision``), and makes the responder call with ``protocols.trials`` (the rule
the emulator's cohorts use too). ``report(view, ...)`` turns it into the one-page
``trial_report.TrialReport``. A device kept its patient after an implant: ``months_relief`` gives
the relief at 3, 6 and 12 months against the baseline.

Pure functions of what the store returns; must not import Dash, the device link or ``device_mock``.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import fmean
from typing import Any

from protocols.messages import DeviceKind, DiaryKind, DiaryRecord, EventCode, Lifecycle
from protocols.trials import TrialCall, TrialRule, call_trial, scores

from .trial_report import PAIN_SCORE, SPASTICITY_SCORE, TrialReport
from .words import DIARY_WORDS, LIFECYCLE_WORDS

DAY_MS = 86_400_000
MONTH_MS = round(365.25 / 12 * DAY_MS)
DECISION_ACTION = "trial decision"
WATCH_EVERY_H = 2.0  # an intrathecal test dose is scored every 2 h (SPEC 4.7)
_THERAPY = {
    EventCode.THERAPY_ON: True,
    EventCode.PUMP_STARTED: True,
    EventCode.THERAPY_OFF: False,
    EventCode.PUMP_STOPPED: False,
}
TRIAL_CODES = (EventCode.LIFECYCLE_CHANGED, EventCode.BOLUS_STARTED, *_THERAPY)


@dataclass(frozen=True)
class TrialView:
    """Everything the trial page shows."""

    name: str
    kind: str  # "scs" or "pump"
    lifecycle: Lifecycle | None
    diary: list[DiaryRecord]
    baseline_from_ms: int
    trial_from_ms: int
    trial_to_ms: int  # the trial's end, or the newest entry while it runs
    ended: bool
    spasticity: bool
    therapy: list[tuple[int, int, str]]  # (from, to, label) periods with therapy on
    call: TrialCall | None  # None until the diary has scores on both sides of the trial's start
    rule: TrialRule
    decision: dict[str, Any] | None  # the newest recorded decision: decision, user, time_ms

    @property
    def score_kind(self) -> DiaryKind:
        """The diary's score of this trial: the Ashworth grade for spasticity, else the NRS."""
        return DiaryKind.MAS if self.spasticity else DiaryKind.NRS

    @property
    def implant_ms(self) -> int | None:
        """When the trial ended in an implant (the system is implanted or was since), else None."""
        implanted = self.lifecycle in (Lifecycle.IMPLANTED, Lifecycle.EXPLANTED)
        return self.trial_to_ms if self.ended and implanted else None


def _period(events: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    start = end = None
    for e in events:
        if e["code"] == EventCode.LIFECYCLE_CHANGED.name:
            if e["arg0"] == Lifecycle.TRIAL and start is None:
                start = e["time_ms"]
            elif e["arg1"] == Lifecycle.TRIAL:
                end = e["time_ms"]
    return start, end


def _therapy(events: list[dict[str, Any]], until_ms: int, kind: str) -> list[tuple[int, int, str]]:
    label = "Stimulation on" if kind == "scs" else "Infusion on"
    periods, since = [], None
    for e in events:
        on = _THERAPY.get(EventCode[e["code"]])
        if on is True and since is None:
            since = e["time_ms"]
        elif on is False and since is not None:
            periods.append((since, e["time_ms"], label))
            since = None
        if e["code"] == EventCode.BOLUS_STARTED.name:
            periods.append((e["time_ms"], e["time_ms"] + 3_600_000, "Test dose"))
    if since is not None:
        periods.append((since, until_ms, label))
    return periods


def trial_view(store: Any, name: str, kind: str, rule: TrialRule, lifecycle: Lifecycle | None) -> TrialView:
    """The trial of device ``name`` from the store."""
    diary = store.diary(name)
    # only the entries the trial reads: a stimulator's scans alone can fill the log by the thousand
    events = store.events(name, codes=TRIAL_CODES, limit=100_000)
    start, end = _period(events)
    newest = max((e.time_ms for e in diary), default=0)
    baseline_from = min((e.time_ms for e in diary), default=0)
    trial_from = start if start is not None else baseline_from
    trial_to = end if end is not None else max(newest, trial_from)
    spasticity = any(e.kind is DiaryKind.MAS for e in diary)
    call = None
    kind_score = DiaryKind.MAS if spasticity else DiaryKind.NRS
    if scores(diary, kind_score, baseline_from, trial_from) and scores(diary, kind_score, trial_from, trial_to + 1):
        # a pump trial given as test doses is judged on its best hours; an infusion like a stimulator
        dosed = any(e["code"] == EventCode.BOLUS_STARTED.name and e["time_ms"] >= trial_from for e in events)
        watched = WATCH_EVERY_H if kind == "pump" and dosed else None
        call = call_trial(diary, baseline_from, trial_from, trial_to, rule, spasticity, watched)
    decisions = [a for a in store.audit(limit=1_000) if a["device"] == name and a["action"] == DECISION_ACTION]
    decision = None
    if decisions:
        newest_decision = max(decisions, key=lambda a: a["id"])
        after = newest_decision["after"]
        after = after if isinstance(after, dict) else {}
        decision = {
            "decision": after.get("decision"),
            "user": newest_decision["user"],
            "time_ms": newest_decision["time_ms"],
        }
    return TrialView(
        name,
        kind,
        lifecycle,
        diary,
        baseline_from,
        trial_from,
        trial_to,
        end is not None,
        spasticity,
        _therapy(events, trial_to, kind),
        call,
        rule,
        decision,
    )


def months_relief(view: TrialView, implant_ms: int | None) -> dict[int, float]:
    """Relief at 3, 6 and 12 months after ``implant_ms``: the 14 days before each, against the baseline."""
    if implant_ms is None or view.call is None or not view.call.baseline:
        return {}
    out = {}
    for month in (3, 6, 12):
        at = implant_ms + month * MONTH_MS
        window = scores(view.diary, view.score_kind, at - 14 * DAY_MS, at)
        if window:
            out[month] = 1 - fmean(window) / view.call.baseline
    return out


def report(
    view: TrialView, model: str, serial: str, indication: str, settings: tuple, generated_ms: int
) -> TrialReport:
    """The one-page report of ``view``."""
    call = view.call
    score = view.score_kind
    return TrialReport(
        patient_label=f"Patient of {view.name}",
        device_name=view.name,
        device_model=model,
        serial=serial,
        kind=view.kind,
        indication=indication,
        baseline_from_ms=view.baseline_from_ms,
        trial_from_ms=view.trial_from_ms,
        trial_to_ms=view.trial_to_ms,
        settings=settings,
        scores=tuple((e.time_ms, float(e.value)) for e in view.diary if e.kind is score),
        score_name=SPASTICITY_SCORE if view.spasticity else PAIN_SCORE,
        therapy=tuple(view.therapy),
        medication=tuple((e.time_ms, float(e.value)) for e in view.diary if e.kind is DiaryKind.MEDICATION),
        baseline_mean=call.baseline if call else 0.0,
        trial_mean=call.during if call else 0.0,
        relief_computed=call.relief if call else 0.0,
        relief_reported=call.reported if call else None,
        flagged=call.flagged if call else False,
        medication_stable=call.medication_stable if call else True,
        responder=call.responder if call else False,
        reasons=call.reasons if call else ("the diary has no scores yet on both sides of the trial's start",),
        threshold=view.rule.threshold,
        decision=view.decision["decision"] if view.decision else None,
        decided_by=view.decision["user"] if view.decision else None,
        decided_ms=view.decision["time_ms"] if view.decision else None,
        generated_ms=generated_ms,
    )


def settings_of(status: Any) -> tuple[tuple[str, str], ...]:
    """The therapy settings a report lists, in words, from the device's last status."""
    if status is None:
        return (("Settings", "no status received"),)
    if hasattr(status, "areas"):
        rows = []
        for n, a in enumerate(status.areas, 1):
            wave = a.waveform.name.lower().replace("_", " ")
            rows.append((f"Area {n}", f"{a.amplitude_ua / 1000:g} mA, {a.pulse_width_us} µs, {a.rate_hz} Hz, {wave}"))
        rows.append(("Stimulation", "on" if status.therapy_on else "off"))
        return tuple(rows) or (("Program", "none active"),)
    rate = f"{status.rate_ul_per_day / 1000:g} mL/day" if status.infusing else "stopped"
    drugs = ", ".join(f"{d.drug.name.lower()} {d.conc_ng_per_ml / 1e6:g} mg/mL" for d in status.drugs) or "none"
    return (("Infusion", rate), ("Reservoir", drugs))


def snapshot_view(store: Any, name: str, snap: Any, rule: TrialRule) -> TrialView:
    """The trial of ``name`` with the kind and stage its link's last identity and status report."""
    kind = "pump" if snap.identity is not None and snap.identity.kind is DeviceKind.PUMP else "scs"
    lifecycle = getattr(snap.status, "lifecycle", None) if snap.status is not None else None
    return trial_view(store, name, kind, rule, lifecycle)


def stage_words(lifecycle: Lifecycle | None) -> str:
    """The system's stage in words."""
    return LIFECYCLE_WORDS.get(lifecycle, "Stage not reported")


def entry_words(entry: DiaryRecord) -> tuple[str, str]:
    """(instrument, value) of a diary entry in words."""
    label, render = DIARY_WORDS[entry.kind]
    return label, render(entry.value)
