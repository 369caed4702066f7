"""A virtual patient living on a device's clock: what they feel, and the diary they write.

``VirtualPatient.advance(to_ms, scs=..., rates=...)`` moves the patient to ``to_ms`` under what the
device delivered meanwhile (a stimulator's ``ScsDelivery``, a pump's infusion rates per drug; a
bolus is ``bolus``) and returns the diary entries written on the way: NRS (or, for spasticity, the
Ashworth grade) at the diary hours of the patient's local day, and analgesics and side effects each
evening. Every draw is keyed by the slot it belongs to (``noise``), relief follows delivery by
exact first-order steps and drugs by the exact compartment solution, so the diary is the same
however the caller steps time. ``start_trial``/``end_trial`` bracket a trial (the end writes the
patient's relief report, PGIC and ODI); ``implant`` starts the long-term course.

The state is a small JSON document (``to_json``/``from_json``) a device saves with its own, so a
restart continues the diary without a gap. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from protocols.messages import Drug

from . import noise
from .config import DrugClass, PatientConfig
from .diary import DiaryEntry, DiaryKind, DiarySource, check_value, entry_from_json, entry_to_json, scores
from .profile import PatientProfile
from .response import DrugLevels, ScsDelivery, drug_effect, relaxed, years_between

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
DIARY_CAPACITY = 4_096  # entries a device keeps (about 5 years at 2 a day); older ones are dropped [E]


@dataclass
class PatientState:
    """What changes as a patient lives: relief reached, drugs on board, trial marks, the diary."""

    time_ms: int
    relief_factor: float = 0.0  # stimulation: share of the best relief reached now
    levels: DrugLevels = field(default_factory=DrugLevels.empty)
    therapy_since_ms: int | None = None  # first therapy (the placebo's clock)
    opioid_since_ms: int | None = None  # first intrathecal opioid (tolerance's clock)
    implant_ms: int | None = None
    baseline_from_ms: int = 0
    trial_from_ms: int | None = None
    trial_to_ms: int | None = None
    observe_every_h: float | None = None  # an intrathecal test dose: scores every few hours
    observe_until_ms: int | None = None  # ... until then (None: until told otherwise)
    discomfort: bool = False  # the stimulation now is above the discomfort threshold
    noise_day: int | None = None  # local day of ``day_noise``
    day_noise: float = 0.0
    next_seq: int = 1
    diary: list[DiaryEntry] = field(default_factory=list)


class VirtualPatient:
    """One patient: a fixed ``PatientProfile`` and a ``PatientState`` that time moves on."""

    def __init__(self, profile: PatientProfile, config: PatientConfig, start_ms: int) -> None:
        self.profile, self.config = profile, config
        self.state = PatientState(time_ms=start_ms, baseline_from_ms=start_ms)
        self._write(start_ms, DiaryKind.ODI, round(profile.baseline_odi))

    # --- time ----------------------------------------------------------------------------------
    def advance(
        self, to_ms: int, scs: ScsDelivery | None = None, rates: dict[Drug, float] | None = None
    ) -> list[DiaryEntry]:
        """Live until ``to_ms`` under ``scs`` or ``rates`` (mg/day per drug); the entries written."""
        rates = rates or {}
        before = self.state.next_seq
        if scs is not None:
            self.state.discomfort = scs.discomfort
        while True:
            slot = self._next_slot(self.state.time_ms)
            if slot > to_ms:
                break
            self._live(slot, scs, rates)
            self._score(slot)
        self._live(to_ms, scs, rates)
        made = self.state.next_seq - before
        return self.state.diary[-made:] if made else []

    def bolus(self, doses_mg: dict[Drug, float]) -> None:
        """Drugs given at once now (a test dose, a clinician's or the patient's bolus)."""
        for drug, mg in doses_mg.items():
            if mg < 0:
                raise ValueError(f"a bolus of {drug.name.lower()} cannot be negative ({mg} mg)")
            self.state.levels.bolus(drug, mg)
            self._started(drug)

    def _live(self, to_ms: int, scs: ScsDelivery | None, rates: dict[Drug, float]) -> None:
        state = self.state
        hours = (to_ms - state.time_ms) / HOUR_MS
        if hours <= 0:
            return
        if scs is not None:
            if scs.factor > 0 and state.therapy_since_ms is None:
                state.therapy_since_ms = state.time_ms
            state.relief_factor = relaxed(state.relief_factor, scs.factor, hours, scs.tau_h)
        for drug, rate in rates.items():
            if rate > 0:
                self._started(drug)
        state.levels.advance(hours, rates, self.config)
        state.time_ms = to_ms

    def _started(self, drug: Drug) -> None:
        state = self.state
        if state.therapy_since_ms is None:
            state.therapy_since_ms = state.time_ms
        if state.opioid_since_ms is None and self.config.response_of(drug).drug_class is DrugClass.OPIOID:
            state.opioid_since_ms = state.time_ms

    def _next_slot(self, after_ms: int) -> int:
        """The first diary time strictly after ``after_ms``: a diary hour, the evening entry, or an
        observation every few hours during a test dose."""
        offset = self.config.utc_offset_min * 60_000
        state = self.state
        if state.observe_every_h and state.observe_until_ms is not None and after_ms >= state.observe_until_ms:
            state.observe_every_h = state.observe_until_ms = None  # the watch is over: back to the diary hours
        if state.observe_every_h:
            step = round(state.observe_every_h * HOUR_MS)
            slot = ((after_ms + offset) // step + 1) * step - offset
            if state.observe_until_ms is None or slot <= state.observe_until_ms:
                return slot
            state.observe_every_h = state.observe_until_ms = None
        local = after_ms + offset
        day = local // DAY_MS * DAY_MS
        for day_start in (day, day + DAY_MS):
            for hour in self._hours():
                slot = day_start + round(hour * HOUR_MS)
                if slot > local:
                    return slot - offset
        raise AssertionError("a day always has a diary hour")  # pragma: no cover

    def _hours(self) -> list[float]:
        return sorted({*self.config.diary_hours, self.config.medication_hour})

    # --- what the patient feels ------------------------------------------------------------------
    def relief(self, at_ms: int) -> float:
        """Share of the patient's pain (or spasticity) relieved at ``at_ms`` (the state's time)."""
        profile, config, state = self.profile, self.config, self.state
        if profile.kind == "scs":
            factor = state.relief_factor
        else:
            effect = drug_effect(state.levels, profile, config, years_between(state.opioid_since_ms, at_ms))
            factor = effect.spasticity if profile.spasticity else effect.pain
        best = profile.best_relief
        if state.implant_ms is not None and at_ms - state.implant_ms >= profile.loss_after_days * DAY_MS:
            best *= config.loss_of_effect_keeps
        placebo = 0.0
        if state.therapy_since_ms is not None:
            days = (at_ms - state.therapy_since_ms) / DAY_MS
            placebo = profile.placebo * 0.5 ** (days / config.placebo_half_life_days) * min(1.0, factor / 0.5)
        return 1 - (1 - best * factor) * (1 - placebo)

    def side_effects(self, at_ms: int, discomfort: bool = False) -> float:
        """Side-effect burden 0-1 now: the drugs', or stimulation above the discomfort threshold."""
        if self.profile.kind == "scs":
            return 0.6 if discomfort else 0.0  # stimulation the patient cannot bear [E]
        years = years_between(self.state.opioid_since_ms, at_ms)
        return drug_effect(self.state.levels, self.profile, self.config, years).side_effects

    def _noise(self, slot_ms: int) -> float:
        """Day-to-day (AR 1) plus within-day noise of a score at ``slot_ms``, NRS points."""
        config, state, p = self.config, self.state, self.profile
        day = (slot_ms + config.utc_offset_min * 60_000) // DAY_MS
        rho = config.day_noise_rho
        if state.noise_day is None:
            state.noise_day, state.day_noise = day, config.day_noise_sd * noise.normal(p.seed, p.kind, p.index, day)
        while state.noise_day < day:
            state.noise_day += 1
            shock = noise.normal(p.seed, p.kind, p.index, state.noise_day)
            state.day_noise = rho * state.day_noise + math.sqrt(1 - rho * rho) * config.day_noise_sd * shock
        return state.day_noise + config.slot_noise_sd * noise.normal(p.seed, p.kind, p.index, "slot", slot_ms)

    def _score(self, slot_ms: int) -> None:
        config, profile = self.config, self.profile
        hour = ((slot_ms + config.utc_offset_min * 60_000) % DAY_MS) / HOUR_MS
        relief = self.relief(slot_ms)
        observing = self.state.observe_every_h is not None
        if observing or any(abs(hour - h) < 1e-6 for h in config.diary_hours):
            shake = self._noise(slot_ms) + (config.evening_offset if hour >= 17 else 0.0)
            if profile.spasticity:
                # a clinician's grade on a coarse scale: a quarter of the NRS noise [E]
                grade = profile.baseline_mas_index * (1 - relief) + 0.25 * shake
                self._write(slot_ms, DiaryKind.MAS, min(5, max(0, round(grade))))
            else:
                pain = profile.baseline_nrs * (1 - relief) + shake
                self._write(slot_ms, DiaryKind.NRS, min(10, max(0, round(pain))))
        if abs(hour - config.medication_hour) < 1e-6:
            if profile.baseline_mme:
                wobble = math.exp(0.1 * noise.normal(profile.seed, profile.kind, profile.index, "mme", slot_ms))
                self._write(slot_ms, DiaryKind.MEDICATION, round(profile.baseline_mme * max(0.2, 1 - relief) * wobble))
            burden = self.side_effects(slot_ms, self.state.discomfort)
            if burden >= 0.05:
                self._write(slot_ms, DiaryKind.SIDE_EFFECTS, min(10, round(10 * burden)))

    # --- the trial and after -------------------------------------------------------------------
    def start_trial(self, at_ms: int) -> None:
        """The trial starts now: what came before is the baseline."""
        self.state.trial_from_ms, self.state.trial_to_ms = at_ms, None

    def observe(self, every_h: float | None, until_ms: int | None = None) -> None:
        """Score every ``every_h`` hours (an intrathecal test dose) until ``until_ms`` (None: until
        told), or back to the diary hours (``every_h`` None)."""
        if every_h is not None and every_h <= 0:
            raise ValueError("observation interval must be above 0 hours")
        self.state.observe_every_h, self.state.observe_until_ms = every_h, until_ms if every_h else None

    def end_trial(self, at_ms: int, computed: float | None = None) -> list[DiaryEntry]:
        """The trial ends now: the patient's relief report, PGIC and ODI (the entries written).

        The report departs from the relief the diary shows (``computed``; by default the trial's
        mean score against the baseline's) by the patient's own gap.
        """
        state, profile = self.state, self.profile
        if state.trial_from_ms is None:
            raise ValueError("no trial was started")
        state.trial_to_ms = at_ms
        if computed is None:
            kind = DiaryKind.MAS if profile.spasticity else DiaryKind.NRS
            before = scores(state.diary, kind, state.baseline_from_ms, state.trial_from_ms)
            during = scores(state.diary, kind, state.trial_from_ms, at_ms + 1)
            base = sum(before) / len(before) if before else 0.0
            computed = 1 - (sum(during) / len(during)) / base if base and during else 0.0
        reported = min(100, max(0, round(100 * computed + profile.reported_gap_points)))
        start = len(state.diary)
        self._write(at_ms, DiaryKind.RELIEF, reported)
        self._write(at_ms, DiaryKind.PGIC, pgic(reported))
        odi = profile.baseline_odi * (1 - 0.6 * max(0.0, computed))  # disability follows pain, partly [E]
        self._write(at_ms, DiaryKind.ODI, min(100, max(0, round(odi))))
        return state.diary[start:]

    def implant(self, at_ms: int) -> None:
        """The permanent system is implanted now: the long-term course starts."""
        self.state.implant_ms = at_ms

    def add_entry(self, at_ms: int, kind: DiaryKind, value: Any, source: DiarySource) -> DiaryEntry:
        """An entry a person typed into a host (``ValueError`` for a value outside the kind's range)."""
        self._write(at_ms, kind, check_value(kind, value), source)
        return self.state.diary[-1]

    def _write(self, at_ms: int, kind: DiaryKind, value: int, source: DiarySource = DiarySource.CONTROLLER) -> None:
        state = self.state
        state.diary.append(DiaryEntry(state.next_seq, at_ms, kind, value, source))
        state.next_seq += 1
        if len(state.diary) > DIARY_CAPACITY:
            del state.diary[: len(state.diary) - DIARY_CAPACITY]

    def read(self, from_seq: int, count: int) -> list[DiaryEntry]:
        """Up to ``count`` entries from ``from_seq`` on (0 or 1: from the oldest kept)."""
        return [e for e in self.state.diary if e.seq >= from_seq][:count]

    # --- saved state ---------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The patient as JSON: profile, config overrides are the device's, state."""
        state = self.state
        return {
            "profile": self.profile.to_json(),
            "state": {
                "time_ms": state.time_ms,
                "relief_factor": state.relief_factor,
                "levels": state.levels.to_json(),
                "therapy_since_ms": state.therapy_since_ms,
                "opioid_since_ms": state.opioid_since_ms,
                "implant_ms": state.implant_ms,
                "baseline_from_ms": state.baseline_from_ms,
                "trial_from_ms": state.trial_from_ms,
                "trial_to_ms": state.trial_to_ms,
                "observe_every_h": state.observe_every_h,
                "observe_until_ms": state.observe_until_ms,
                "discomfort": state.discomfort,
                "noise_day": state.noise_day,
                "day_noise": state.day_noise,
                "next_seq": state.next_seq,
                "diary": [entry_to_json(e) for e in state.diary],
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], config: PatientConfig) -> VirtualPatient:
        """Rebuild from ``to_json`` (with the config the device runs)."""
        patient = cls.__new__(cls)
        patient.profile, patient.config = PatientProfile.from_json(data["profile"]), config
        saved = dict(data["state"])
        saved["levels"] = DrugLevels.from_json(saved["levels"])
        saved["diary"] = [entry_from_json(row) for row in saved["diary"]]
        patient.state = PatientState(**saved)
        return patient


def pgic(reported_relief: int) -> int:
    """The PGIC a patient reporting this relief (%) gives: 7 from 70 %, 1 at no relief [E]."""
    for floor, grade in ((70, 7), (50, 6), (30, 5), (15, 4), (5, 3), (1, 2)):
        if reported_relief >= floor:
            return grade
    return 1
