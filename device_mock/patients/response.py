"""How much of a patient's best relief a device's output gives: stimulation and intrathecal drugs.

Stimulation (``scs_delivery``): per area, the cathodes' coverage of the painful area times the
amplitude's place between the patient's perception and discomfort thresholds (paresthesia-free
waveforms work below perception), times the cycling's on-time; the best-covering area decides.
Relief follows with a time constant (``ScsDelivery.tau_h``), so therapy off means relief fading.

Drugs (``DrugLevels``): each drug goes to a depot and from it to its effect site, a chain of two
linear compartments solved exactly for a constant infusion over any interval, so the result does
not depend on how time is stepped. Drugs of one class add by their potency (Loewe), classes act
independently; opioids lose potency with years of use (tolerance); side effects grow with dose.

Pure functions of their arguments; imports ``protocols.messages`` and this package only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protocols.messages import Area, Drug, StimProgramSet, Waveform

from .config import DrugClass, PatientConfig
from .profile import PatientProfile

DAY_H = 24.0
YEAR_DAYS = 365.25


# --- stimulation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScsDelivery:
    """What a stimulator gives a patient now: the share of their best relief its output reaches."""

    factor: float  # 0..1: coverage x amplitude x cycling of the best area; 0 with therapy off
    tau_h: float  # how fast relief follows a change (paresthesia-free therapy builds slowly)
    paresthesia: bool  # some area is above the perception threshold
    discomfort: bool  # some area is above the discomfort threshold

    @classmethod
    def off(cls, config: PatientConfig, program: StimProgramSet | None = None) -> ScsDelivery:
        """Nothing delivered; relief fades at the pace of ``program``'s waveform."""
        tonic = program is None or any(a.waveform is Waveform.TONIC for a in program.areas)
        return cls(0.0, config.tonic_tau_h if tonic else config.subperception_tau_h, False, False)


def perception_ua(area: Area, profile: PatientProfile, config: PatientConfig) -> float:
    """The patient's perception threshold for ``area``'s pulses, µA (strength-duration, summation)."""
    width = max(area.pulse_width_us, 1)
    rate = area.burst_rate_hz if area.waveform is Waveform.BURST and area.burst_rate_hz else area.rate_hz
    summation = (max(rate, 50) / 50) ** config.summation_kappa
    return config.rheobase_ua * (1 + config.chronaxie_us / width) / summation * profile.threshold_scale


def coverage(area: Area, profile: PatientProfile, config: PatientConfig, lead_offset: float, disabled: int) -> float:
    """Share of the painful area the cathodes of ``area`` reach (contacts along the lead)."""
    cathodes = [c for c in range(32) if area.cathode_mask >> c & 1 and not disabled >> c & 1]
    if not cathodes:
        return 0.0
    centre = sum(c % config.contacts_per_lead for c in cathodes) / len(cathodes)
    distance = abs(centre - (profile.pain_position + lead_offset))
    beyond = max(0.0, distance - config.coverage_full_within)
    return math.exp(-((beyond / config.coverage_falloff) ** 2))


def amplitude_factor(area: Area, perception: float, discomfort: float, config: PatientConfig) -> float:
    """Share of the best relief ``area``'s amplitude gives, given the patient's two thresholds."""
    amp = area.amplitude_ua
    if area.waveform is Waveform.TONIC:
        if amp < perception:
            return 0.0
        span = max(config.tonic_full_fraction * (discomfort - perception), 1.0)
        at = config.tonic_relief_at_perception
        return min(1.0, at + (1 - at) * (amp - perception) / span)
    start, full = config.subperception_start, config.subperception_full
    return min(1.0, max(0.0, (amp / perception - start) / (full - start)))


def duty_factor(area: Area, config: PatientConfig) -> float:
    """Cycling keeps full relief down to ``cycling_full_duty`` on-time, less below (carry-over)."""
    if not area.cycle_on_s or not area.cycle_off_s:
        return 1.0
    duty = area.cycle_on_s / (area.cycle_on_s + area.cycle_off_s)
    return min(1.0, duty / config.cycling_full_duty)


def scs_delivery(
    program: StimProgramSet | None,
    therapy_on: bool,
    profile: PatientProfile,
    config: PatientConfig,
    lead_offset: float = 0.0,
    disabled_contacts: int = 0,
) -> ScsDelivery:
    """What ``program`` gives this patient: ``lead_offset`` is a migration (contact spacings, along
    the lead), ``disabled_contacts`` a mask of contacts the device turned off (a short)."""
    if program is None or not therapy_on:
        return ScsDelivery.off(config, program)
    best, best_area, paresthesia, discomfort = 0.0, program.areas[0], False, False
    for area in program.areas:
        perception = perception_ua(area, profile, config)
        pain_free = perception * profile.discomfort_ratio
        paresthesia |= area.amplitude_ua >= perception
        discomfort |= area.amplitude_ua > pain_free
        factor = coverage(area, profile, config, lead_offset, disabled_contacts)
        factor *= amplitude_factor(area, perception, pain_free, config) * duty_factor(area, config)
        if factor > best:
            best, best_area = factor, area
    tau = config.tonic_tau_h if best_area.waveform is Waveform.TONIC else config.subperception_tau_h
    return ScsDelivery(best, tau, paresthesia, discomfort)


