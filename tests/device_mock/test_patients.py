"""Virtual patients: seeded, pure, stepped any way; relief from what the device really delivers."""

from __future__ import annotations

import dataclasses
import json
import math
import random

import pytest

from device_mock.patients.config import PatientConfig, patient_config
from device_mock.patients.diary import DiaryKind, DiarySource, entry_to_json
from device_mock.patients.patient import DAY_MS, HOUR_MS, VirtualPatient
from device_mock.patients.profile import Indication, PatientProfile, draw_profile
from device_mock.patients.response import DrugLevels, drug_effect, perception_ua, scs_delivery
from protocols.messages import Area, Drug, StimProgramSet, Waveform
from protocols.trials import call_trial

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
CONFIG = PatientConfig()


def scs_patient(index: int = 3, **traits) -> PatientProfile:
    return dataclasses.replace(draw_profile(1, index, "scs", CONFIG), **traits)


def pump_patient(indication: Indication = Indication.CANCER_PAIN, **traits) -> PatientProfile:
    profile = draw_profile(1, 0, "pump", CONFIG)
    return dataclasses.replace(profile, indication=indication, **traits)


def tonic(cathode: int, amp_ua: int, pw: int = 300, rate: int = 50, **kw) -> StimProgramSet:
    fields = dict(waveform=Waveform.TONIC, burst_pulses=0, burst_rate_hz=0, cycle_on_s=0, cycle_off_s=0)
    fields.update(kw)
    area = Area(1 << (cathode + 1), 1 << cathode, amp_ua, pw, rate, **fields)
    return StimProgramSet(1, True, (area,), amp_ua, 2)


def comfortable(profile: PatientProfile, cathode: int | None = None, **kw) -> StimProgramSet:
    """A tonic program over the pain, halfway from perception to discomfort."""
    cathode = round(profile.pain_position) if cathode is None else cathode
    p = perception_ua(tonic(cathode, 1_000).areas[0], profile, CONFIG)
    return tonic(cathode, round(p * (1 + (profile.discomfort_ratio - 1) / 2)), **kw)


def diary_of(patient: VirtualPatient, kind: DiaryKind) -> list[tuple[int, int]]:
    return [(e.time_ms, e.value) for e in patient.state.diary if e.kind is kind]


def mean_nrs(patient: VirtualPatient, start: int, end: int) -> float:
    values = [v for t, v in diary_of(patient, DiaryKind.NRS) if start <= t < end]
    return sum(values) / len(values)


def week_of_trial(profile: PatientProfile, steps: list[int]) -> list:
    """Baseline 3 days, then 7 days of a comfortable tonic program, advanced at ``steps``."""
    patient = VirtualPatient(profile, CONFIG, T0)
    on = scs_delivery(comfortable(profile), True, profile, CONFIG)
    for to in steps:
        patient.advance(to, scs=on if to > T0 + 3 * DAY_MS else None)
    return [entry_to_json(e) for e in patient.state.diary]


def test_the_same_seed_gives_the_same_diary_however_time_is_stepped():
    profile = scs_patient()
    end = T0 + 10 * DAY_MS
    rng = random.Random(5)
    ragged = sorted({T0 + rng.randrange(10 * DAY_MS) for _ in range(300)} | {T0 + 3 * DAY_MS, end})
    whole = week_of_trial(profile, [T0 + 3 * DAY_MS, end])
    assert len(whole) == 1 + 10 * 2 + 10 * (profile.baseline_mme > 0)  # ODI, NRS twice a day, analgesics
    assert week_of_trial(profile, list(range(T0 + HOUR_MS, end + 1, HOUR_MS))) == whole
    assert week_of_trial(profile, ragged) == whole
    assert draw_profile(1, 3, "scs", CONFIG) == draw_profile(1, 3, "scs", CONFIG) != draw_profile(2, 3, "scs", CONFIG)


