"""A device's virtual patient feels what the device really delivers, and survives a restart."""

from __future__ import annotations

import json

from device_mock.patients.diary import DiaryKind, entry_to_json
from device_mock.patients.patient import DAY_MS, HOUR_MS
from device_mock.patients.response import perception_ua
from device_mock.pump import Pump, PumpConfig
from device_mock.stimulator import ScsConfig, Stimulator
from device_mock.treatment import BASELINE_DAYS, Treatment
from protocols.messages import Area, StimProgramSet, TherapySet, Waveform

T0 = 1_767_225_600_000


def treated_stimulator(seed: int = 4) -> Stimulator:
    stim = Stimulator(ScsConfig(impedance_ohm=(600, 600), impedance_noise=0.0, impedance_drift=0.0), T0, seed)
    stim.treatment = Treatment.new("scs", seed, 0, T0, {"placebo_mean": 0.0, "placebo_sd": 0.0}, trial=True)
    return stim


def program_over_the_pain(stim: Stimulator) -> StimProgramSet:
    profile = stim.treatment.patient.profile
    cathode = round(profile.pain_position)
    probe = Area(1 << (cathode + 1), 1 << cathode, 1_000, 300, 50, Waveform.TONIC, 0, 0, 0, 0)
    amp = perception_ua(probe, profile, stim.treatment.config) * (1 + (profile.discomfort_ratio - 1) / 2)
    area = Area(probe.anode_mask, probe.cathode_mask, round(amp / 50) * 50, 300, 50, Waveform.TONIC, 0, 0, 0, 0)
    return StimProgramSet(1, True, (area,), area.amplitude_ua, 2)


def nrs_mean(stim: Stimulator, start: int, end: int) -> float:
    values = [
        e.value for e in stim.treatment.patient.state.diary if e.kind is DiaryKind.NRS and start <= e.time_ms < end
    ]
    return sum(values) / len(values)


def test_a_trial_patient_brings_a_baseline_week_and_feels_the_program_only_while_it_stimulates():
    stim = treated_stimulator()
    diary = stim.treatment.patient.state.diary
    assert diary[0].time_ms == T0 - BASELINE_DAYS * DAY_MS and len([e for e in diary if e.kind is DiaryKind.NRS]) == 14
    stim.apply(program_over_the_pain(stim))
    stim.apply(TherapySet(True))
    stim.advance_to(T0 + 5 * DAY_MS)
    cathode = round(stim.treatment.patient.profile.pain_position)
    stim.inject_fault("lead_open", {"contact": cathode})  # the area loses its stimulation
    stim.advance_to(T0 + 10 * DAY_MS)
    baseline = nrs_mean(stim, T0 - 7 * DAY_MS, T0)
    on, lost = nrs_mean(stim, T0 + DAY_MS, T0 + 5 * DAY_MS), nrs_mean(stim, T0 + 6 * DAY_MS, T0 + 10 * DAY_MS)
    best = stim.treatment.patient.profile.best_relief
    assert on < baseline * (1 - 0.6 * best) and abs(lost - baseline) < 1.2, (baseline, on, lost, best)


def test_a_lead_migration_moves_the_coverage_away_from_the_pain():
    stim = treated_stimulator()
    stim.apply(program_over_the_pain(stim))
    stim.apply(TherapySet(True))
    stim.advance_to(T0 + 2 * DAY_MS)
    covered = stim.treatment.patient.state.relief_factor
    stim.inject_fault("lead_migration", {"contacts": 3.0})
    stim.advance_to(T0 + 3 * DAY_MS)
    assert covered > 0.95 and stim.treatment.patient.state.relief_factor < 0.2


def test_the_patient_is_saved_with_the_device_and_the_diary_continues_without_a_gap():
    straight, saved = treated_stimulator(), treated_stimulator()
    for stim in (straight, saved):
        stim.apply(program_over_the_pain(stim))
        stim.apply(TherapySet(True))
    straight.advance_to(T0 + 4 * DAY_MS)
    saved.advance_to(T0 + 2 * DAY_MS + 7 * HOUR_MS)
    revived = Stimulator.from_state(json.loads(json.dumps(saved.to_state())))
    revived.advance_to(T0 + 4 * DAY_MS)
    rows = [entry_to_json(e) for e in revived.treatment.patient.state.diary]
    assert rows == [entry_to_json(e) for e in straight.treatment.patient.state.diary]
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))


def test_a_pump_patient_feels_the_infusion_and_nothing_through_an_occluded_catheter():
    pump = Pump(PumpConfig(), T0, 3)
    pump.treatment = Treatment.new("pump", 3, 0, T0, {}, trial=False)
    pump.advance_to(T0 + 10 * DAY_MS)
    infused = dict(pump.treatment.patient.state.levels.effect)
    assert len(infused) == len(pump.program.drugs) and all(level > 0 for level in infused.values())
    pump.inject_fault("occlusion", {})
    pump.advance_to(T0 + 14 * DAY_MS)
    after = pump.treatment.patient.state.levels.effect
    assert all(after.get(drug, 0.0) < 0.01 * level for drug, level in infused.items()), (infused, after)


def test_a_lead_migration_changes_the_power_the_program_draws_at_once():
    stim = treated_stimulator()
    stim.apply(program_over_the_pain(stim))
    stim.apply(TherapySet(True))
    before = stim.status().tissue_power_uw
    stim.inject_fault("lead_migration", {"contacts": 2.0})  # the contacts sit in other tissue: +20 %
    assert abs(stim.status().tissue_power_uw - before * 1.2) <= 1  # µW, rounded
    stim.place_leads_afresh()
    assert stim.status().tissue_power_uw == before
