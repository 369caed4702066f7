"""A seeded cohort of virtual patients through a trial and, optionally, years after the implant.

In process and without ports: each patient keeps a baseline diary, has a trial as a clinic runs it
and gets the responder call from their own diary; a responder goes on to an implant with the
profile's probability (44 % of first trials convert [V PubMed 24930992]) and then lives ``years``
on the same therapy, so relief at 3, 6 and 12 months shows the long-term course.

- SCS: a percutaneous trial of ``trial_days`` (3-8 days typical [V NANS]) on a program a clinician
  would choose: the cathode over the painful area, a tonic amplitude between perception and
  discomfort, or a paresthesia-free one (10 kHz, burst) below perception.
- Intrathecal: a test-dose escalation, one bolus a day scored every 2 h for 24 h, stopping at the
  first dose that holds (morphine 25 -> 400 ug [V]; baclofen 50, 75, 100 ug [L]); after an implant
  the effective dose runs as a daily infusion, raised 20 % at monthly reviews while relief is short
  of the goal and side effects allow, never past the pump's daily cap.

This is the one module of the package that reads a device model's limits (``pump_config``), as a
clinician programs within them; imports nothing of the servers or the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from statistics import NormalDist, fmean, stdev

from protocols.messages import Area, Drug, StimProgramSet, Waveform
from protocols.trials import TrialCall, call_trial

from ..pump_config import DEFAULT_DRUG_LIMITS
from .config import PatientConfig
from .diary import DiaryKind, scores
from .patient import DAY_MS, VirtualPatient
from .profile import Indication, PatientProfile, draw_profile
from .response import perception_ua, scs_delivery

START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: the cohort's first baseline day
IMPLANT_AFTER_DAYS = 21  # from the trial's end to the implant, leads out meanwhile [E]
MORPHINE_STEPS_MG = (0.025, 0.05, 0.1, 0.2, 0.4)  # a published test-dose escalation [V]
BACLOFEN_STEPS_MG = (0.05, 0.075, 0.1)  # baclofen screening 50 ug [V], then 75 and 100 ug [L]
# The daily infusion starts at twice the test dose that held, about the effect level its bolus
# reached (a bolus peaks at roughly its dose per day in this model) [E]
START_DOSE_PER_BOLUS = 2.0
REVIEW_DAYS = 30  # an implanted pump's dose review, about each refill (monthly to 6-weekly [V]) [E]
RAISE = 1.2  # a review raises the daily dose 20 % [E]
MONTHS = (3, 6, 12, 24)
WAVEFORMS = {"tonic": Waveform.TONIC, "burst": Waveform.BURST, "hf": Waveform.HIGH_FREQUENCY}


@dataclass(frozen=True)
class CohortOptions:
    """What to run: ``n`` patients of cohort ``seed`` trialled for ``kind``."""

    n: int
    seed: int = 1
    kind: str = "scs"
    trial_days: float = 7.0
    baseline_days: float = 7.0
    years: float = 0.0
    waveform: str = "tonic"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"a cohort has at least 1 patient, not {self.n}")
        if not 1 <= self.trial_days <= 60:
            raise ValueError(f"trial days are from 1 to 60 (30-day wireless trials exist), not {self.trial_days:g}")
        if not 1 <= self.baseline_days <= 60:
            raise ValueError(f"baseline days are from 1 to 60, not {self.baseline_days:g}")
        if not 0 <= self.years <= 30:
            raise ValueError(f"years after the implant are from 0 to 30, not {self.years:g}")
        if self.waveform not in WAVEFORMS:
            raise ValueError(f"waveform {self.waveform!r}: valid: {', '.join(WAVEFORMS)}")


@dataclass(frozen=True)
class Outcome:
    """One patient's trial and course."""

    index: int
    indication: Indication
    call: TrialCall
    implanted: bool
    dose_mg: float = 0.0  # intrathecal: the test dose that held (or the last one given)
    relief_at: dict[int, float] = field(default_factory=dict)  # months after implant -> relief
    diary_entries: int = 0  # entries the patient wrote


