"""The responder call of a trial, from the diary alone, as a clinic makes it.

Success is at least 50 % pain relief on the NRS with stable or reduced analgesics and no
intolerable side effects [V neuromodfound.org; Practical Pain Management for intrathecal trials];
an intrathecal test dose must hold that relief for some hours (8-12 h in some clinics [V]); a
baclofen screening needs the Ashworth grade to fall [E]. The relief the patient reports is set
beside the computed one and a difference over 15 points is flagged (the two differ by -30 to +41
points [V Reg Anesth Pain Med 2021;46(4):293]).

The one home of this rule: the emulator's cohorts (``device_mock.patients``) and the dashboard's trial
view both call it. Pure; imports ``protocols.messages`` only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .messages import DiaryKind, DiaryRecord

FLAG_POINTS = 15  # reported against computed relief: a difference above this is flagged


@dataclass(frozen=True)
class TrialRule:
    """What a clinic counts as a successful trial (each a configurable default)."""

    threshold: float = 0.50  # >= 50 % relief [V neuromodfound.org]
    medication_rise_allowed: float = 0.10  # "stable or reduced" analgesics: at most 10 % more [E]
    it_relief_hours: float = 8.0  # a test dose's relief must hold 8-12 h in some clinics [V]
    intolerable_side_effect: float = 0.5  # a side-effect burden of 5/10 or more fails the trial [E]
    mas_responder_drop: int = 1  # baclofen screening: at least one Ashworth grade lower [E]

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1 or not 0 <= self.medication_rise_allowed <= 10:
            raise ValueError("a trial rule's threshold is a share above 0 and up to 1, its medication rise a share")


def scores(entries: Iterable[DiaryRecord], kind: DiaryKind, start_ms: int, end_ms: int) -> list[int]:
    """Values of ``kind`` written for ``[start_ms, end_ms)``."""
    return [e.value for e in entries if e.kind is kind and start_ms <= e.time_ms < end_ms]


@dataclass(frozen=True)
class TrialCall:
    """What a trial's diary says: the figures, the call, and why a non-responder is one."""

    baseline: float  # mean score (NRS, or Ashworth index) before the trial
    during: float  # mean score during the trial (a test dose: over its best it_relief_hours)
    relief: float  # computed relief, 0..1
    reported: float | None  # the patient's own relief report, 0..1
    flagged: bool  # reported and computed relief differ by more than 15 points
    medication_stable: bool
    intolerable: bool  # side effects the patient could not accept
    sustained_h: float  # a test dose: the longest run of hours at or above the threshold
    responder: bool
    reasons: tuple[str, ...]  # why the call is "no", in words


def call_trial(
    diary: list[DiaryRecord],
    baseline_from_ms: int,
    trial_from_ms: int,
    trial_to_ms: int,
    rule: TrialRule,
    spasticity: bool = False,
    observed_every_h: float | None = None,
) -> TrialCall:
    """The call on the trial ``[trial_from_ms, trial_to_ms]`` against the baseline before it.

    With ``observed_every_h`` the trial is a test dose scored every few hours: its relief is that
    of its best ``rule.it_relief_hours`` (the mean of those scores), so it must hold that long.
    """
    kind = DiaryKind.MAS if spasticity else DiaryKind.NRS
    before = scores(diary, kind, baseline_from_ms, trial_from_ms)
    during = scores(diary, kind, trial_from_ms, trial_to_ms + 1)
    if not before or not during:
        raise ValueError(f"no {kind.name} score {'before' if not before else 'during'} the trial to judge it by")
    base = sum(before) / len(before)
    theta = rule.threshold
    sustained = 0.0
    if observed_every_h:
        # the best run of it_relief_hours (8 h): the test dose's relief must hold that long
        width = max(1, round(rule.it_relief_hours / observed_every_h))
        windows = [during[i : i + width] for i in range(max(1, len(during) - width + 1))]
        mean = min(sum(w) / len(w) for w in windows)
        run = longest = 0
        for score in during:
            run = run + 1 if base and 1 - score / base >= theta else 0
            longest = max(longest, run)
        sustained = longest * observed_every_h
    else:
        mean = sum(during) / len(during)
    relief = 1 - mean / base if base else 0.0
    reported_rows = scores(diary, DiaryKind.RELIEF, trial_from_ms, trial_to_ms + 1)
    reported = reported_rows[-1] / 100 if reported_rows else None
    flagged = reported is not None and abs(reported - relief) * 100 > FLAG_POINTS
    mme_before = scores(diary, DiaryKind.MEDICATION, baseline_from_ms, trial_from_ms)
    mme_during = scores(diary, DiaryKind.MEDICATION, trial_from_ms, trial_to_ms + 1)
    stable = not mme_during or sum(mme_during) / len(mme_during) <= (
        (sum(mme_before) / len(mme_before) if mme_before else 0.0) * (1 + rule.medication_rise_allowed)
    )
    worst = max(scores(diary, DiaryKind.SIDE_EFFECTS, trial_from_ms, trial_to_ms + 1), default=0)
    intolerable = worst >= 10 * rule.intolerable_side_effect
    reasons = []
    if spasticity:
        if base - mean < rule.mas_responder_drop:
            reasons.append(f"Ashworth grade fell by {base - mean:.1f}, less than {rule.mas_responder_drop}")
    elif relief < theta:
        held = f" over its best {rule.it_relief_hours:g} h" if observed_every_h else ""
        reasons.append(f"relief {round(100 * relief)} %{held} is below {round(100 * theta)} %")
    if not stable:
        reasons.append("analgesic use rose")
    if intolerable:
        reasons.append("side effects were intolerable")
    return TrialCall(base, mean, relief, reported, flagged, stable, intolerable, sustained, not reasons, tuple(reasons))