def test_a_patient_saved_mid_trial_continues_without_a_gap_or_a_difference():
    profile = scs_patient()
    on = scs_delivery(comfortable(profile), True, profile, CONFIG)
    straight = VirtualPatient(profile, CONFIG, T0)
    straight.advance(T0 + 6 * DAY_MS, scs=on)
    saved = VirtualPatient(profile, CONFIG, T0)
    saved.advance(T0 + 2 * DAY_MS + 5 * HOUR_MS, scs=on)
    revived = VirtualPatient.from_json(json.loads(json.dumps(saved.to_json())), CONFIG)
    revived.advance(T0 + 6 * DAY_MS, scs=on)
    assert [entry_to_json(e) for e in revived.state.diary] == [entry_to_json(e) for e in straight.state.diary]
    assert [e.seq for e in revived.state.diary] == list(range(1, len(revived.state.diary) + 1))


def test_stimulation_relieves_pain_only_while_therapy_is_on():
    profile = scs_patient(best_relief=0.7, placebo=0.0)
    program = comfortable(profile)
    patient = VirtualPatient(profile, CONFIG, T0)
    patient.advance(T0 + 5 * DAY_MS)
    patient.advance(T0 + 10 * DAY_MS, scs=scs_delivery(program, True, profile, CONFIG))
    patient.advance(T0 + 15 * DAY_MS, scs=scs_delivery(program, False, profile, CONFIG))
    baseline, on, off = (mean_nrs(patient, T0 + d * DAY_MS, T0 + (d + 5) * DAY_MS) for d in (0, 5, 10))
    assert on < 0.5 * baseline and abs(off - baseline) < 1.0
    assert patient.relief(T0 + 15 * DAY_MS) < 0.01  # a tonic program's relief is gone within hours


def test_relief_needs_the_cathode_over_the_painful_area_and_working_contacts():
    profile = scs_patient(pain_position=3.0)
    over = scs_delivery(comfortable(profile, 3), True, profile, CONFIG)
    near = scs_delivery(comfortable(profile, 5), True, profile, CONFIG)
    far = scs_delivery(comfortable(profile, 6), True, profile, CONFIG)
    assert over.factor == pytest.approx(1.0) and 0.1 < near.factor < 0.5 and far.factor < near.factor
    migrated = scs_delivery(comfortable(profile, 3), True, profile, CONFIG, lead_offset=3.0)  # the lead moved
    assert migrated.factor == pytest.approx(far.factor)
    shorted = scs_delivery(comfortable(profile, 3), True, profile, CONFIG, disabled_contacts=1 << 3)
    assert shorted.factor == 0.0


def test_perception_follows_strength_duration_and_tonic_relief_the_therapeutic_window():
    profile = scs_patient(threshold_scale=1.0, discomfort_ratio=1.7)
    p300 = perception_ua(tonic(3, 1).areas[0], profile, CONFIG)
    assert p300 == pytest.approx(2_500 * (1 + 295 / 300))  # Hershey 2010: rheobase 2.5 mA, chronaxie 295 us
    assert perception_ua(tonic(3, 1, pw=100).areas[0], profile, CONFIG) > 2 * p300 * 0.9

    def delivered(amp: float):
        return scs_delivery(tonic(round(profile.pain_position), round(amp)), True, profile, CONFIG)

    below, at, mid, above = delivered(0.95 * p300), delivered(p300 + 1), delivered(1.4 * p300), delivered(1.8 * p300)
    assert below.factor == 0.0 and not below.paresthesia
    assert at.factor == pytest.approx(0.6, abs=0.01) and at.paresthesia
    assert mid.factor == 1.0 and not mid.discomfort
    assert above.discomfort


def test_paresthesia_free_waveforms_relieve_below_perception_and_build_slowly():
    profile = scs_patient(threshold_scale=1.0)
    cathode = round(profile.pain_position)
    hf = StimProgramSet(
        1,
        True,
        (Area(1 << (cathode + 1), 1 << cathode, 3_000, 30, 10_000, Waveform.HIGH_FREQUENCY, 0, 0, 0, 0),),
        3_000,
        2,
    )
    delivery = scs_delivery(hf, True, profile, CONFIG)
    assert not delivery.paresthesia and delivery.factor > 0.9 and delivery.tau_h == CONFIG.subperception_tau_h
    patient = VirtualPatient(profile, CONFIG, T0)
    patient.advance(T0 + 6 * HOUR_MS, scs=delivery)
    assert 0.1 < patient.state.relief_factor < 0.3  # 6 h into a 24 h build-up
    cycled = dataclasses.replace(hf, areas=(dataclasses.replace(hf.areas[0], cycle_on_s=30, cycle_off_s=270),))
    assert scs_delivery(cycled, True, profile, CONFIG).factor == pytest.approx(delivery.factor * 0.4)