def trial_program(profile: PatientProfile, config: PatientConfig, waveform: str) -> StimProgramSet:
    """The program a clinician sets for this patient in a trial: a bipole over the painful area."""
    cathode = min(config.contacts_per_lead - 2, max(0, round(profile.pain_position)))
    shape = WAVEFORMS[waveform]
    if shape is Waveform.HIGH_FREQUENCY:
        area = Area(1 << (cathode + 1), 1 << cathode, 0, 30, 10_000, shape, 0, 0, 0, 0)
    elif shape is Waveform.BURST:
        area = Area(1 << (cathode + 1), 1 << cathode, 0, 1_000, 40, shape, 5, 500, 0, 0)
    else:
        area = Area(1 << (cathode + 1), 1 << cathode, 0, 300, 50, shape, 0, 0, 0, 0)
    perception = perception_ua(area, profile, config)
    if shape is Waveform.TONIC:  # halfway from perception to discomfort, as the patient finds comfortable
        amp = perception * (1 + (profile.discomfort_ratio - 1) * 0.5)
    else:  # sub-perception: half the perception threshold [E]
        amp = perception * 0.5
    amp_ua = min(25_500, max(50, round(amp / 50) * 50))
    area = replace(area, amplitude_ua=amp_ua)
    return StimProgramSet(1, True, (area,), min(25_500, amp_ua + 1_000), 2)


def run_patient(index: int, options: CohortOptions, config: PatientConfig) -> Outcome:
    """Patient ``index`` of the cohort through the trial and, if implanted, ``options.years``."""
    profile = draw_profile(options.seed, index, options.kind, config)
    patient = VirtualPatient(profile, config, START_MS)
    trial_from = START_MS + round(options.baseline_days * DAY_MS)
    patient.advance(trial_from)
    if options.kind == "scs":
        return _scs(patient, options, trial_from)
    return _pump(patient, options, trial_from)


def _scs(patient: VirtualPatient, options: CohortOptions, trial_from: int) -> Outcome:
    profile, config = patient.profile, patient.config
    program = trial_program(profile, config, options.waveform)
    on = scs_delivery(program, True, profile, config)
    patient.start_trial(trial_from)
    trial_to = trial_from + round(options.trial_days * DAY_MS)
    patient.advance(trial_to, scs=on)
    patient.end_trial(trial_to)
    call = call_trial(patient.state.diary, START_MS, trial_from, trial_to, config.trial_rule())
    implanted = call.responder and profile.implants_if_responder
    relief_at: dict[int, float] = {}
    if implanted and options.years:
        implant_ms = trial_to + IMPLANT_AFTER_DAYS * DAY_MS
        patient.advance(implant_ms, scs=scs_delivery(program, False, profile, config))
        patient.implant(implant_ms)
        relief_at = _course(patient, implant_ms, options.years, call.baseline, lambda _p, _t: {"scs": on})
    entries = patient.state.next_seq - 1
    return Outcome(patient.profile.index, profile.indication, call, implanted, 0.0, relief_at, entries)


def _pump(patient: VirtualPatient, options: CohortOptions, trial_from: int) -> Outcome:
    profile, config = patient.profile, patient.config
    drug = Drug.BACLOFEN if profile.spasticity else Drug.MORPHINE
    steps = BACLOFEN_STEPS_MG if profile.spasticity else MORPHINE_STEPS_MG
    every_h, rule = config.it_trial_nrs_every_h, config.trial_rule()
    patient.start_trial(trial_from)
    call, dose_mg, at = None, 0.0, trial_from
    for dose_mg in steps:
        patient.advance(at)
        patient.observe(every_h)
        patient.bolus({drug: dose_mg})
        patient.advance(at + DAY_MS)
        patient.observe(None)
        call = call_trial(patient.state.diary, START_MS, at, at + DAY_MS, rule, profile.spasticity, every_h)
        at += DAY_MS
        if call.responder or call.intolerable:
            break
    assert call is not None
    patient.end_trial(at, computed=call.relief)
    call = call_trial(patient.state.diary, START_MS, at - DAY_MS, at, rule, profile.spasticity, every_h)
    implanted = call.responder and profile.implants_if_responder
    relief_at: dict[int, float] = {}
    if implanted and options.years:
        implant_ms = at + IMPLANT_AFTER_DAYS * DAY_MS
        patient.advance(implant_ms)
        patient.implant(implant_ms)
        cap_mg = next(lim.max_dose_ng_per_day for lim in DEFAULT_DRUG_LIMITS if lim.drug is drug) / 1e6
        dose = {"mg": min(cap_mg, START_DOSE_PER_BOLUS * dose_mg)}
        score_kind = DiaryKind.MAS if profile.spasticity else DiaryKind.NRS
        # spasticity: a grade lower is the goal; pain: the responder threshold
        goal = config.mas_responder_drop / call.baseline if profile.spasticity else config.responder_threshold

        def infusion(p: VirtualPatient, now_ms: int) -> dict:
            # a monthly review raises the dose while the diary's last two weeks fall short of the
            # goal and the side effects written down allow it
            if now_ms > implant_ms and (now_ms - implant_ms) // DAY_MS % REVIEW_DAYS == 0:
                recent = scores(p.state.diary, score_kind, now_ms - 14 * DAY_MS, now_ms)
                worst = max(scores(p.state.diary, DiaryKind.SIDE_EFFECTS, now_ms - 14 * DAY_MS, now_ms), default=0)
                if recent and 1 - fmean(recent) / call.baseline < goal and worst < 10 * config.intolerable_side_effect:
                    dose["mg"] = min(cap_mg, dose["mg"] * RAISE)
            return {"rates": {drug: dose["mg"]}}

        relief_at = _course(patient, implant_ms, options.years, call.baseline, infusion)
    entries = patient.state.next_seq - 1
    return Outcome(patient.profile.index, profile.indication, call, implanted, dose_mg, relief_at, entries)


