"""A device's patient: what the device really delivered, fed to its virtual patient segment by segment.

A model that treats a patient holds a ``Treatment`` and calls ``stimulated`` or ``infused`` for each
constant-delivery segment it integrates (between breakpoints and commands delivery does not
change), so the patient lives on the device's clock and feels exactly what the device gave: a
stimulator's live areas (an open lead loses its area, a short its contacts, a flat battery all),
a pump's delivered volume at the reservoir's concentrations (nothing while the catheter is
occluded). The treatment is saved inside the model's own state, so a ``kill -9`` loses nothing a
host was shown and the diary continues without a gap.

A lead migration (the stimulator's ``lead_migration`` fault) reaches the patient as an offset of
the coverage; the device itself only sees changed impedances.

Imports ``patients`` and ``protocols``; must not import the models (which import this), ``device``,
``server`` or ``cli``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocols.messages import DrugConcentration, StimProgramSet

from .patients.config import PatientConfig, patient_config
from .patients.diary import DiaryEntry
from .patients.patient import DAY_MS, VirtualPatient
from .patients.profile import draw_profile
from .patients.response import scs_delivery

BASELINE_DAYS = 7  # the diary a trial patient brings: a week before the trial starts [E]


@dataclass
class Treatment:
    """The patient a device treats, with the scenario's ``[patient]`` overrides it was built with."""

    patient: VirtualPatient
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, kind: str, seed: int, index: int, start_ms: int, overrides: dict[str, Any], trial: bool) -> Treatment:
        """Patient ``index`` of ``seed`` for a ``kind`` device starting at ``start_ms``.

        A trial patient arrives with a week of baseline diary and starts the trial at ``start_ms``;
        an implant's patient starts their diary then, already implanted.
        """
        config = patient_config(overrides)
        profile = draw_profile(seed, index, kind, config)
        begin = start_ms - BASELINE_DAYS * DAY_MS if trial else start_ms
        patient = VirtualPatient(profile, config, begin)
        patient.advance(start_ms)
        if trial:
            patient.start_trial(start_ms)
        else:
            patient.implant(start_ms)
        return cls(patient, dict(overrides))

    @property
    def config(self) -> PatientConfig:
        """The patient model's config."""
        return self.patient.config

    def stimulated(
        self, end_ms: int, program: StimProgramSet | None, disabled_contacts: int, lead_offset: float = 0.0
    ) -> None:
        """The stimulator gave ``program`` (its live areas, None when nothing) until ``end_ms``, its
        leads ``lead_offset`` contact spacings away from where they were placed."""
        patient = self.patient
        if end_ms <= patient.state.time_ms:
            return
        delivery = scs_delivery(
            program, program is not None, patient.profile, self.config, lead_offset, disabled_contacts
        )
        patient.advance(end_ms, scs=delivery)

    def infused(self, end_ms: int, delivered_ul: float, drugs: tuple[DrugConcentration, ...]) -> None:
        """The pump delivered ``delivered_ul`` of ``drugs`` evenly until ``end_ms``."""
        patient = self.patient
        start = patient.state.time_ms
        if end_ms <= start:
            return
        days = (end_ms - start) / DAY_MS
        rates = {d.drug: d.conc_ng_per_ml * delivered_ul / 1e9 / days for d in drugs} if delivered_ul > 0 else {}
        patient.advance(end_ms, rates=rates)

    def watch_test_dose(self, now_ms: int) -> None:
        """A test dose was given: the patient is scored every few hours for the next day [V ~24 h]."""
        self.patient.observe(self.config.it_trial_nrs_every_h, now_ms + DAY_MS)

    def new_entries(self, after_seq: int) -> list[DiaryEntry]:
        """Diary entries after ``after_seq``."""
        return [e for e in self.patient.state.diary if e.seq > after_seq]

    @property
    def last_seq(self) -> int:
        """The newest diary entry's number (0: none yet)."""
        return self.patient.state.next_seq - 1

    def to_state(self) -> dict[str, Any]:
        """JSON-ready form (``from_state`` reads it)."""
        return {"overrides": self.overrides, "patient": self.patient.to_json()}

    @classmethod
    def from_state(cls, data: dict[str, Any] | None) -> Treatment | None:
        """Rebuild from ``to_state`` (None: the device treats no virtual patient)."""
        if data is None:
            return None
        overrides = dict(data["overrides"])
        patient = VirtualPatient.from_json(data["patient"], patient_config(overrides))
        return cls(patient, overrides)
