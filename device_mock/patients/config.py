"""Every tunable of the virtual patients, with its source or an [E] tag (a scenario's ``[patient]``).

Tags as in docs/devices.md: [V] read in the cited source, [L] from labelling or literature not
re-read, [E] an engineering estimate for simulation. The published anchors (trial length, the 50 %
responder rule, conversion after a trial, patient-reported against NRS-computed relief) are [V];
no single source gives a patient model's placebo, noise or long-term course, so those are [E] and
configurable. ``PatientConfig.responder_rate`` is the share of a cohort the trial call should find
responding; ``relief_mean`` is solved from it (``calibrated_relief_mean``) unless set.

Imports ``protocols.messages`` and ``protocols.trials`` only.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from enum import IntEnum
from statistics import NormalDist
from typing import Any

from protocols.messages import Drug
from protocols.trials import TrialRule


class DrugClass(IntEnum):
    """How an intrathecal drug acts, for the response model: drugs of one class add (Loewe)."""

    OPIOID = 1
    LOCAL_ANAESTHETIC = 2
    ALPHA2_AGONIST = 3
    N_TYPE_BLOCKER = 4
    GABA_B_AGONIST = 5  # baclofen: relieves spasticity, not pain


@dataclass(frozen=True)
class DrugResponse:
    """One drug's effect model: onset and duration of a bolus, potency, and dose-limiting side effects.

    Concentrations are in mg/day-equivalent at the effect site: a steady infusion of D mg/day
    settles at D, so ``ed50_mg_per_day`` is the daily dose that gives half the patient's best
    effect. A bolus enters a depot that empties with ``onset_half_life_h`` into the effect site,
    which follows with ``effect_half_life_h``; together they give the onset, peak and duration.
    """

    drug: Drug
    drug_class: DrugClass
    ed50_mg_per_day: float
    onset_half_life_h: float
    effect_half_life_h: float
    td50_mg_per_day: float = 0.0  # daily dose with half the maximal side-effect burden (0 = none) [E]


# Intrathecal potencies and side-effect doses are estimates placed within the published dose ranges
# (docs/devices.md 2.3: morphine 1-10 mg/day long-term, ziconotide to 19.2 ug/day, baclofen 300-800
# ug/day, bupivacaine 6-20 mg/day, clonidine 250-2,000 ug/day, sufentanil 10-100 ug/day) and the
# trial doses (a morphine test dose escalating 25 -> 400 ug [V], baclofen screening at 50 ug [V]) [E].
# Hydromorphone is placed at 5x morphine, the usual intrathecal conversion [L]. A morphine bolus acts
# within an hour and lasts most of a day, a baclofen bolus peaks at about 4 h and lasts 4-8 h [L].
DEFAULT_DRUG_RESPONSES = (
    DrugResponse(Drug.MORPHINE, DrugClass.OPIOID, 0.15, 8.0, 1.0, 2.0),
    DrugResponse(Drug.HYDROMORPHONE, DrugClass.OPIOID, 0.03, 6.0, 1.0, 0.4),
    DrugResponse(Drug.FENTANYL, DrugClass.OPIOID, 0.015, 1.0, 0.5, 0.2),
    DrugResponse(Drug.SUFENTANIL, DrugClass.OPIOID, 0.003, 1.0, 0.5, 0.04),
    DrugResponse(Drug.BUPIVACAINE, DrugClass.LOCAL_ANAESTHETIC, 4.0, 1.0, 0.5, 25.0),
    DrugResponse(Drug.CLONIDINE, DrugClass.ALPHA2_AGONIST, 0.15, 2.0, 1.0, 0.9),
    DrugResponse(Drug.ZICONOTIDE, DrugClass.N_TYPE_BLOCKER, 0.006, 12.0, 6.0, 0.02),
    DrugResponse(Drug.BACLOFEN, DrugClass.GABA_B_AGONIST, 0.15, 1.5, 1.0, 1.5),
)


REFERENCE_TRIAL_DAYS = 7.0  # the trial the responder rate is solved for: 7 days, after 7 of baseline [E]


@dataclass(frozen=True)
class PatientConfig:
    """The virtual patient's tunables (a scenario's ``[patient]`` table overrides any of them)."""

    # --- baseline -------------------------------------------------------------------------------
    baseline_nrs_mean: float = 7.2  # LUMINA baseline NRS 7.17 [V]
    baseline_nrs_sd: float = 1.1  # [E]
    baseline_nrs_min: float = 5.0  # trials enrol moderate-to-severe pain, NRS >= 5 [E]
    baseline_odi_mean: float = 48.0  # ODI 0-100, severe disability band 41-60 [E]
    baseline_odi_sd: float = 12.0  # [E]
    opioid_user_fraction: float = 0.6  # share on oral opioids at baseline [E]
    baseline_mme_median: float = 40.0  # morphine milligram equivalents per day, lognormal median [E]
    baseline_mme_sigma: float = 0.7  # its log-sd [E]
    # Share of the pain that is neuropathic, mean by indication (radicular and post-surgical pain
    # mostly neuropathic, axial and cancer pain mostly nociceptive) [E]
    neuropathic_fraction: dict[str, float] = field(
        default_factory=lambda: {
            "failed_back_surgery": 0.6,
            "radiculopathy": 0.7,
            "axial_pain": 0.3,
            "cancer_pain": 0.35,
            "spasticity": 0.0,
        }
    )
    baseline_mas_index: int = 4  # Modified Ashworth 3 (index of 0, 1, 1+, 2, 3, 4) for baclofen [E]

    # --- the trial call -------------------------------------------------------------------------
    responder_rate: float = 0.55  # 50-60 % of SCS patients reach >= 50 % relief (issue seed text) [V]
    responder_threshold: float = 0.50  # success = >= 50 % relief [V neuromodfound.org]
    relief_mean: float | None = None  # mean best relief; None = solved from responder_rate
    relief_sd: float = 0.22  # spread of the best relief between patients [E]
    relief_max: float = 0.95  # nobody is completely and permanently pain-free [E]
    medication_rise_allowed: float = 0.10  # "stable" analgesics: at most 10 % more MME [E]
    implant_given_responder: float = 0.80  # 44 % conversion after a first trial [V PubMed 24930992] / 55 % [E]
    mas_responder_drop: int = 1  # baclofen screening: >= 1 Ashworth grade lower [E]
    it_relief_hours: float = 8.0  # some clinics require relief lasting 8-12 h after a test dose [V]
    intolerable_side_effect: float = 0.5  # side-effect burden (0-1) a patient cannot accept [E]

    # --- placebo and noise ----------------------------------------------------------------------
    placebo_mean: float = 0.10  # extra relief early in a therapy, fading [E]
    placebo_sd: float = 0.08  # [E]
    placebo_half_life_days: float = 45.0  # [E]
    day_noise_sd: float = 0.7  # NRS points, day to day [E]
    day_noise_rho: float = 0.5  # day-to-day autocorrelation (AR 1) [E]
    slot_noise_sd: float = 0.6  # NRS points, within a day [E]
    evening_offset: float = 0.3  # pain is worse in the evening [E]
    # Patient-reported minus NRS-computed relief: mean 59 % vs 54 %, limits of agreement -30 to +41
    # points [V Reg Anesth Pain Med 2021;46(4):293]: a mean gap of 5.5 points, sd 71/3.92 = 18.1.
    reported_bias_points: float = 5.5
    reported_sd_points: float = 18.1

    # --- the diary ------------------------------------------------------------------------------
    diary_hours: tuple[float, ...] = (8.0, 20.0)  # NRS twice a day [V Provenzano 2021], local time
    medication_hour: float = 20.0  # the day's analgesics written down in the evening [E]
    utc_offset_min: int = 0  # the patient's local time, minutes east of UTC
    it_trial_nrs_every_h: float = 2.0  # an intrathecal test dose is watched for ~24 h [V]: NRS every 2 h [E]

    # --- stimulation ----------------------------------------------------------------------------
    # Perception threshold by strength-duration (Weiss/Lapicque): rheobase x (1 + chronaxie / pulse
    # width); in 19 SCS patients rheobase ~2.5 mA (1.3-3.3) and chronaxie ~295 us (242-326) [V Hershey
    # et al., Pain Physician 2010;13:321]. Lower at high pulse rates by temporal summation,
    # (rate / 50 Hz)^-kappa [E]: ~5.0 mA at 300 us and 50 Hz, ~7.2 mA at 30 us and 10 kHz.
    rheobase_ua: float = 2_500.0
    chronaxie_us: float = 295.0
    summation_kappa: float = 0.25  # [E]
    threshold_log_sd: float = 0.25  # between patients, from Hershey's rheobase spread [E]
    # Discomfort is a multiple of perception (the "therapeutic range", Abejon 2007 [V concept]) [E].
    discomfort_ratio_mean: float = 1.7
    discomfort_ratio_sd: float = 0.2  # [E]
    # Tonic relief needs paresthesia over the pain: none below perception, 60 % of the best at it,
    # full from a third of the way to discomfort [E]. Paresthesia-free waveforms (burst, 10 kHz)
    # work below perception: nothing under 15 % of it, full from 40 % (10 kHz at ~1-5 mA, BurstDR
    # ~0.6 mA, docs/devices.md 1.2) [E].
    tonic_relief_at_perception: float = 0.6
    tonic_full_fraction: float = 0.33
    subperception_start: float = 0.15
    subperception_full: float = 0.4
    # The painful area sits at a point along the lead (in contact spacings); an area's cathodes
    # cover it fully within this distance and less beyond, with a Gaussian fall-off [E].
    contacts_per_lead: int = 8  # percutaneous leads of 8 contacts [V docs/devices.md 1.4]
    coverage_full_within: float = 1.0
    coverage_falloff: float = 1.0
    cycling_full_duty: float = 0.25  # cycling keeps full relief down to 25 % on-time (carry-over) [E]
    tonic_tau_h: float = 0.5  # relief follows a tonic program within about an hour [E]
    subperception_tau_h: float = 24.0  # paresthesia-free relief takes about a day to build or fade [E]

    # --- long-term course -----------------------------------------------------------------------
    loss_of_effect_per_year: float = 0.06  # yearly hazard of losing SCS effect [E]; relief lasts up to 20 y [V]
    loss_of_effect_keeps: float = 0.4  # share of the relief kept after a loss of effect [E]
    opioid_tolerance_per_year: float = 0.3  # intrathecal opioid ED50 rises 30 %/year [E]
    dose_response_hill: float = 1.5  # steepness of every drug's dose-response and side-effect curve [E]

    drug_responses: tuple[DrugResponse, ...] = field(default=DEFAULT_DRUG_RESPONSES)

    def __post_init__(self) -> None:
        shares = (
            "responder_rate",
            "responder_threshold",
            "relief_max",
            "implant_given_responder",
            "opioid_user_fraction",
            "day_noise_rho",
            "intolerable_side_effect",
        )
        for name in shares:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"[patient] {name} = {value} is a share and must be from 0 to 1")
        if not 0.0 < self.responder_rate < 1.0:
            raise ValueError("[patient] responder_rate must be above 0 and below 1")
        for name in (
            "relief_sd",
            "day_noise_sd",
            "slot_noise_sd",
            "rheobase_ua",
            "chronaxie_us",
            "placebo_half_life_days",
            "tonic_tau_h",
            "subperception_tau_h",
            "baseline_mme_median",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"[patient] {name} must be above 0")
        if not self.diary_hours or any(not 0.0 <= h < 24.0 for h in self.diary_hours):
            raise ValueError("[patient] diary_hours are local hours from 0 to 24, at least one")
        if not -720 <= self.utc_offset_min <= 840:
            raise ValueError("[patient] utc_offset_min is from -720 to 840 (UTC-12:00 to UTC+14:00)")
        if not 0 <= self.baseline_mas_index <= 5:
            raise ValueError("[patient] baseline_mas_index is 0 to 5 (Ashworth 0, 1, 1+, 2, 3, 4)")

    def trial_rule(self) -> TrialRule:
        """The clinic's responder rule these settings make (``protocols.trials``)."""
        return TrialRule(
            self.responder_threshold,
            self.medication_rise_allowed,
            self.it_relief_hours,
            self.intolerable_side_effect,
            self.mas_responder_drop,
        )

    def response_of(self, drug: Drug) -> DrugResponse:
        """The response model of ``drug`` (every drug the pump can hold has one)."""
        for response in self.drug_responses:
            if response.drug is drug:
                return response
        raise ValueError(f"no response model for {drug.name.lower()}")

    def best_relief_mean(self) -> float:
        """``relief_mean``, or the mean best relief that makes ``responder_rate`` the expected call
        of a reference trial (7 days of baseline, 7 of trial); solved once for each set of the
        figures it depends on, however many configs (a patient each) share them."""
        if self.relief_mean is not None:
            return self.relief_mean
        return _solved_relief_mean(
            self.responder_rate,
            self.responder_threshold,
            self.relief_sd,
            self.placebo_mean,
            self.placebo_sd,
            self.placebo_half_life_days,
            self.day_noise_sd,
            self.day_noise_rho,
            self.slot_noise_sd,
            len(self.diary_hours),
            self.baseline_nrs_mean,
        )