def _course(
    patient: VirtualPatient,
    implant_ms: int,
    years: float,
    baseline: float,
    therapy: Callable[[VirtualPatient, int], dict],
) -> dict[int, float]:
    """Live ``years`` after the implant a day at a time; relief at each month of MONTHS reached."""
    end = implant_ms + round(years * 365.25 * DAY_MS)
    now = implant_ms
    while now < end:
        step = min(end, now + DAY_MS)
        patient.advance(step, **therapy(patient, now))
        now = step
    kind = DiaryKind.MAS if patient.profile.spasticity else DiaryKind.NRS
    relief_at = {}
    for month in MONTHS:
        at = implant_ms + round(month * 365.25 / 12 * DAY_MS)
        if at > end:
            break
        window = scores(patient.state.diary, kind, at - 14 * DAY_MS, at)
        if window and baseline:
            relief_at[month] = 1 - fmean(window) / baseline
    return relief_at


# --- the cohort --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """A figure with its 95 % interval."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        """``{"value", "low", "high"}`` rounded to 4 places."""
        return {"value": round(self.value, 4), "low": round(self.low, 4), "high": round(self.high, 4)}


Z95 = NormalDist().inv_cdf(0.975)


def proportion(hits: int, n: int) -> Estimate:
    """``hits / n`` with its Wilson 95 % interval."""
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    p = hits / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return Estimate(p, centre - half, centre + half)


def mean(values: list[float]) -> Estimate:
    """The mean with its normal 95 % interval."""
    if not values:
        return Estimate(math.nan, math.nan, math.nan)
    m = fmean(values)
    half = Z95 * stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return Estimate(m, m - half, m + half)


@dataclass(frozen=True)
class CohortResult:
    """Every patient's outcome and the cohort's figures."""

    options: CohortOptions
    outcomes: list[Outcome]

    def summary(self, config: PatientConfig) -> dict:
        """Responder and conversion rates, mean relief (computed and reported), relief by month."""
        n = len(self.outcomes)
        responders = sum(o.call.responder for o in self.outcomes)
        implanted = [o for o in self.outcomes if o.implanted]
        figures = {
            "patients": n,
            "diary_entries": sum(o.diary_entries for o in self.outcomes),
            "responder_rate": proportion(responders, n).as_dict(),
            "conversion_rate": proportion(len(implanted), n).as_dict(),
            "mean_relief": mean([o.call.relief for o in self.outcomes]).as_dict(),
            "mean_reported_relief": mean(
                [o.call.reported for o in self.outcomes if o.call.reported is not None]
            ).as_dict(),
            "flagged_share": proportion(sum(o.call.flagged for o in self.outcomes), n).as_dict(),
            "configured": {
                "responder_rate": config.responder_rate,
                "conversion_rate": round(config.responder_rate * config.implant_given_responder, 4),
            },
        }
        by_month = {}
        for month in MONTHS:
            values = [o.relief_at[month] for o in implanted if month in o.relief_at]
            if values:
                by_month[str(month)] = {
                    "mean_relief": mean(values).as_dict(),
                    "responders": proportion(
                        sum(v >= config.responder_threshold for v in values), len(values)
                    ).as_dict(),
                }
        if by_month:
            figures["after_implant"] = by_month
        return figures


def run_cohort(
    options: CohortOptions, config: PatientConfig | None = None, progress: Callable[[int, int], None] | None = None
) -> CohortResult:
    """Run every patient of ``options``; ``progress(done, n)`` after each."""
    config = config or PatientConfig()
    outcomes = []
    for index in range(options.n):
        outcomes.append(run_patient(index, options, config))
        if progress:
            progress(index + 1, options.n)
    return CohortResult(options, outcomes)
