"""Dose safety: every bolus counts against each drug's 24-hour cap with the basal dose, every drug has
a cap, morphine above the advised strength only as the labelled product, ziconotide titration steps."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from device_mock.pump import Pump, PumpConfig
from device_mock.pump_config import DEFAULT_DRUG_LIMITS
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    Bolus,
    BolusKind,
    DosingMode,
    DosingSet,
    Drug,
    DrugConcentration,
    EventCode,
    PatientBolusSettings,
    Refill,
    TherapySet,
)

T0 = 1_767_225_600_000
HOUR, DAY = 3_600_000, 86_400_000
MORPHINE_10 = (DrugConcentration(Drug.MORPHINE, 10_000_000),)  # 10 mg/mL: 5 mg/day at 0.5 mL/day
ZICONOTIDE_25 = (DrugConcentration(Drug.ZICONOTIDE, 25_000),)  # 25 µg/mL
EXACT = PumpConfig(flow_error_mean=0.0, flow_error_sd=0.0, initial_drugs=MORPHINE_10)
NO_PTM = PatientBolusSettings(False, 0, 0, 0, 0)


def refused(pump: Pump, message) -> DeviceRejected:
    before = json.dumps(pump.to_state(), sort_keys=True)
    with pytest.raises(DeviceRejected) as caught:
        pump.apply(message)
    assert json.dumps(pump.to_state(), sort_keys=True) == before, "a refusal changed the pump"
    return caught.value


def clinician(volume_ul: int) -> Bolus:
    return Bolus(BolusKind.CLINICIAN, volume_ul, 120)


def refill(drugs, added=18_000, bridge=False) -> Refill:
    return Refill(0, added, drugs, True, True, bridge)


def test_every_drug_of_the_model_has_a_24_hour_cap():
    assert {limit.drug for limit in DEFAULT_DRUG_LIMITS} == set(Drug)
    assert all(limit.max_dose_ng_per_day > 0 for limit in DEFAULT_DRUG_LIMITS)


def test_boluses_count_with_the_basal_dose_against_the_cap_for_24_hours():
    pump = Pump(EXACT, T0, 1)
    pump.apply(clinician(600))  # 5 mg basal + 6 mg: 11 of 15 mg
    pump.advance_to(T0 + 2 * HOUR)
    error = refused(pump, clinician(500))  # 11 + 5 = 16 mg
    assert (error.code, error.field, error.value, error.limit) == (ErrorCode.OUT_OF_RANGE, "volume_ul", 500, 400)
    assert "morphine" in error.reason and "15.000 mg/day" in error.reason
    restored = Pump.from_state(json.loads(json.dumps(pump.to_state())))  # the record survives a restart
    assert refused(restored, clinician(500)).limit == 400
    pump.apply(clinician(400))
    pump.advance_to(T0 + DAY + 1)  # the first bolus has left the window, the second not yet
    assert refused(pump, clinician(700)).limit == 600
    pump.apply(clinician(600))


def test_a_stopped_pump_has_no_basal_dose_to_count():
    pump = Pump(EXACT, T0, 1)
    pump.apply(TherapySet(False))
    assert refused(pump, clinician(1_501)).limit == 1_500
    pump.apply(clinician(1_500))


@pytest.mark.parametrize("kind", [BolusKind.PRIMING, BolusKind.CLINICIAN])
def test_priming_and_clinician_boluses_use_up_the_same_allowance(kind):
    pump = Pump(EXACT, T0, 1)
    pump.apply(Bolus(kind, 900, 60))
    pump.advance_to(T0 + 2 * HOUR)
    assert refused(pump, Bolus(BolusKind.PRIMING, 200, 60)).limit == 100


def test_a_bridge_bolus_counts_at_the_old_concentration_and_is_refused_whole():
    pump = Pump(EXACT, T0, 1)
    pump.apply(clinician(900))  # 14 mg of 15
    pump.advance_to(T0 + 2 * HOUR)
    error = refused(pump, refill(MORPHINE_10, bridge=True))  # 250 µL bridge = 2.5 mg more
    assert (error.field, error.limit) == ("volume_ul", 100)
    pump.apply(refill(MORPHINE_10))  # without the bridge the refill goes through


def test_a_patient_bolus_past_the_cap_is_denied_logged_and_changes_nothing_else():
    pump = Pump(EXACT, T0, 1)
    pump.apply(DosingSet(DosingMode.CONTINUOUS, 500, (), PatientBolusSettings(True, 50, 10, 60, 3), 2_000))
    pump.apply(clinician(960))  # 5 + 9.6 = 14.6 mg; a 0.5 mg patient bolus would make 15.1
    pump.advance_to(T0 + 2 * HOUR)
    with pytest.raises(DeviceRejected) as denied:
        pump.apply(Bolus(BolusKind.PATIENT, 0, 0))
    assert denied.value.code is ErrorCode.STATE_CONFLICT and "morphine" in denied.value.reason
    entry = pump.events.read(pump.events.last_seq, 1)[0]
    assert (entry.code, entry.arg0) == (EventCode.PATIENT_BOLUS_DENIED, 3)
    assert pump.status().patient_boluses_today == 0


@pytest.mark.parametrize(("conc_mg_per_ml", "accepted"), [(20, True), (21, False), (24, False), (25, True), (10, True)])
def test_morphine_above_20_mg_per_ml_only_as_the_labelled_25_mg_per_ml_product(conc_mg_per_ml, accepted):
    pump = Pump(replace(EXACT, initial_rate_ul_per_day=200), T0, 1)  # 5 mg/day even at 25 mg/mL
    contents = (DrugConcentration(Drug.MORPHINE, conc_mg_per_ml * 1_000_000),)
    if accepted:
        pump.apply(refill(contents))
        assert pump.program.drugs == contents
        return
    error = refused(pump, refill(contents))
    assert (error.code, error.field, error.limit) == (ErrorCode.OUT_OF_RANGE, "drugs[0].conc_ng_per_ml", 20_000_000)
    assert "labelled product" in error.reason and "25 mg/mL" in error.reason


def zic_pump() -> Pump:
    config = replace(EXACT, initial_drugs=ZICONOTIDE_25, initial_rate_ul_per_day=96)  # 2.4 µg/day
    return Pump(config, T0, 1)


def rate(ul_per_day: int) -> DosingSet:
    return DosingSet(DosingMode.CONTINUOUS, ul_per_day, (), NO_PTM, 2_000)


def test_ziconotide_rises_by_at_most_2_4_ug_per_day_and_not_again_within_48_hours():
    pump = zic_pump()
    error = refused(pump, rate(200))  # 2.4 -> 5.0 µg/day
    assert (error.code, error.field, error.value, error.limit) == (ErrorCode.OUT_OF_RANGE, "rate_ul_per_day", 200, 192)
    pump.apply(rate(192))  # 4.8 µg/day: one step
    pump.advance_to(T0 + 47 * HOUR)
    too_soon = refused(pump, rate(288))
    assert too_soon.code is ErrorCode.STATE_CONFLICT and too_soon.retry_after_ms == HOUR
    pump.apply(rate(150))  # a fall is allowed at any time, and does not restart the interval
    pump.advance_to(T0 + 48 * HOUR)
    pump.apply(rate(246))  # 3.75 -> 6.15 µg/day: within one step of the current dose
    restored = Pump.from_state(json.loads(json.dumps(pump.to_state())))
    assert refused(restored, rate(250)).code is ErrorCode.STATE_CONFLICT


def test_a_stronger_ziconotide_refill_is_a_rise_and_is_held_to_the_step():
    pump = zic_pump()
    error = refused(pump, refill((DrugConcentration(Drug.ZICONOTIDE, 100_000),)))  # 9.6 µg/day at 96 µL/day
    assert (error.field, error.value, error.limit) == ("drugs[0].conc_ng_per_ml", 100_000, 50_000)
    pump.apply(refill((DrugConcentration(Drug.ZICONOTIDE, 50_000),)))  # 4.8 µg/day
    assert pump.totals.ziconotide_raised_ms == T0


def test_reduced_battery_performance_drops_the_rate_to_the_minimum_with_a_latching_high_alarm():
    pump = Pump(EXACT, T0, 1)
    pump.apply(clinician(100))
    pump.advance_to(T0 + HOUR)
    pump.inject_fault("reduced_battery_performance", {})
    status = pump.status()
    assert (status.mode, status.rate_ul_per_day, status.bolus_active) == (DosingMode.CONTINUOUS, 48, False)
    alarm = next(a for a in status.alarms if a.code is EventCode.BATTERY_REDUCED_PERFORMANCE)
    assert alarm.priority.name == "HIGH"
    changed = [e for e in pump.events.read(1, 100) if e.code is EventCode.DOSING_CHANGED]
    assert changed[-1].arg0 == 48
    before = pump.reservoir_ul
    pump.advance_to(T0 + HOUR + 10 * DAY)
    assert before - pump.reservoir_ul == 480  # 48 µL/day for 10 days
    restored = Pump.from_state(json.loads(json.dumps(pump.to_state())))
    assert restored.alarms.is_active(EventCode.BATTERY_REDUCED_PERFORMANCE)
    with pytest.raises(ValueError, match="takes no parameters"):
        pump.inject_fault("reduced_battery_performance", {"rate": 10})