def test_a_morphine_test_dose_acts_within_hours_holds_most_of_a_day_and_is_gone_in_two():
    levels = DrugLevels.empty()
    levels.bolus(Drug.MORPHINE, 0.2)
    trace = []
    for _ in range(48):
        levels.advance(1.0, {}, CONFIG)
        trace.append(levels.effect[Drug.MORPHINE] if Drug.MORPHINE in levels.effect else 0.0)
    peak_h = trace.index(max(trace)) + 1
    held = sum(1 for level in trace if level >= max(trace) / 2)
    assert 2 <= peak_h <= 6 and held >= 10 and trace[-1] < 0.05 * max(trace)
    once = DrugLevels.empty()
    once.bolus(Drug.MORPHINE, 0.2)
    once.advance(48.0, {}, CONFIG)
    assert once.effect.get(Drug.MORPHINE, 0.0) == pytest.approx(trace[-1], rel=1e-9, abs=1e-12)
    steady = DrugLevels.empty()
    steady.advance(24.0 * 30, {Drug.MORPHINE: 1.5}, CONFIG)
    assert steady.effect[Drug.MORPHINE] == pytest.approx(1.5, rel=1e-6)  # an infusion settles at its daily dose


def test_side_effects_grow_with_the_dose_and_opioids_lose_potency_over_years():
    profile = pump_patient()

    def at(mg_per_day: float, years: float = 0.0):
        levels = DrugLevels({Drug.MORPHINE: 0.0}, {Drug.MORPHINE: mg_per_day})
        return drug_effect(levels, profile, CONFIG, years)

    assert at(0.3).side_effects < 0.1 < at(1.0).side_effects < 0.5 < at(3.0).side_effects
    assert at(0.3).pain > at(0.1).pain > 0 and at(0.3, years=3).pain < at(0.3).pain


def test_baclofen_eases_spasticity_and_not_pain():
    profile = pump_patient(Indication.SPASTICITY, best_relief=0.8, placebo=0.0, baseline_mas_index=4)
    patient = VirtualPatient(profile, CONFIG, T0)
    patient.advance(T0 + 2 * DAY_MS)
    patient.observe(2.0)
    patient.bolus({Drug.BACLOFEN: 0.05})  # the 50 ug screening dose
    patient.advance(T0 + 3 * DAY_MS)
    grades = [v for t, v in diary_of(patient, DiaryKind.MAS) if t > T0 + 2 * DAY_MS]
    assert min(grades) <= 2 and grades[-1] >= 3 and not diary_of(patient, DiaryKind.NRS)
    effect = drug_effect(patient.state.levels, profile, CONFIG, 0)
    assert effect.pain == 0.0


def test_placebo_fades_and_an_implant_can_lose_its_effect():
    profile = scs_patient(best_relief=0.6, placebo=0.2, loss_after_days=200.0)
    patient = VirtualPatient(profile, CONFIG, T0)
    on = scs_delivery(comfortable(profile), True, profile, CONFIG)
    patient.advance(T0 + DAY_MS, scs=on)
    early = patient.relief(T0 + DAY_MS)
    patient.implant(T0 + DAY_MS)
    patient.advance(T0 + 150 * DAY_MS, scs=on)
    later = patient.relief(T0 + 150 * DAY_MS)
    patient.advance(T0 + 250 * DAY_MS, scs=on)
    lost = patient.relief(T0 + 250 * DAY_MS)
    fade = 0.5 ** (149 / CONFIG.placebo_half_life_days)
    assert early == pytest.approx(1 - 0.4 * (1 - 0.2 * 0.5 ** (1 / 45)), abs=1e-3)
    assert later == pytest.approx(1 - 0.4 * (1 - 0.2 * fade * 0.5 ** (1 / 45)), abs=1e-3)
    assert lost == pytest.approx(0.6 * CONFIG.loss_of_effect_keeps, abs=0.01)


