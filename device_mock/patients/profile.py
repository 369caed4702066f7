"""Who a virtual patient is: indication, baseline and the traits their response depends on.

``draw_profile(seed, index, kind, config)`` is the same patient for the same arguments. The traits
are fixed for life (best relief, thresholds, where the pain lies along the lead, placebo, how
their own relief report differs from their NRS, when a stimulator loses its effect); what changes
with time lives in ``patient.PatientState``.

Imports ``config`` only (and the standard library).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any

from .config import PatientConfig


class Indication(IntEnum):
    """Why the patient is treated (the issue's seed indications)."""

    FAILED_BACK_SURGERY = 1
    RADICULOPATHY = 2  # sciatica, leg pain
    AXIAL_PAIN = 3  # osteoporosis or other axial pain
    CANCER_PAIN = 4
    SPASTICITY = 5  # multiple sclerosis: baclofen, judged on the Modified Ashworth Scale


SCS_INDICATIONS = ((Indication.FAILED_BACK_SURGERY, 60), (Indication.RADICULOPATHY, 40))  # clinic mix [E]
PUMP_INDICATIONS = (
    (Indication.AXIAL_PAIN, 30),
    (Indication.FAILED_BACK_SURGERY, 20),
    (Indication.CANCER_PAIN, 30),
    (Indication.SPASTICITY, 20),
)  # clinic mix [E]
KINDS = ("scs", "pump")


@dataclass(frozen=True)
class PatientProfile:
    """A virtual patient's fixed traits. ``best_relief`` is the share of pain the right therapy,
    well delivered, takes away (before placebo and the long-term course)."""

    seed: int
    index: int
    kind: str  # "scs" or "pump": which therapy the patient is trialled for
    indication: Indication
    baseline_nrs: float  # the patient's usual pain, 0-10
    baseline_odi: float  # Oswestry Disability Index, 0-100
    baseline_mme: float  # oral analgesics, morphine milligram equivalents per day (0: none)
    neuropathic_fraction: float  # share of the pain that is neuropathic
    best_relief: float
    placebo: float  # extra relief at the start of a therapy, fading
    threshold_scale: float  # this patient's perception threshold against the model's
    discomfort_ratio: float  # discomfort threshold / perception threshold
    pain_position: float  # where the painful area maps along the lead, in contact spacings
    loss_after_days: float  # days after the implant when a stimulator's effect fades (inf: never)
    implants_if_responder: bool  # goes on to an implant after a successful trial
    reported_gap_points: float  # their reported relief minus the NRS-computed one, points
    baseline_mas_index: int  # Modified Ashworth index (0, 1, 1+, 2, 3, 4 as 0-5); spasticity only

    @property
    def spasticity(self) -> bool:
        """True when the treatment is judged on spasticity (baclofen), not on pain."""
        return self.indication is Indication.SPASTICITY

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_json`` reads it back); an infinite loss time is written as None."""
        data = asdict(self)
        data["indication"] = int(self.indication)
        data["loss_after_days"] = None if math.isinf(self.loss_after_days) else self.loss_after_days
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PatientProfile:
        """Rebuild from ``to_json``."""
        values = dict(data)
        values["indication"] = Indication(values["indication"])
        values["loss_after_days"] = math.inf if values["loss_after_days"] is None else values["loss_after_days"]
        return cls(**values)


def draw_profile(seed: int, index: int, kind: str, config: PatientConfig | None = None) -> PatientProfile:
    """Patient ``index`` of the cohort ``seed`` trialled for ``kind`` ("scs" or "pump")."""
    if kind not in KINDS:
        raise ValueError(f"no virtual patient for device kind {kind!r} (kinds: {', '.join(KINDS)})")
    config = config or PatientConfig()
    rng = random.Random(f"{seed}:patient:{kind}:{index}")
    table = SCS_INDICATIONS if kind == "scs" else PUMP_INDICATIONS
    indication = rng.choices([i for i, _ in table], [w for _, w in table])[0]
    nrs = config.baseline_nrs_mean + config.baseline_nrs_sd * rng.gauss()
    opioid = rng.random() < config.opioid_user_fraction
    mme = config.baseline_mme_median * math.exp(config.baseline_mme_sigma * rng.gauss()) if opioid else 0.0
    typical = config.neuropathic_fraction.get(indication.name.lower(), 0.5)
    neuropathic = min(1.0, max(0.0, rng.gauss(typical, 0.15))) if typical else 0.0
    relief = config.best_relief_mean() + config.relief_sd * rng.gauss()
    placebo = config.placebo_mean + config.placebo_sd * rng.gauss()
    hazard = config.loss_of_effect_per_year / 365.25
    loss = rng.expovariate(hazard) if hazard > 0 else math.inf
    return PatientProfile(
        seed=seed,
        index=index,
        kind=kind,
        indication=indication,
        baseline_nrs=min(10.0, max(config.baseline_nrs_min, nrs)),
        baseline_odi=min(100.0, max(0.0, config.baseline_odi_mean + config.baseline_odi_sd * rng.gauss())),
        baseline_mme=round(mme, 1),
        neuropathic_fraction=neuropathic,
        best_relief=min(config.relief_max, max(0.0, relief)),
        placebo=min(0.5, max(0.0, placebo)),
        threshold_scale=math.exp(config.threshold_log_sd * rng.gauss()),
        discomfort_ratio=max(1.2, config.discomfort_ratio_mean + config.discomfort_ratio_sd * rng.gauss()),
        pain_position=rng.uniform(1.5, config.contacts_per_lead - 2.5),  # leads placed over the pain [E]
        loss_after_days=loss,
        implants_if_responder=rng.random() < config.implant_given_responder,
        reported_gap_points=config.reported_bias_points + config.reported_sd_points * rng.gauss(),
        baseline_mas_index=config.baseline_mas_index,
    )