@functools.lru_cache(maxsize=64)
def _solved_relief_mean(
    rate: float,
    theta: float,
    relief_sd: float,
    placebo_mean: float,
    placebo_sd: float,
    placebo_half_life_days: float,
    day_sd: float,
    rho: float,
    slot_sd: float,
    slots: int,
    baseline_nrs: float,
) -> float:
    """The mean best relief for responder rate ``rate`` in the reference trial.

    A trial's NRS-computed relief is about ``R + p (1 - R) + e``: the best relief R, the placebo
    p (clipped at 0, fading over the trial) on what is left, and the noise e of the two diary
    means. The share with it at or above the threshold is integrated over p and e on the
    normal's quantiles and solved for R's mean by bisection (the cohort test checks that a
    simulated cohort lands on the rate).
    """
    trial_days = baseline_days = REFERENCE_TRIAL_DAYS

    def mean_var(days: float) -> float:
        # variance of a diary mean: AR(1) day noise (long-run factor) plus slot noise and rounding
        day = day_sd**2 * (1 + 2 * rho / (1 - rho)) / max(days, 1.0)
        return day + (slot_sd**2 + 1 / 12) / max(days * slots, 1.0)

    noise_sd = ((mean_var(trial_days) + (1 - theta) ** 2 * mean_var(baseline_days)) / baseline_nrs**2) ** 0.5
    fade = sum(0.5 ** ((i + 0.5) / 10 * trial_days / placebo_half_life_days) for i in range(10)) / 10
    nodes = _normal_nodes()
    standard = NormalDist()

    def share(mu: float) -> float:
        total = 0.0
        for zp, wp in nodes:
            placebo = max(0.0, placebo_mean + placebo_sd * zp) * fade
            for ze, we in nodes:
                needed = (theta - placebo - noise_sd * ze) / (1 - placebo)
                total += wp * we * (1 - standard.cdf((needed - mu) / relief_sd))
        return total

    low, high = -1.0, 2.0
    for _ in range(32):  # 3 / 2**32: far finer than the noise of any cohort
        mid = (low + high) / 2
        low, high = (mid, high) if share(mid) < rate else (low, mid)
    return (low + high) / 2


