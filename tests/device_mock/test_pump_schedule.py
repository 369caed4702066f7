"""The pump's flex day: steps on local time, periodic boluses, the 24-hour dose in status, and the read-back."""

from __future__ import annotations

from dataclasses import replace

import pytest

from device_mock.pump import Pump, PumpConfig
from device_mock.pump_dosing import DAY_MS, MINUTE_MS, UNITS_PER_UL
from device_mock.pump_schedule import Schedule
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    Actor,
    Bolus,
    BolusKind,
    DosingMode,
    DosingSet,
    Drug,
    DrugConcentration,
    FlexStep,
    PatientBolusSettings,
    PeriodicBolus,
    ScheduleRead,
    ScheduleReply,
    TherapySet,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR_MS = 3_600_000
EXACT = PumpConfig(flow_error_mean=0.0, flow_error_sd=0.0)
NO_PTM = PatientBolusSettings(False, 0, 0, 0, 0)
STEPS = (FlexStep(0, 400), FlexStep(8 * 60, 600))  # 400 µL/day at night, 600 from 08:00 local


def flex(steps=STEPS, boluses=(), offset=0, ptm=NO_PTM) -> DosingSet:
    return DosingSet(DosingMode.FLEX, 0, steps, ptm, 2_000, boluses, offset)


def refused(pump: Pump, message) -> DeviceRejected:
    before = pump.to_state()
    with pytest.raises(DeviceRejected) as info:
        pump.apply(message)
    assert pump.to_state() == before
    return info.value


def test_flex_steps_run_on_the_schedules_local_time():
    pump = Pump(EXACT, T0, 1)
    pump.apply(flex(offset=60))  # UTC+1: the 08:00 step starts at 07:00 UTC
    pump.advance_to(T0 + 7 * HOUR_MS - 1)
    assert pump.status().rate_ul_per_day == 400
    assert pump.program.schedule.next_edge(pump.now_ms) == T0 + 7 * HOUR_MS
    pump.advance_to(T0 + 7 * HOUR_MS)
    assert pump.status().rate_ul_per_day == 600
    # Local midnight is 23:00 UTC: the night step starts there.
    assert pump.program.schedule.next_edge(pump.now_ms) == T0 + 23 * HOUR_MS
    west = Pump(EXACT, T0, 1)
    west.apply(flex(offset=-300))  # UTC-5: 08:00 local is 13:00 UTC
    west.advance_to(T0 + 12 * HOUR_MS)
    assert west.status().rate_ul_per_day == 400
    west.advance_to(T0 + 13 * HOUR_MS)
    assert west.status().rate_ul_per_day == 600


def test_a_periodic_bolus_runs_daily_on_top_of_its_step_and_the_day_drains_exactly():
    pump = Pump(EXACT, T0, 1)
    bolus = PeriodicBolus(12 * 60, 100, 60)  # 100 µL over an hour at noon: 2,400 µL/day on top of 600
    pump.apply(flex(boluses=(bolus,)))
    schedule = pump.program.schedule
    assert schedule.daily_units() == (8 * 400 + 16 * 600) * UNITS_PER_UL // 24 + 100 * UNITS_PER_UL
    pump.advance_to(T0 + 12 * HOUR_MS + 30 * MINUTE_MS)
    assert pump.status().rate_ul_per_day == 3_000
    pump.advance_to(T0 + 13 * HOUR_MS)
    assert pump.status().rate_ul_per_day == 600
    pump.advance_to(T0 + 3 * DAY_MS)
    assert pump.reservoir_units == 20_000 * UNITS_PER_UL - 3 * schedule.daily_units()


