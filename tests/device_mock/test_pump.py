"""The intrathecal pump model: drain arithmetic, alarms at exact times, limits, refills, battery, faults, state."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_mock.battery import YEAR_S
from device_mock.pump import Pump, PumpConfig
from device_mock.pump_dosing import DAY_MS, MINUTE_MS, UNITS_PER_UL, Schedule
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    AlarmState,
    BatteryState,
    Bolus,
    BolusKind,
    ClockSet,
    DosingMode,
    DosingSet,
    Drug,
    DrugConcentration,
    EventCode,
    FlexStep,
    MotorState,
    PatientBolusSettings,
    Priority,
    Refill,
    TherapySet,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z: a UTC midnight, so flex minutes line up with days
HOUR_MS = 3_600_000
EXACT = PumpConfig(flow_error_mean=0.0, flow_error_sd=0.0)  # true flow = programmed flow
MIX = (DrugConcentration(Drug.MORPHINE, 10_000_000), DrugConcentration(Drug.BUPIVACAINE, 20_000_000))
# 50 µg/mL (the screening strength): its 2 mg/day cap allows 40 mL/day, so the flow range alone limits.
BACLOFEN = (DrugConcentration(Drug.BACLOFEN, 50_000),)
NO_PTM = PatientBolusSettings(False, 0, 0, 0, 0)
PTM = PatientBolusSettings(True, 50, 10, 60, 3)


def dosing(
    mode: DosingMode = DosingMode.CONTINUOUS,
    rate: int = 500,
    steps: tuple[FlexStep, ...] = (),
    ptm: PatientBolusSettings = NO_PTM,
    alarm: int = 2_000,
) -> DosingSet:
    return DosingSet(mode, rate, steps, ptm, alarm)


def refill(withdrawn: int, added: int = 20_000, drugs=MIX, confirmed=True, accepted=False, bridge=False) -> Refill:
    return Refill(withdrawn, added, drugs, confirmed, accepted, bridge)


def new_pump(config: PumpConfig = EXACT, seed: int = 1) -> Pump:
    return Pump(config, T0, seed)


def events(pump: Pump, code: EventCode | None = None) -> list:
    entries = pump.events.read(1, 1_000_000)
    return [e for e in entries if code is None or e.code == code]


def rejected(pump: Pump, message) -> DeviceRejected:
    """Apply a message that must be refused; check the refusal changed nothing and return it."""
    before_status, before_state = pump.status(), pump.to_state()
    with pytest.raises(DeviceRejected) as info:
        pump.apply(message)
    assert pump.status() == before_status
    assert pump.to_state() == before_state
    return info.value


# --- drain arithmetic and the docs/devices.md 2.6 example ---------------------------------------------
@pytest.mark.parametrize("rate", [48, 500, 1_234])
def test_reservoir_drains_rate_times_time(rate):
    pump = new_pump(replace(EXACT, capacity_ul=40_000, initial_fill_ul=40_000, initial_rate_ul_per_day=rate))
    elapsed = 10 * DAY_MS + 7 * HOUR_MS + 123
    pump.advance_to(T0 + elapsed)
    assert pump.reservoir_units == 40_000 * UNITS_PER_UL - rate * elapsed
    assert pump.status().reservoir_ul == (40_000 * UNITS_PER_UL - rate * elapsed) // UNITS_PER_UL
    assert pump.true_reservoir_ul == pytest.approx(40_000 - rate * elapsed / DAY_MS, abs=1e-6)
    assert pump.totals.delivered_ul == pytest.approx(rate * elapsed / DAY_MS, abs=1e-6)


def test_domain_example_low_alarm_day_36_empty_day_40():
    pump = new_pump()
    projected = pump.status()
    assert (projected.low_alarm_ms, projected.empty_ms) == (T0 + 36 * DAY_MS, T0 + 40 * DAY_MS)
    assert projected.next_refill_ms == T0 + 29 * DAY_MS  # 7-day margin before the low alarm
    # ±14.5 % accuracy band around the 40 days to empty
    assert projected.empty_earliest_ms == pytest.approx(T0 + 40 * DAY_MS / 1.145, abs=1)
    assert projected.empty_latest_ms == pytest.approx(T0 + 40 * DAY_MS / 0.855, abs=1)
    pump.advance_to(T0 + 41 * DAY_MS)
    (low,) = events(pump, EventCode.LOW_RESERVOIR)
    (empty,) = events(pump, EventCode.EMPTY_RESERVOIR)
    assert (low.time_ms, low.arg0, low.arg1, low.priority) == (T0 + 36 * DAY_MS, 2_000, 2_000, Priority.MEDIUM)
    assert (empty.time_ms, empty.arg0, empty.priority) == (T0 + 40 * DAY_MS, 0, Priority.HIGH)
    status = pump.status()
    assert not status.infusing and status.reservoir_ul == 0
    assert (status.low_alarm_ms, status.empty_ms, status.next_refill_ms) == (low.time_ms, empty.time_ms, status.time_ms)
    assert {a.code for a in status.alarms} == {EventCode.LOW_RESERVOIR, EventCode.EMPTY_RESERVOIR}


# --- closed form against fine stepping -----------------------------------------------------------
FLEX = (FlexStep(0, 400), FlexStep(7 * 60 + 30, 800), FlexStep(22 * 60 + 15, 500))
REFILL_EVERY_DAYS = 35


def _snapshot(pump: Pump) -> tuple[int, int, float, float, float]:
    return pump.now_ms, pump.reservoir_units, pump.true_reservoir_ul, pump.battery.remaining_j, pump.totals.delivered_ul


def _twenty_years(hourly: bool) -> tuple[Pump, list[tuple[int, int, float, float, float]]]:
    """A flex program, a 90-minute bolus and a refill in every 35-day interval, for 20 years.

    Returns the pump and, before each refill, (time, estimate, true volume, battery J, delivered µL).
    """
    pump, trail = new_pump(PumpConfig(), seed=7), []
    pump.apply(dosing(DosingMode.FLEX, steps=FLEX))
    start = T0
    while start < T0 + int(20 * YEAR_S * 1000):
        for offset_h, act in ((10 * 24 + 5, "bolus"), (REFILL_EVERY_DAYS * 24, "refill")):
            target = start + offset_h * HOUR_MS
            hour = pump.now_ms + HOUR_MS
            while hourly and hour < target:
                pump.advance_to(hour)
                hour += HOUR_MS
            pump.advance_to(target)
            if act == "bolus" and pump.pumping:
                pump.apply(Bolus(BolusKind.CLINICIAN, 100, 90))
            if act == "refill":
                trail.append(_snapshot(pump))
                pump.apply(refill(round(pump.true_reservoir_ul), accepted=True))
        start += REFILL_EVERY_DAYS * DAY_MS
    return pump, trail


def test_closed_form_matches_hourly_stepping_over_20_years():
    (closed, closed_trail), (stepped, stepped_trail) = _twenty_years(hourly=False), _twenty_years(hourly=True)
    assert events(closed) == events(stepped)  # same codes, times, states and arguments
    assert len(closed_trail) == len(stepped_trail) > 200
    for a, b in zip(closed_trail, stepped_trail, strict=True):
        assert a[:2] == b[:2]  # the device's estimate is an integer: exactly equal
        assert a[2:] == pytest.approx(b[2:], rel=1e-3, abs=1e-9)  # true volume, battery, delivered: within 0.1 %
    codes = {e.code for e in events(closed)}
    assert {EventCode.LOW_RESERVOIR, EventCode.EMPTY_RESERVOIR, EventCode.BOLUS_COMPLETE} <= codes
    assert {EventCode.BATTERY_ERI, EventCode.BATTERY_EOS} <= codes


# --- seeds ---------------------------------------------------------------------------------------
def _refilled_log(seed: int) -> tuple[list, list[float]]:
    pump, errors = new_pump(PumpConfig(), seed), []
    for month in range(1, 7):
        errors.append(pump.flow_error)
        pump.advance_to(T0 + month * 30 * DAY_MS)
        pump.apply(refill(round(pump.true_reservoir_ul), accepted=True))
    return events(pump), errors


def test_same_seed_same_log_and_flow_error_other_seed_differs():
    log_a, errors_a = _refilled_log(3)
    log_b, errors_b = _refilled_log(3)
    log_c, errors_c = _refilled_log(4)
    assert (log_a, errors_a) == (log_b, errors_b)
    assert errors_a != errors_c and log_a != log_c
    assert len(set(errors_a)) == len(errors_a)  # a new error is drawn at each refill


def test_flow_error_is_clipped_to_the_accuracy_band():
    wide = PumpConfig(flow_error_sd=0.5)
    errors = [new_pump(wide, seed).flow_error for seed in range(200)]
    assert all(abs(e) <= 0.145 for e in errors)
    assert 0.145 in errors and -0.145 in errors


# --- limits --------------------------------------------------------------------------------------
STEPS_UNSORTED = (FlexStep(0, 500), FlexStep(600, 500), FlexStep(600, 500))
LIMIT_CASES = [
    (dosing(rate=47), "rate_ul_per_day", 47, 48),
    (dosing(rate=24_001), "rate_ul_per_day", 24_001, 24_000),
    (dosing(rate=-5), "rate_ul_per_day", -5, 48),
    (dosing(rate=1_600), "rate_ul_per_day", 1_600, 1_000),  # bupivacaine 20 mg/mL, 20 mg/day cap (morphine's: 1.5 mL)
    (dosing(DosingMode.FLEX, steps=()), "steps", 0, 1),
    (dosing(DosingMode.FLEX, steps=STEPS_UNSORTED), "steps[2].start_min", 600, 601),
    (dosing(DosingMode.FLEX, steps=(FlexStep(1440, 500),)), "steps[0].start_min", 1440, 1439),
    (dosing(DosingMode.FLEX, steps=(FlexStep(0, 500), FlexStep(60, 10))), "steps[1].rate_ul_per_day", 10, 48),
    (dosing(DosingMode.FLEX, steps=(FlexStep(0, 1000), FlexStep(720, 2100))), "steps", 1550, 1000),
    (dosing(alarm=999), "alarm_volume_ul", 999, 1_000),
    (dosing(alarm=10_001), "alarm_volume_ul", 10_001, 10_000),
    (dosing(ptm=replace(PTM, dose_ul=0)), "patient_bolus.dose_ul", 0, 1),
    (dosing(ptm=replace(PTM, dose_ul=1_000, duration_min=59)), "patient_bolus.duration_min", 59, 60),
    (dosing(ptm=replace(PTM, lockout_min=5)), "patient_bolus.lockout_min", 5, 10),
    (dosing(ptm=replace(PTM, max_per_day=0)), "patient_bolus.max_per_day", 0, 1),
    (dosing(rate=500, ptm=replace(PTM, dose_ul=100, max_per_day=6)), "patient_bolus.max_per_day", 6, 5),
    (Bolus(BolusKind.CLINICIAN, 0, 10), "volume_ul", 0, 1),
    (Bolus(BolusKind.CLINICIAN, 5_001, 600), "volume_ul", 5_001, 5_000),
    (Bolus(BolusKind.CLINICIAN, 100, 5), "duration_min", 5, 6),  # 24 mL/day top bolus rate
    (Bolus(BolusKind.PRIMING, 5_000, 29), "duration_min", 29, 30),  # priming: the 240 mL/day high flow
    (Bolus(BolusKind.CLINICIAN, 100, 1_441), "duration_min", 1_441, 1_440),
    (refill(-1), "withdrawn_ul", -1, 0),
    (refill(20_000, added=-1), "added_ul", -1, 0),
    (refill(20_000, drugs=()), "drugs", 0, 1),
    (refill(20_000, drugs=MIX * 3), "drugs", 6, 4),
    (
        refill(20_000, drugs=(DrugConcentration(Drug.MORPHINE, 25_000_001),)),
        "drugs[0].conc_ng_per_ml",
        25_000_001,
        25_000_000,
    ),
    (refill(20_000, drugs=(DrugConcentration(Drug.ZICONOTIDE, 100_000),)), "drugs[0].conc_ng_per_ml", 100_000, 38_400),
    (refill(20_000, drugs=(DrugConcentration(Drug.BACLOFEN, 0),)), "drugs[0].conc_ng_per_ml", 0, 1),
    (refill(20_000, drugs=(MIX[0], MIX[0])), "drugs[1].drug", Drug.MORPHINE, 0),
]


@pytest.mark.parametrize(("message", "field", "value", "limit"), LIMIT_CASES, ids=[c[1] for c in LIMIT_CASES])
def test_every_limit_refuses_out_of_range_and_changes_nothing(message, field, value, limit):
    pump = new_pump()
    pump.advance_to(T0 + HOUR_MS)  # mid-dose state, nothing pending
    error = rejected(pump, message)
    assert (error.code, error.field, error.value, error.limit) == (ErrorCode.OUT_OF_RANGE, field, value, limit)
    assert field in error.reason or str(value) in error.reason


int_any = st.integers(min_value=-(10**10), max_value=10**10)
int_near = st.one_of(int_any, st.integers(min_value=-5, max_value=50_000))
steps_st = st.lists(st.builds(FlexStep, st.integers(-5, 1_500), int_near), max_size=14).map(tuple)
ptm_st = st.builds(PatientBolusSettings, st.booleans(), int_near, int_near, int_near, int_near)
dosing_st = st.builds(DosingSet, st.sampled_from(DosingMode), int_near, steps_st, ptm_st, int_near)
bolus_st = st.builds(Bolus, st.sampled_from([BolusKind.CLINICIAN, BolusKind.PRIMING]), int_near, int_near)
drug_st = st.builds(DrugConcentration, st.sampled_from(Drug), int_near)
refill_st = st.builds(
    Refill, int_near, int_near, st.lists(drug_st, max_size=5).map(tuple), st.just(True), st.booleans(), st.booleans()
)


def _assert_settings_in_range(pump: Pump) -> None:
    cfg, program = pump.config, pump.program
    schedule = program.schedule
    rates = [schedule.rate_ul_per_day] if schedule.mode is DosingMode.CONTINUOUS else []
    rates += [s.rate_ul_per_day for s in schedule.steps]
    assert all(cfg.min_rate_ul_per_day <= r <= cfg.max_rate_ul_per_day for r in rates)
    starts = [s.start_min for s in schedule.steps]
    assert starts == sorted(set(starts)) and all(0 <= s < 1440 for s in starts)
    assert (schedule.mode is DosingMode.FLEX) == bool(schedule.steps)
    assert cfg.min_alarm_ul <= program.alarm_volume_ul <= cfg.max_alarm_ul
    ptm = program.patient_bolus
    assert ptm == NO_PTM or (cfg.min_ptm_dose_ul <= ptm.dose_ul <= cfg.max_ptm_dose_ul and 1 <= ptm.max_per_day)
    assert 0 <= pump.reservoir_ul <= cfg.capacity_ul
    for drug in program.drugs:
        limit = next(x for x in cfg.drug_limits if x.drug == drug.drug)
        assert 1 <= drug.conc_ng_per_ml <= limit.max_conc_ng_per_ml
        daily_ul = schedule.daily_units() / UNITS_PER_UL + ptm.dose_ul * ptm.max_per_day
        assert not limit.max_dose_ng_per_day or drug.conc_ng_per_ml * daily_ul / 1000 <= limit.max_dose_ng_per_day
    if pump.bolus is not None:
        assert 1 <= pump.bolus.volume_ul <= cfg.max_bolus_ul


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(dosing_st, bolus_st, refill_st), st.integers(0, 3 * DAY_MS)), max_size=8))
def test_model_never_holds_an_out_of_range_setting(commands):
    pump = new_pump(replace(EXACT, initial_drugs=BACLOFEN))
    for message, wait_ms in commands:
        before = pump.to_state()
        try:
            pump.apply(message)
        except DeviceRejected as error:
            assert error.code in (ErrorCode.OUT_OF_RANGE, ErrorCode.STATE_CONFLICT)
            assert pump.to_state() == before
        _assert_settings_in_range(pump)
        pump.advance_to(pump.now_ms + wait_ms)
        _assert_settings_in_range(pump)


# --- dosing --------------------------------------------------------------------------------------
def test_dosing_set_logs_rate_and_mode_and_alarm_volume_moves_the_low_alarm():
    pump = new_pump()
    ack = pump.apply(dosing(rate=750, alarm=4_000))
    (changed,) = events(pump, EventCode.DOSING_CHANGED)
    assert (ack.event_seq, changed.arg0, changed.arg1) == (changed.seq, 750, DosingMode.CONTINUOUS)
    pump.advance_to(T0 + 20 * DAY_MS)  # 20000 - 20 * 750 = 5000 µL, above 4 mL
    assert not events(pump, EventCode.LOW_RESERVOIR)
    pump.apply(dosing(rate=750, alarm=6_000))  # the new alarm volume is above the reservoir: alarm at once
    (low,) = events(pump, EventCode.LOW_RESERVOIR)
    assert (low.time_ms, low.arg0, low.arg1) == (T0 + 20 * DAY_MS, 5_000, 6_000)
    pump.apply(dosing(rate=750, alarm=2_000))
    assert [e.state for e in events(pump, EventCode.LOW_RESERVOIR)] == [AlarmState.ACTIVE, AlarmState.CLEARED]


def test_bolus_delivers_exactly_its_volume_on_top_of_basal():
    pump = new_pump()
    pump.advance_to(T0 + 3 * HOUR_MS)
    reply = pump.apply(Bolus(BolusKind.CLINICIAN, 250, 90))
    assert reply.ends_ms == T0 + 3 * HOUR_MS + 90 * MINUTE_MS and pump.status().bolus_active
    pump.advance_to(T0 + 3 * HOUR_MS + 45 * MINUTE_MS)  # half way
    assert pump.reservoir_units == 20_000 * UNITS_PER_UL - 500 * (3 * HOUR_MS + 45 * MINUTE_MS) - 125 * UNITS_PER_UL
    pump.advance_to(T0 + DAY_MS)
    assert pump.reservoir_units == (20_000 - 500 - 250) * UNITS_PER_UL
    started, complete = events(pump, EventCode.BOLUS_STARTED)[0], events(pump, EventCode.BOLUS_COMPLETE)[0]
    assert (started.time_ms, started.arg0, started.arg1) == (T0 + 3 * HOUR_MS, 250, BolusKind.CLINICIAN)
    assert (complete.time_ms, complete.arg0, complete.arg1) == (reply.ends_ms, 250, BolusKind.CLINICIAN)
    assert started.seq == reply.event_seq and not pump.status().bolus_active


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda p: p.inject_fault("motor_stall", {}), "stalled"),
        (lambda p: (p.apply(TherapySet(False)), p.inject_fault("motor_stall", {})), "stalled"),
        (lambda p: p.advance_to(T0 + 41 * DAY_MS), "empty"),
        (lambda p: p.apply(Bolus(BolusKind.CLINICIAN, 10, 60)), "already running"),
    ],
)
def test_bolus_refused_when_the_pump_cannot_deliver(setup, reason):
    pump = new_pump()
    setup(pump)
    error = rejected(pump, Bolus(BolusKind.CLINICIAN, 100, 60))
    assert error.code is ErrorCode.STATE_CONFLICT and reason in error.reason


@pytest.mark.parametrize("stop", [TherapySet(False), dosing(DosingMode.STOPPED)], ids=["therapy-off", "mode-stopped"])
def test_single_bolus_from_a_stopped_pump_delivers_its_dose_then_the_pump_stays_stopped(stop):
    """docs/devices.md 2.4 "single bolus": a fixed dose over a set time, then back to a stopped pump."""
    pump = new_pump()
    pump.apply(stop)
    pump.advance_to(T0 + HOUR_MS)
    before = pump.reservoir_units
    reply = pump.apply(Bolus(BolusKind.CLINICIAN, 120, 60))
    status = pump.status()
    assert status.bolus_active and status.infusing and status.mode is DosingMode.STOPPED and status.rate_ul_per_day == 0
    assert (status.empty_ms, status.next_refill_ms) == (0, 0)  # nothing to project: the pump stays stopped
    pump.advance_to(T0 + HOUR_MS + 30 * MINUTE_MS)
    assert pump.reservoir_units == before - 60 * UNITS_PER_UL  # the bolus alone, no basal rate
    pump.advance_to(T0 + 5 * DAY_MS)
    assert pump.reservoir_units == before - 120 * UNITS_PER_UL
    complete = events(pump, EventCode.BOLUS_COMPLETE)[0]
    assert (complete.time_ms, complete.arg0) == (reply.ends_ms, 120)
    after = pump.status()
    assert not (after.bolus_active or after.infusing) and after.mode is DosingMode.STOPPED


def test_stop_sent_to_a_stopped_pump_cuts_its_single_bolus_short():
    pump = new_pump()
    pump.apply(TherapySet(False))
    before = pump.reservoir_units
    pump.apply(Bolus(BolusKind.CLINICIAN, 120, 60))
    pump.advance_to(T0 + 15 * MINUTE_MS)
    ack = pump.apply(TherapySet(False))
    complete = events(pump, EventCode.BOLUS_COMPLETE)[0]
    assert ack.event_seq == complete.seq and complete.arg0 == 30
    pump.advance_to(T0 + DAY_MS)
    assert pump.reservoir_units == before - 30 * UNITS_PER_UL and not pump.status().infusing


def test_patient_bolus_on_a_stopped_pump_is_refused():
    pump = new_pump()
    pump.apply(dosing(ptm=PTM))
    pump.apply(TherapySet(False))
    error = rejected(pump, Bolus(BolusKind.PATIENT, 0, 0))
    assert error.code is ErrorCode.STATE_CONFLICT and "stopped" in error.reason
    assert not events(pump, EventCode.BOLUS_STARTED)


def test_bolus_larger_than_the_reservoir_is_refused():
    pump = new_pump()
    pump.advance_to(T0 + 38 * DAY_MS)  # 1000 µL left
    error = rejected(pump, Bolus(BolusKind.CLINICIAN, 1_001, 120))
    assert (error.code, error.field, error.value, error.limit) == (ErrorCode.STATE_CONFLICT, "volume_ul", 1_001, 1_000)


def test_patient_bolus_lockout_and_daily_maximum():
    pump = new_pump()
    pump.apply(dosing(ptm=PTM))  # 50 µL over 10 min, lockout 60 min, 3 per day
    ask = Bolus(BolusKind.PATIENT, 0, 0)
    denials = []
    for minute, allowed in ((0, True), (30, False), (60, True), (120, True), (180, False), (1440, True)):
        pump.advance_to(T0 + minute * MINUTE_MS)
        if allowed:
            assert pump.apply(ask).volume_ul == 50
            continue
        with pytest.raises(DeviceRejected) as info:
            pump.apply(ask)
        assert info.value.code is ErrorCode.STATE_CONFLICT
        denials.append((info.value.retry_after_ms, pump.status().patient_boluses_today))
    logged = [(e.time_ms - T0, e.arg0, e.arg1) for e in events(pump, EventCode.PATIENT_BOLUS_DENIED)]
    assert logged == [(30 * MINUTE_MS, 1, 30), (180 * MINUTE_MS, 2, 1440 - 180)]
    assert denials == [(30 * MINUTE_MS, 1), ((1440 - 180) * MINUTE_MS, 3)]
    assert pump.status().patient_boluses_today == 3  # 60, 120 and 1440 min are within the last 24 h
    assert [e.arg1 for e in events(pump, EventCode.BOLUS_STARTED)] == [BolusKind.PATIENT] * 4


def test_patient_bolus_needs_enabling_and_is_the_programmed_one():
    pump = new_pump()
    assert rejected(pump, Bolus(BolusKind.PATIENT, 0, 0)).code is ErrorCode.STATE_CONFLICT
    pump.apply(dosing(ptm=PTM))
    error = rejected(pump, Bolus(BolusKind.PATIENT, 60, 0))
    assert (error.code, error.field, error.value, error.limit) == (ErrorCode.OUT_OF_RANGE, "volume_ul", 60, 50)
    assert pump.apply(Bolus(BolusKind.PATIENT, 50, 10)).ends_ms == T0 + 10 * MINUTE_MS


def test_flex_schedule_wraps_and_delivers_its_daily_volume():
    steps = (FlexStep(360, 200), FlexStep(1080, 1_000))  # 00-06 h still the 18 h step: 1000 µL/day
    pump = new_pump()
    pump.apply(dosing(DosingMode.FLEX, steps=steps))
    assert Schedule(DosingMode.FLEX, 0, steps).daily_units() == 600 * UNITS_PER_UL
    pump.advance_to(T0 + 3 * HOUR_MS)
    assert pump.status().rate_ul_per_day == 1_000
    pump.advance_to(T0 + 12 * HOUR_MS)
    assert pump.status().rate_ul_per_day == 200
    pump.advance_to(T0 + 3 * DAY_MS)
    assert pump.reservoir_units == (20_000 - 3 * 600) * UNITS_PER_UL
    pump.advance_to(T0 + 3 * DAY_MS + 13 * HOUR_MS)
    before = pump.reservoir_units
    projected = pump.status()
    pump.advance_to(T0 + 4 * DAY_MS + 13 * HOUR_MS)  # any 24 h, not only midnight to midnight
    assert before - pump.reservoir_units == 600 * UNITS_PER_UL
    pump.advance_to(T0 + 60 * DAY_MS)
    assert events(pump, EventCode.LOW_RESERVOIR)[0].time_ms == projected.low_alarm_ms
    assert events(pump, EventCode.EMPTY_RESERVOIR)[0].time_ms == projected.empty_ms


def test_therapy_stop_and_start():
    pump = new_pump()
    pump.apply(Bolus(BolusKind.CLINICIAN, 100, 60))
    pump.advance_to(T0 + 30 * MINUTE_MS)
    stop = pump.apply(TherapySet(False))
    assert events(pump, EventCode.BOLUS_COMPLETE)[0].arg0 == 50  # cut short: what was pumped
    assert events(pump, EventCode.PUMP_STOPPED)[0].seq == stop.event_seq
    status = pump.status()
    assert (status.mode, status.infusing, status.rate_ul_per_day, status.low_alarm_ms) == (
        DosingMode.STOPPED,
        False,
        0,
        0,
    )
    held = pump.reservoir_units
    pump.advance_to(T0 + 5 * DAY_MS)
    assert pump.reservoir_units == held and pump.apply(TherapySet(False)).event_seq == 0
    start = pump.apply(TherapySet(True))
    assert events(pump, EventCode.PUMP_STARTED)[0].seq == start.event_seq and pump.status().infusing


def test_other_commands_are_unsupported():
    error = rejected(new_pump(), ClockSet(T0))
    assert error.code is ErrorCode.UNSUPPORTED


# --- refills -------------------------------------------------------------------------------------
def test_refill_refusals():
    pump = new_pump()
    pump.advance_to(T0 + 10 * DAY_MS)  # expected residual 15000 µL
    over = rejected(pump, refill(15_000, added=20_001))
    assert (over.code, over.field, over.value, over.limit) == (ErrorCode.OUT_OF_RANGE, "added_ul", 20_001, 20_000)
    assert rejected(pump, refill(15_000, confirmed=False)).field == "concentration_confirmed"
    off = rejected(pump, refill(12_999))  # over 2 mL off; the bound is the tighter flow band: 14.5 % of 5 mL
    assert (off.code, off.field, off.value, off.limit) == (ErrorCode.STATE_CONFLICT, "withdrawn_ul", 12_999, 14_275)
    assert "more than 2000 µL" in off.reason
    reply = pump.apply(refill(12_999, accepted=True))
    assert (reply.expected_residual_ul, reply.discrepancy_ul, reply.reservoir_ul) == (15_000, -2_001, 20_000)
    (flag,) = events(pump, EventCode.REFILL_DISCREPANCY)
    assert (flag.arg0, flag.arg1) == (20_000, -2_001)


def test_refill_within_the_limit_needs_no_acceptance_and_is_logged():
    pump = new_pump()
    pump.advance_to(T0 + 10 * DAY_MS)
    reply = pump.apply(refill(15_725, added=18_000))  # +725 µL: the edge of the ±14.5 % band of 5 mL drained
    (logged,) = events(pump, EventCode.REFILL)
    assert (logged.seq, logged.arg0, logged.arg1) == (reply.event_seq, 18_000, 725)
    assert not events(pump, EventCode.REFILL_DISCREPANCY)
    assert reply.next_refill_ms == T0 + 10 * DAY_MS + 25 * DAY_MS  # (18000 - 2000) / 500 days, less 7


def test_a_residual_under_2_ml_off_but_outside_the_flow_accuracy_band_is_a_discrepancy():
    pump = new_pump()
    pump.advance_to(T0 + 10 * DAY_MS)  # 5 mL drained: the true residual lies within 15000 ± 725 µL
    off = rejected(pump, refill(14_000))  # 1 mL off: within the 2 mL rule, outside the band
    assert (off.code, off.field, off.value, off.limit) == (ErrorCode.STATE_CONFLICT, "withdrawn_ul", 14_000, 14_275)
    assert "outside the ±725 µL flow-accuracy band" in off.reason
    assert not events(pump, EventCode.REFILL)  # nothing half-applied
    reply = pump.apply(refill(14_000, accepted=True))
    (flag,) = events(pump, EventCode.REFILL_DISCREPANCY)
    assert (reply.discrepancy_ul, flag.arg0, flag.arg1) == (-1_000, 20_000, -1_000)


def test_a_scripted_true_residual_passes_the_check_and_a_false_one_does_not():
    """A test can withdraw what a nurse really finds: the true residual, with the seeded flow error."""
    pump = new_pump(replace(EXACT, flow_error_mean=0.1, flow_error_sd=0.0))  # a pump running 10 % fast
    pump.advance_to(T0 + 20 * DAY_MS)
    true_residual = round(pump.true_reservoir_ul)
    assert (pump.reservoir_ul, true_residual) == (10_000, 9_000)  # within the ±1450 µL band of 10 mL
    assert "flow-accuracy band" in rejected(pump, refill(8_000)).reason  # 2 mL off: a leak, or a misread syringe
    reply = pump.apply(refill(true_residual))
    assert reply.discrepancy_ul == -1_000 and not events(pump, EventCode.REFILL_DISCREPANCY)


def test_next_refill_is_the_earlier_of_the_threshold_and_morphine_stability():
    pump = new_pump()
    pump.apply(dosing(rate=100))  # 0.1 mL/day: the 2 mL alarm is 180 days away, less 7 = day 173
    assert pump.status().next_refill_ms == T0 + 90 * DAY_MS  # morphine stable 90 days after the fill
    pump.apply(dosing(rate=1_000))  # 1 mL/day: alarm at day 18, less 7
    assert pump.status().next_refill_ms == T0 + 11 * DAY_MS


ZICONOTIDE = (DrugConcentration(Drug.ZICONOTIDE, 25_000),)  # 25 µg/mL [V]


def test_ziconotide_is_stable_40_days_in_a_new_pump_and_84_after_a_refill():
    pump = new_pump(replace(EXACT, initial_drugs=ZICONOTIDE, initial_rate_ul_per_day=100))  # 2.5 µg/day
    assert pump.status().next_refill_ms == T0 + 40 * DAY_MS  # threshold: day 173
    pump.advance_to(T0 + 35 * DAY_MS)
    reply = pump.apply(refill(16_500, drugs=ZICONOTIDE))
    assert reply.next_refill_ms == T0 + (35 + 84) * DAY_MS
    restored = Pump.from_state(json.loads(json.dumps(pump.to_state())))
    assert restored.status().next_refill_ms == T0 + (35 + 84) * DAY_MS


def test_a_morphine_pump_switched_to_ziconotide_gets_the_new_pump_limit():
    pump = new_pump(replace(EXACT, initial_rate_ul_per_day=96))  # 2.4 µg/day of 25 µg/mL: a first step
    pump.advance_to(T0 + 30 * DAY_MS)
    assert pump.apply(refill(17_120, drugs=ZICONOTIDE)).next_refill_ms == T0 + (30 + 40) * DAY_MS


def test_prometra_refill_threshold_3_ml_with_every_patient_bolus_taken():
    prometra = replace(EXACT, refill_threshold_ul=3_000, next_refill_margin_days=0.0)
    pump = new_pump(prometra)
    pump.apply(dosing(rate=400, ptm=PTM))  # 0.4 mL/day + 3 x 50 µL allowed a day = 0.55 mL/day
    assert pump.status().next_refill_ms == T0 + math.ceil(17_000 / 550 * DAY_MS)  # 30.9 days to 3.0 mL
    no_boluses = new_pump(replace(prometra, refill_threshold_all_boluses=False))
    no_boluses.apply(dosing(rate=400, ptm=PTM))
    assert no_boluses.status().next_refill_ms == T0 + math.ceil(17_000 / 400 * DAY_MS)  # 42.5 days


def test_refill_clears_low_and_empty_and_sets_the_new_concentration():
    pump = new_pump()
    pump.advance_to(T0 + 41 * DAY_MS)
    new_mix = (DrugConcentration(Drug.MORPHINE, 20_000_000),)
    pump.apply(refill(0, drugs=new_mix))
    status = pump.status()
    assert status.alarms == () and status.infusing and status.reservoir_ul == 20_000
    assert [(d.drug, d.conc_ng_per_ml, d.dose_ng_per_day) for d in status.drugs] == [
        (Drug.MORPHINE, 20_000_000, 10_000_000)
    ]
    cleared = [e.code for e in events(pump) if e.state is AlarmState.CLEARED]
    assert sorted(cleared) == [EventCode.LOW_RESERVOIR, EventCode.EMPTY_RESERVOIR]
    pump.advance_to(T0 + 42 * DAY_MS)
    assert pump.reservoir_ul == 19_500


def test_flow_error_shows_as_the_refill_discrepancy():
    pump = new_pump(PumpConfig(flow_error_mean=0.10, flow_error_sd=0.0))  # pumps 10 % more than programmed
    pump.advance_to(T0 + 30 * DAY_MS)
    assert pump.status().reservoir_ul == 5_000
    reply = pump.apply(refill(round(pump.true_reservoir_ul)))
    assert reply.discrepancy_ul == -1_500  # 10 % of the 15 mL pumped
    faster = new_pump(PumpConfig(flow_error_mean=0.145, flow_error_sd=0.0))
    faster.advance_to(T0 + 30 * DAY_MS)
    assert rejected(faster, refill(round(faster.true_reservoir_ul))).limit == 3_000  # -2175 µL: beyond 2 mL


def test_bridge_bolus_after_refill():
    pump = new_pump()
    pump.advance_to(T0 + 10 * DAY_MS)
    pump.apply(refill(15_000, bridge=True))
    (started,) = events(pump, EventCode.BOLUS_STARTED)
    assert (started.arg0, started.arg1) == (250, BolusKind.BRIDGE)


# --- battery -------------------------------------------------------------------------------------
def _run_with_refills(pump: Pump, until_ms: int, every_days: int) -> None:
    while pump.now_ms < until_ms:
        pump.advance_to(min(until_ms, pump.now_ms + every_days * DAY_MS))
        pump.apply(refill(pump.reservoir_ul, added=pump.config.capacity_ul))


def test_battery_eri_then_delivery_stops_about_90_days_later():
    pump = new_pump(replace(EXACT, capacity_ul=40_000, initial_fill_ul=40_000))
    _run_with_refills(pump, T0 + int(6.3 * YEAR_S * 1000), 60)
    (eri,) = events(pump, EventCode.BATTERY_ERI)
    assert pump.status().battery_state is BatteryState.ERI
    projected_eos = pump.status().eos_ms
    _run_with_refills(pump, T0 + int(6.8 * YEAR_S * 1000), 60)
    (eos,) = events(pump, EventCode.BATTERY_EOS)
    assert eos.time_ms == projected_eos and eos.priority is Priority.HIGH
    assert eos.time_ms - eri.time_ms == 90 * DAY_MS  # the stop date fixed at ERI [V SynchroMed II]
    assert 6.0 < (eos.time_ms - T0) / 1000 / YEAR_S < 7.0  # 0.5 mL/day: 5-7 years [V docs/devices.md 2.7]
    status = pump.status()
    assert (status.battery_state, status.infusing) == (BatteryState.EOS, False)
    assert status.battery_pct_x100 <= 1  # the reserve was sized for exactly these 90 days
    held = pump.reservoir_units
    pump.advance_to(pump.now_ms + 30 * DAY_MS)
    assert pump.reservoir_units == held
    assert "end of service" in rejected(pump, Bolus(BolusKind.CLINICIAN, 100, 60)).reason
    pump.apply(TherapySet(False))
    assert rejected(pump, TherapySet(True)).code is ErrorCode.STATE_CONFLICT


@pytest.mark.parametrize("rate_ul_per_day", [48, 500, 2_000, 10_000, 24_000])
def test_after_eri_the_pump_stops_90_days_later_at_any_flow_rate(rate_ul_per_day):
    # A small cell, so ERI comes within months at every rate; baclofen 50 µg/mL allows the whole flow range.
    cell = replace(EXACT.cell, capacity_j=5_000.0, max_life_years=0.0)
    config = replace(EXACT, cell=cell, initial_drugs=BACLOFEN, initial_rate_ul_per_day=rate_ul_per_day)
    pump = new_pump(replace(config, capacity_ul=40_000, initial_fill_ul=40_000))
    every = max(1, min(30, 30_000 // rate_ul_per_day))  # refill before the reservoir runs low
    while not events(pump, EventCode.BATTERY_EOS):
        pump.advance_to(pump.now_ms + every * DAY_MS)
        if pump.powered:
            pump.apply(refill(pump.reservoir_ul, added=40_000, drugs=BACLOFEN))
    (eri,) = events(pump, EventCode.BATTERY_ERI)
    (eos,) = events(pump, EventCode.BATTERY_EOS)
    assert eos.time_ms - eri.time_ms == 90 * DAY_MS
    assert not events(pump, EventCode.EMPTY_RESERVOIR)  # delivered at the programmed rate throughout


def test_age_limit_ends_service_at_7_years_even_at_low_drain():
    config = replace(EXACT, capacity_ul=40_000, initial_fill_ul=40_000, initial_rate_ul_per_day=48)
    pump = new_pump(config)
    _run_with_refills(pump, T0 + int(7.1 * YEAR_S * 1000), 700)
    eos_at = T0 + int(7 * YEAR_S * 1000)
    (eri,) = events(pump, EventCode.BATTERY_ERI)
    (eos,) = events(pump, EventCode.BATTERY_EOS)
    assert (eri.time_ms, eos.time_ms) == (eos_at - 90 * DAY_MS, eos_at)
    assert eos.arg0 > 0  # energy was left: it was the age that ended service: it was the age that ended service
    assert not pump.status().infusing


# --- replacement advised (about 6 months before the stop) ---------------------------------------------
def _baclofen_pump(rate_ul_per_day: int, **cell) -> Pump:
    """A 40 mL pump of baclofen 50 µg/mL (its cap allows the whole flow range) at ``rate_ul_per_day``."""
    config = replace(EXACT, initial_drugs=BACLOFEN, initial_rate_ul_per_day=rate_ul_per_day)
    return new_pump(replace(config, capacity_ul=40_000, initial_fill_ul=40_000, cell=replace(EXACT.cell, **cell)))


ADVISED_AT_RATES = [48, 500, 2_000, 10_000, 24_000]  # µL/day: the flow range's ends and between
ADVISED_IDS = ["0.048mL/day", "0.5mL/day", "2mL/day", "10mL/day", "24mL/day"]


@pytest.mark.parametrize("rate", ADVISED_AT_RATES, ids=ADVISED_IDS)
def test_replacement_is_advised_182_days_before_the_stop_at_any_flow_rate(rate):
    pump = _baclofen_pump(rate)  # the default 20 kJ cell with its 7-year age limit
    projected = pump.status().replacement_ms
    every = max(1, min(30, 30_000 // rate))  # refill before the reservoir runs low
    while not events(pump, EventCode.BATTERY_EOS):
        pump.advance_to(pump.now_ms + every * DAY_MS)
        if pump.powered:
            pump.apply(refill(pump.reservoir_ul, added=40_000, drugs=BACLOFEN))
    (advised,) = events(pump, EventCode.REPLACEMENT_ADVISED)
    (eri,) = events(pump, EventCode.BATTERY_ERI)
    (eos,) = events(pump, EventCode.BATTERY_EOS)
    assert abs(eos.time_ms - advised.time_ms - 182 * DAY_MS) <= 1  # replacement_advised_days = 182
    assert advised.time_ms < eri.time_ms and abs(projected - advised.time_ms) <= 1  # as projected at implant
    assert (advised.priority, advised.state, advised.arg0) == (Priority.NONE, AlarmState.NONE, 182)
    assert pump.status().replacement_ms == advised.time_ms  # reached, shown as such
    by_age = rate == 48  # the 7-year limit comes before the energy runs low
    assert (eos.time_ms == T0 + int(7 * YEAR_S * 1000)) == by_age
    assert not events(pump, EventCode.EMPTY_RESERVOIR)


def _advised_ms(pump: Pump, until_ms: int, step_ms: int | None) -> int:
    t = pump.now_ms
    while step_ms and t + step_ms < until_ms:
        t += step_ms
        pump.advance_to(t)
    pump.advance_to(until_ms)
    (advised,) = events(pump, EventCode.REPLACEMENT_ADVISED)
    return advised.time_ms


def test_replacement_advised_comes_at_the_same_ms_in_one_step_in_many_and_across_a_restart():
    small = dict(capacity_j=5_000.0, max_life_years=0.0)  # advised after about 460 days at 0.048 mL/day
    projected = _baclofen_pump(48, **small).status().replacement_ms
    once = _advised_ms(_baclofen_pump(48, **small), T0 + 600 * DAY_MS, None)
    stepped = _advised_ms(_baclofen_pump(48, **small), T0 + 600 * DAY_MS, 6 * HOUR_MS + 7)
    saved = _baclofen_pump(48, **small)
    saved.advance_to(T0 + 300 * DAY_MS)
    restarted = Pump.from_state(json.loads(json.dumps(saved.to_state())))
    assert once == stepped == _advised_ms(restarted, T0 + 600 * DAY_MS, None)
    assert abs(projected - once) <= 1
    again = Pump.from_state(json.loads(json.dumps(restarted.to_state())))  # after it: not logged twice
    again.advance_to(T0 + 700 * DAY_MS)
    assert len(events(again, EventCode.REPLACEMENT_ADVISED)) == 1 and again.status().replacement_ms == once


def test_replacement_advice_follows_a_rate_rise_and_a_lead_shorter_than_the_reserve_counts_from_eri():
    pump = _baclofen_pump(48, capacity_j=5_000.0, max_life_years=0.0)
    before = pump.status().replacement_ms
    pump.advance_to(T0 + 100 * DAY_MS)
    pump.apply(dosing(rate=500, alarm=2_000))  # the programmed drain rises: the projection moves up
    status = pump.status()
    assert status.replacement_ms < before - 30 * DAY_MS
    assert abs(status.eos_ms - status.replacement_ms - 182 * DAY_MS) <= 1
    for day in range(130, 201, 30):  # refilled monthly, so it goes on pumping
        pump.advance_to(T0 + day * DAY_MS)
        pump.apply(refill(pump.reservoir_ul, added=40_000, drugs=BACLOFEN))
    pump.apply(dosing(rate=10_000, alarm=2_000))  # now the stop is nearer than 182 days: advised at once
    (advised,) = events(pump, EventCode.REPLACEMENT_ADVISED)
    status = pump.status()
    assert advised.time_ms == status.replacement_ms == T0 + 190 * DAY_MS
    assert advised.arg0 == round((status.eos_ms - advised.time_ms) / DAY_MS) < 182
    late = _baclofen_pump(500, capacity_j=5_000.0, max_life_years=0.0)
    late = Pump.from_state({**late.to_state(), "config": {**late.config.to_dict(), "replacement_advised_days": 30}})
    late.advance_to(T0 + 3 * 365 * DAY_MS)
    (advised,) = events(late, EventCode.REPLACEMENT_ADVISED)
    (eri,) = events(late, EventCode.BATTERY_ERI)
    assert advised.time_ms == eri.time_ms + 60 * DAY_MS  # 30 days before the stop fixed at ERI + 90 days
    with pytest.raises(ValueError, match="replacement_advised_days"):
        replace(EXACT, replacement_advised_days=0)


def test_a_failed_battery_projects_no_replacement_date():
    pump = new_pump()
    assert pump.status().replacement_ms > T0
    pump.inject_fault("battery_failure", {})
    assert pump.status().replacement_ms == 0


# --- faults --------------------------------------------------------------------------------------
def test_motor_stall_stops_delivery_and_clear_motor_resumes():
    pump = new_pump()
    pump.apply(Bolus(BolusKind.CLINICIAN, 120, 120))
    pump.advance_to(T0 + 30 * MINUTE_MS)
    pump.inject_fault("motor_stall", {})
    status = pump.status()
    assert (status.motor_state, status.infusing, status.bolus_active) == (MotorState.STALLED, False, False)
    assert status.alarms[0].code is EventCode.MOTOR_STALL and status.alarms[0].priority is Priority.HIGH
    assert events(pump, EventCode.BOLUS_COMPLETE)[0].arg0 == 30
    held = pump.reservoir_units
    pump.advance_to(T0 + DAY_MS)
    assert pump.reservoir_units == held and status.empty_ms == 0
    pump.inject_fault("clear_motor", {})
    assert events(pump, EventCode.MOTOR_STALL_RECOVERY)[0].time_ms == T0 + DAY_MS
    pump.advance_to(T0 + 2 * DAY_MS)
    assert held - pump.reservoir_units == 500 * UNITS_PER_UL and pump.status().motor_state is MotorState.OK


def test_occlusion_is_not_sensed_and_shows_as_a_larger_residual_at_the_refill():
    pump = new_pump()
    pump.inject_fault("occlusion", {})
    pump.advance_to(T0 + 10 * DAY_MS)
    status = pump.status()
    assert (status.motor_state, status.infusing, status.reservoir_ul) == (MotorState.OK, True, 15_000)
    assert status.alarms == () and not events(pump, EventCode.OCCLUSION)  # the pump does not know
    assert (pump.totals.delivered_ul, pump.true_reservoir_ul) == (0, 20_000)  # the drug stayed in the reservoir
    pump.inject_fault("clear_occlusion", {})
    pump.advance_to(T0 + 12 * DAY_MS)
    assert pump.totals.delivered_ul == pytest.approx(1_000)
    true_residual = round(pump.true_reservoir_ul)
    off = rejected(pump, refill(true_residual))  # 19000 withdrawn where 14000 was expected
    assert (true_residual, off.code, off.field, off.limit) == (19_000, ErrorCode.STATE_CONFLICT, "withdrawn_ul", 14_870)
    assert "more drug left than expected: check the catheter for occlusion" in off.reason
    reply = pump.apply(refill(true_residual, accepted=True))
    (flag,) = events(pump, EventCode.REFILL_DISCREPANCY)
    assert (reply.discrepancy_ul, flag.arg1) == (5_000, 5_000)


def test_a_stalled_motor_stays_a_detected_high_priority_alarm_beside_an_occlusion():
    pump = new_pump()
    pump.inject_fault("occlusion", {})
    pump.inject_fault("motor_stall", {})
    status = pump.status()
    assert status.motor_state is MotorState.STALLED and not status.infusing
    assert [(a.code, a.priority) for a in status.alarms] == [(EventCode.MOTOR_STALL, Priority.HIGH)]


def test_battery_failure_stops_everything_and_unknown_faults_are_named():
    pump = new_pump()
    pump.inject_fault("battery_failure", {})
    pump.advance_to(T0 + DAY_MS)
    status = pump.status()
    assert (status.battery_state, status.infusing, status.reservoir_ul) == (BatteryState.FAILED, False, 20_000)
    assert (status.eri_ms, status.eos_ms) == (0, 0)
    with pytest.raises(ValueError, match="motor_stall"):
        pump.inject_fault("meteor", {})


# --- persistence ---------------------------------------------------------------------------------
def test_state_round_trip_resumes_identically():
    pump = new_pump(PumpConfig(), seed=11)
    pump.apply(dosing(DosingMode.FLEX, steps=FLEX, ptm=PTM))
    pump.advance_to(T0 + 5 * HOUR_MS)
    pump.apply(Bolus(BolusKind.PATIENT, 0, 0))
    pump.advance_to(T0 + 5 * HOUR_MS + 3 * MINUTE_MS)  # mid-bolus
    pump.inject_fault("occlusion", {})
    copy = Pump.from_state(json.loads(json.dumps(pump.to_state())))
    assert copy.to_state() == pump.to_state() and copy.status() == pump.status()
    for twin in (pump, copy):
        twin.advance_to(T0 + 20 * DAY_MS)
        twin.apply(refill(round(twin.true_reservoir_ul), accepted=True))
        twin.advance_to(T0 + 70 * DAY_MS)
    assert copy.to_state() == pump.to_state() and copy.status() == pump.status()