def _normal_nodes(count: int = 48) -> list[tuple[float, float]]:
    """Equal-probability nodes of a standard normal (its quantiles at the middle of ``count`` equal
    slices), each weighing ``1 / count``: enough for the smooth integrand of the calibration, and
    without numpy, whose BLAS threads the emulator must not start."""
    standard = NormalDist()
    return [(standard.inv_cdf((i + 0.5) / count), 1.0 / count) for i in range(count)]


def patient_config(overrides: dict[str, Any]) -> PatientConfig:
    """``PatientConfig`` with a scenario's ``[patient]`` values; ``ValueError`` naming an unknown key."""
    known = {f.name for f in dataclasses.fields(PatientConfig)} - {"drug_responses"}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"[patient] has no setting(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    if "neuropathic_fraction" in values:  # a partial table: the indications it names
        shares = {**PatientConfig().neuropathic_fraction, **values["neuropathic_fraction"]}
        unknown = set(shares) - set(PatientConfig().neuropathic_fraction)
        if unknown or any(not 0 <= v <= 1 for v in shares.values()):
            raise ValueError(
                f"[patient] neuropathic_fraction takes shares 0-1 for {', '.join(PatientConfig().neuropathic_fraction)}"
            )
        values["neuropathic_fraction"] = shares
    return PatientConfig(**values)