def test_one_big_advance_and_fine_steps_agree_with_periodic_boluses_and_an_offset():
    boluses = (PeriodicBolus(6 * 60, 50, 30), PeriodicBolus(23 * 60 + 30, 60, 60))  # the second wraps midnight
    coarse, fine = Pump(EXACT, T0, 3), Pump(EXACT, T0, 3)
    for pump in (coarse, fine):
        pump.apply(flex(boluses=boluses, offset=330))  # UTC+5:30
    end = T0 + 5 * DAY_MS + 7 * MINUTE_MS
    coarse.advance_to(end)
    t = T0
    while t < end:
        t = min(end, t + 7 * MINUTE_MS + 13)
        fine.advance_to(t)
    assert coarse.reservoir_units == fine.reservoir_units
    assert coarse.totals.delivered_ul == pytest.approx(fine.totals.delivered_ul)
    # 00:00-00:30 local runs the wrapped bolus: 60 µL/h = 1,440 µL/day over the night step's 400.
    schedule = coarse.program.schedule
    local_midnight = T0 + DAY_MS - 330 * MINUTE_MS
    assert schedule.rate_at(local_midnight - 10 * MINUTE_MS) == 600 + 1_440
    assert schedule.rate_at(local_midnight + 10 * MINUTE_MS) == 400 + 1_440
    assert schedule.rate_at(local_midnight + 30 * MINUTE_MS) == 400


@pytest.mark.parametrize(
    ("message", "field", "value", "limit"),
    [
        # 1 µL over 7 min is 205.7 µL/day: not a whole rate; 6 and 8 min are.
        (flex(boluses=(PeriodicBolus(600, 1, 7),)), "periodic_boluses[0].duration_min", 7, 8),
        (
            flex(boluses=(PeriodicBolus(600, 50, 60), PeriodicBolus(630, 50, 30))),
            "periodic_boluses[1].start_min",
            630,
            660,
        ),
        (
            flex(boluses=(PeriodicBolus(60, 50, 60), PeriodicBolus(1400, 50, 120))),
            "periodic_boluses[1].duration_min",
            120,
            100,
        ),
        (flex(boluses=(PeriodicBolus(600, 0, 60),)), "periodic_boluses[0].volume_ul", 0, 1),
        # 5 mL in an hour is 120 mL/day over the 600 step; at most 24 mL/day: 308 min or longer.
        (flex(boluses=(PeriodicBolus(600, 5_000, 60),)), "periodic_boluses[0].duration_min", 60, 308),
        (flex(offset=900), "utc_offset_min", 900, 840),
        (flex(offset=-780), "utc_offset_min", -780, -720),
        (
            DosingSet(DosingMode.CONTINUOUS, 500, (), NO_PTM, 2_000, (PeriodicBolus(600, 50, 60),)),
            "periodic_boluses",
            1,
            0,
        ),
    ],
)
def test_a_broken_flex_day_is_refused_naming_the_field_and_changes_nothing(message, field, value, limit):
    error = refused(Pump(EXACT, T0, 1), message)
    assert (error.code, error.field, error.value, error.limit) == (ErrorCode.OUT_OF_RANGE, field, value, limit)


def test_the_nearest_whole_rate_durations_are_named():
    error = refused(Pump(EXACT, T0, 1), flex(boluses=(PeriodicBolus(600, 1, 7),)))
    assert "6 or 8 min" in error.reason


def test_periodic_boluses_count_against_the_daily_cap():
    # Morphine 10 mg/mL, capped at 15 mg/day: 1,500 µL/day. Steps of 1,000 plus 600 µL of boluses pass it.
    morphine = (DrugConcentration(Drug.MORPHINE, 10_000_000),)
    pump = Pump(replace(EXACT, initial_drugs=morphine), T0, 1)
    over = flex(steps=(FlexStep(0, 1_000),), boluses=(PeriodicBolus(600, 300, 60), PeriodicBolus(900, 300, 60)))
    error = refused(pump, over)
    assert (error.field, error.value, error.limit) == ("steps", 1_600, 1_500)
    pump.apply(flex(steps=(FlexStep(0, 1_000),), boluses=(PeriodicBolus(600, 250, 60), PeriodicBolus(900, 250, 60))))
    assert pump.status().drugs[0].dose_ng_per_day == 15_000_000


def test_status_gives_the_dose_of_the_whole_day_not_of_the_current_step():
    pump = Pump(EXACT, T0, 1)  # default mix: morphine 10 mg/mL, bupivacaine 20 mg/mL
    pump.apply(flex(boluses=(PeriodicBolus(12 * 60, 100, 60),)))
    daily_ul = pump.program.schedule.daily_ul()
    assert daily_ul == 634  # (8 x 400 + 16 x 600) / 24 = 533.3, + 100, rounded up
    night = pump.status()
    pump.advance_to(T0 + 12 * HOUR_MS + MINUTE_MS)
    noon = pump.status()
    assert (night.rate_ul_per_day, noon.rate_ul_per_day) == (400, 3_000)
    for status in (night, noon):
        assert [d.dose_ng_per_day for d in status.drugs] == [10_000 * daily_ul, 20_000 * daily_ul]
        assert [d.bolus_ng_24h for d in status.drugs] == [0, 0]
    pump.apply(TherapySet(False))
    assert [d.dose_ng_per_day for d in pump.status().drugs] == [0, 0]  # nothing is infused