def relaxed(current: float, target: float, hours: float, tau_h: float) -> float:
    """``current`` after ``hours`` of first-order approach to ``target``: exact for any step."""
    return target + (current - target) * math.exp(-hours / tau_h)


# --- intrathecal drugs -------------------------------------------------------------------------
@dataclass
class DrugLevels:
    """Depot and effect-site levels per drug (mg and mg/day-equivalent): the pump patient's PK state."""

    depot_mg: dict[Drug, float]
    effect: dict[Drug, float]

    @classmethod
    def empty(cls) -> DrugLevels:
        """No drug on board."""
        return cls({}, {})

    def bolus(self, drug: Drug, mg: float) -> None:
        """``mg`` of ``drug`` given at once (into the depot: it acts with the drug's onset)."""
        self.depot_mg[drug] = self.depot_mg.get(drug, 0.0) + mg
        self.effect.setdefault(drug, 0.0)

    def advance(self, hours: float, rates_mg_per_day: dict[Drug, float], config: PatientConfig) -> None:
        """``hours`` at constant infusion ``rates_mg_per_day``: the exact solution of the chain."""
        if hours <= 0:
            return
        t = hours / DAY_H
        for drug in set(self.depot_mg) | set(rates_mg_per_day):
            response = config.response_of(drug)
            ka = math.log(2) / (response.onset_half_life_h / DAY_H)
            ke = math.log(2) / (response.effect_half_life_h / DAY_H)
            rate = rates_mg_per_day.get(drug, 0.0)
            a0, c0 = self.depot_mg.get(drug, 0.0), self.effect.get(drug, 0.0)
            a_inf = rate / ka
            ea, ee = math.exp(-ka * t), math.exp(-ke * t)
            excess = a0 - a_inf
            if abs(ke - ka) > 1e-9:
                transfer = ke * ka * excess / (ke - ka) * (ea - ee)
            else:
                transfer = ke * ka * excess * t * ee
            self.depot_mg[drug] = a_inf + excess * ea
            self.effect[drug] = max(0.0, rate + (c0 - rate) * ee + transfer)
            if self.depot_mg[drug] < 1e-12 and self.effect[drug] < 1e-12 and not rate:
                del self.depot_mg[drug], self.effect[drug]

    def to_json(self) -> dict[str, list[float]]:
        """``{drug value: [depot, effect]}``."""
        return {str(int(d)): [self.depot_mg.get(d, 0.0), self.effect.get(d, 0.0)] for d in self.effect}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> DrugLevels:
        """Rebuild from ``to_json``."""
        levels = cls.empty()
        for key, (depot, effect) in data.items():
            levels.depot_mg[Drug(int(key))], levels.effect[Drug(int(key))] = depot, effect
        return levels


@dataclass(frozen=True)
class DrugEffect:
    """What the drugs on board do now: shares of the best pain and spasticity relief, side effects."""

    pain: float
    spasticity: float
    side_effects: float  # 0..1 burden


def drug_effect(levels: DrugLevels, profile: PatientProfile, config: PatientConfig, opioid_years: float) -> DrugEffect:
    """The effect of ``levels``; opioids ``opioid_years`` into their use are less potent."""
    potency: dict[DrugClass, float] = {}
    toxicity: dict[DrugClass, float] = {}
    tolerance = 1 + config.opioid_tolerance_per_year * max(0.0, opioid_years)
    for drug, level in levels.effect.items():
        response = config.response_of(drug)
        # tolerance to an opioid's analgesia and to its side effects alike [E]
        scale = tolerance if response.drug_class is DrugClass.OPIOID else 1.0
        potency[response.drug_class] = potency.get(response.drug_class, 0.0) + level / (
            response.ed50_mg_per_day * scale
        )
        if response.td50_mg_per_day:
            units = level / (response.td50_mg_per_day * scale)
            toxicity[response.drug_class] = toxicity.get(response.drug_class, 0.0) + units

    hill = config.dose_response_hill

    def emax(units: float) -> float:
        return units**hill / (1 + units**hill) if units > 0 else 0.0

    neuropathic = profile.neuropathic_fraction
    kept = 1.0
    for drug_class, units in potency.items():
        if drug_class is DrugClass.GABA_B_AGONIST:
            continue
        # opioids serve nociceptive pain best; the adjuncts act on the neuropathic part [E]
        weight = 1 - 0.4 * neuropathic if drug_class is DrugClass.OPIOID else 0.3 + 0.7 * neuropathic
        kept *= 1 - weight * emax(units)
    burden = 1.0
    for units in toxicity.values():
        burden *= 1 - emax(units)
    return DrugEffect(1 - kept, emax(potency.get(DrugClass.GABA_B_AGONIST, 0.0)), 1 - burden)


def years_between(since_ms: int | None, now_ms: int) -> float:
    """Years from ``since_ms`` to ``now_ms`` (0 when never started)."""
    return 0.0 if since_ms is None else max(0.0, (now_ms - since_ms) / 86_400_000 / YEAR_DAYS)