def test_the_diary_is_written_at_the_patients_local_hours():
    config = PatientConfig(utc_offset_min=-300)  # UTC-5: 08:00 and 20:00 local are 13:00 and 01:00 UTC
    patient = VirtualPatient(scs_patient(baseline_mme=30.0), config, T0)
    patient.advance(T0 + 2 * DAY_MS)
    hours = sorted({(t % DAY_MS) // HOUR_MS for t, _ in diary_of(patient, DiaryKind.NRS)})
    assert hours == [1, 13]
    assert {(t % DAY_MS) // HOUR_MS for t, _ in diary_of(patient, DiaryKind.MEDICATION)} == {1}


def test_the_trial_call_needs_relief_stable_analgesics_and_bearable_side_effects():
    profile = scs_patient(best_relief=0.8, placebo=0.05, baseline_mme=40.0, reported_gap_points=30.0)
    patient = VirtualPatient(profile, CONFIG, T0)
    patient.advance(T0 + 7 * DAY_MS)
    patient.start_trial(T0 + 7 * DAY_MS)
    patient.advance(T0 + 14 * DAY_MS, scs=scs_delivery(comfortable(profile), True, profile, CONFIG))
    patient.end_trial(T0 + 14 * DAY_MS)
    call = call_trial(patient.state.diary, T0, T0 + 7 * DAY_MS, T0 + 14 * DAY_MS, CONFIG.trial_rule())
    assert call.responder and call.relief > 0.5 and call.medication_stable and call.flagged
    assert call.reported == pytest.approx(min(1.0, round(100 * call.relief + 30) / 100), abs=0.011)
    pgic = [v for _, v in diary_of(patient, DiaryKind.PGIC)]
    assert pgic == [7]
    more_pills = patient.add_entry(T0 + 13 * DAY_MS, DiaryKind.MEDICATION, 400, DiarySource.CLINICIAN)
    assert more_pills.source is DiarySource.CLINICIAN
    worse = call_trial(patient.state.diary, T0, T0 + 7 * DAY_MS, T0 + 14 * DAY_MS, CONFIG.trial_rule())
    assert not worse.responder and worse.reasons == ("analgesic use rose",)
    patient.add_entry(T0 + 13 * DAY_MS, DiaryKind.SIDE_EFFECTS, 8, DiarySource.CLINICIAN)
    assert (
        "side effects were intolerable"
        in call_trial(patient.state.diary, T0, T0 + 7 * DAY_MS, T0 + 14 * DAY_MS, CONFIG.trial_rule()).reasons
    )


def test_bad_settings_and_entries_are_refused_saying_what_is_allowed():
    with pytest.raises(ValueError, match=r"\[patient\] has no setting\(s\) responder; valid: "):
        patient_config({"responder": 0.5})
    with pytest.raises(ValueError, match=r"responder_rate = 1\.5 is a share and must be from 0 to 1"):
        patient_config({"responder_rate": 1.5})
    with pytest.raises(ValueError, match="diary_hours are local hours from 0 to 24"):
        patient_config({"diary_hours": [8, 25]})
    with pytest.raises(ValueError, match="neuropathic_fraction takes shares 0-1"):
        patient_config({"neuropathic_fraction": {"gout": 0.5}})
    assert patient_config({"neuropathic_fraction": {"axial_pain": 0.5}}).neuropathic_fraction["radiculopathy"] == 0.7
    patient = VirtualPatient(scs_patient(), CONFIG, T0)
    with pytest.raises(ValueError, match="a nrs diary value is a whole number from 0 to 10, not 11"):
        patient.add_entry(T0, DiaryKind.NRS, 11, DiarySource.CLINICIAN)
    with pytest.raises(ValueError, match="no virtual patient for device kind 'dbs'"):
        draw_profile(1, 0, "dbs")
    assert not math.isnan(patient.relief(T0))