def test_status_counts_the_boluses_of_the_last_24_hours_per_drug():
    pump = Pump(EXACT, T0, 1)
    pump.apply(Bolus(BolusKind.CLINICIAN, 100, 60))
    drugs = pump.status().drugs
    assert [d.bolus_ng_24h for d in drugs] == [1_000_000, 2_000_000]  # 100 µL of 10 and 20 mg/mL
    pump.advance_to(T0 + DAY_MS - 1)
    assert pump.status().drugs[0].bolus_ng_24h == 1_000_000
    pump.advance_to(T0 + DAY_MS)
    assert pump.status().drugs[0].bolus_ng_24h == 0


def test_the_schedule_reads_back_as_programmed_with_its_time_zone_and_day_volume():
    pump = Pump(EXACT, T0, 1)
    ptm = PatientBolusSettings(True, 50, 10, 60, 3)
    bolus = PeriodicBolus(12 * 60, 100, 60)
    pump.apply(flex(boluses=(bolus,), offset=-300, ptm=ptm))
    pump.advance_to(T0 + 2 * HOUR_MS)
    reply = pump.apply(ScheduleRead())
    assert reply == ScheduleReply(
        mode=DosingMode.FLEX,
        rate_ul_per_day=0,
        steps=STEPS,
        periodic_boluses=(bolus,),
        utc_offset_min=-300,
        patient_bolus=ptm,
        alarm_volume_ul=2_000,
        daily_ul=634,
        local_minute=21 * 60,  # 02:00 UTC is 21:00 the day before at UTC-5
    )
    assert pump.apply(ScheduleRead(), role=Actor.PATIENT) == reply  # a read: the patient's app may show it
    pump.apply(TherapySet(False))
    stopped = pump.apply(ScheduleRead())
    assert (stopped.mode, stopped.daily_ul, stopped.steps) == (DosingMode.STOPPED, 0, STEPS)


def test_periodic_boluses_and_the_time_zone_survive_a_restart_and_old_states_load():
    pump = Pump(EXACT, T0, 1)
    pump.apply(flex(boluses=(PeriodicBolus(600, 50, 30),), offset=120))
    pump.advance_to(T0 + 9 * HOUR_MS)
    again = Pump.from_state(pump.to_state())
    assert again.program.schedule == pump.program.schedule
    for model in (pump, again):
        model.advance_to(T0 + 4 * DAY_MS)
    assert again.reservoir_units == pump.reservoir_units
    old = pump.to_state()
    for key in ("boluses", "utc_offset_min"):
        del old["program"]["schedule"][key]
    legacy = Pump.from_state(old).program.schedule
    assert (legacy.boluses, legacy.utc_offset_min, legacy.steps) == ((), 0, STEPS)


def test_a_schedule_without_edges_has_none_even_across_local_midnight():
    one_step = Schedule(DosingMode.FLEX, 0, (FlexStep(300, 500),), (), 90)
    assert one_step.next_edge(T0) is None
    assert one_step.daily_units() == 500 * DAY_MS


def test_an_empty_or_stalled_pump_reports_a_daily_dose_of_0():
    pump = Pump(replace(EXACT, initial_fill_ul=3_000), T0, 1)
    assert pump.status().drugs[0].dose_ng_per_day == 5_000_000  # 10 mg/mL at 0.5 mL/day
    pump.advance_to(T0 + 7 * DAY_MS)  # 3 mL at 0.5 mL/day: empty on day 6
    assert [d.dose_ng_per_day for d in pump.status().drugs] == [0, 0]
    stalled = Pump(EXACT, T0, 1)
    stalled.inject_fault("motor_stall", {})
    assert [d.dose_ng_per_day for d in stalled.status().drugs] == [0, 0]
    assert stalled.apply(ScheduleRead()).daily_ul == 500  # the program itself is unchanged
