"""A pump in an MRI scanner's field (SPEC 4.5): a peristaltic motor stalls and restarts, a flow-activated valve
shuts after its 10 µL; exact times, exact reservoir accounting, the clinician's check, persistence."""

from __future__ import annotations

import json

import pytest

from device_mock.pump import Pump, PumpConfig
from device_mock.pump_config import PumpMechanism
from device_mock.pump_dosing import MINUTE_MS, UNITS_PER_UL
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    Actor,
    AlarmState,
    Bolus,
    BolusKind,
    CommandAck,
    EventCode,
    MotorState,
    MriCheckDone,
    Priority,
    Refill,
    ToneKind,
)

T0 = 1_767_225_600_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
EXACT = PumpConfig(flow_error_mean=0.0, flow_error_sd=0.0)  # true flow = programmed flow
VALVE = PumpConfig(flow_error_mean=0.0, flow_error_sd=0.0, mechanism=PumpMechanism.VALVE_GATED)
SCAN_AT = T0 + HOUR_MS


def pump_at_scan(config: PumpConfig = EXACT, **scan) -> Pump:
    """A pump at 0.5 mL/day, an hour after implant, put into a field with the ``mri_scan`` keys given."""
    pump = Pump(config, T0, 1)
    pump.advance_to(SCAN_AT)
    pump.inject_fault("mri_scan", scan)
    return pump


def entries(pump: Pump, since: int = 1) -> list[tuple[int, EventCode, AlarmState, int]]:
    return [(e.time_ms, e.code, e.state, e.arg0) for e in pump.events.read(since, 10**9)]


def refused(pump: Pump, message, role: Actor = Actor.CLINICIAN) -> DeviceRejected:
    before = pump.to_state()
    with pytest.raises(DeviceRejected) as info:
        pump.apply(message, role)
    assert pump.to_state() == before
    return info.value


# --- peristaltic ---------------------------------------------------------------------------------
def test_the_magnet_stalls_basal_and_bolus_delivery_and_the_motor_restarts_when_the_field_ends():
    pump = Pump(EXACT, T0, 1)
    pump.advance_to(SCAN_AT - 10 * MINUTE_MS)
    pump.apply(Bolus(BolusKind.CLINICIAN, 60, 60))  # 1 µL a minute on top of the basal rate
    pump.advance_to(SCAN_AT)
    pump.inject_fault("mri_scan", {"minutes": 45})
    units, true_ul = pump.reservoir_units, pump.true_reservoir_ul
    status = pump.status()
    assert not status.infusing and not status.bolus_active and status.motor_state is MotorState.STALLED
    assert (status.mri_suspended, status.mri_check_due, status.valve_closed) == (True, True, False)
    assert status.tone is ToneKind.DUAL and status.tone_code == EventCode.MRI_SUSPEND  # the two-tone alarm
    assert [(a.code, a.priority) for a in status.alarms] == [(EventCode.MRI_SUSPEND, Priority.HIGH)]
    assert entries(pump)[-2:] == [
        (SCAN_AT, EventCode.BOLUS_COMPLETE, AlarmState.NONE, 10),  # the bolus ends with the 10 µL it pumped
        (SCAN_AT, EventCode.MRI_SUSPEND, AlarmState.ACTIVE, 45),
    ]
    with pytest.raises(DeviceRejected, match="the MRI magnet stopped the motor"):
        pump.apply(Bolus(BolusKind.CLINICIAN, 10, 10))
    end = SCAN_AT + 45 * MINUTE_MS
    pump.advance_to(end)
    assert (pump.reservoir_units, pump.true_reservoir_ul) == (units, true_ul)  # nothing pumped in the field
    assert entries(pump)[-2:] == [
        (end, EventCode.MRI_SUSPEND, AlarmState.CLEARED, 0),
        (end, EventCode.MRI_RESUME, AlarmState.NONE, 45 * 60),
    ]
    pump.advance_to(end + DAY_MS)
    assert units - pump.reservoir_units == 500 * UNITS_PER_UL  # the basal 0.5 mL/day again
    status = pump.status()
    assert status.infusing and status.motor_state is MotorState.OK and status.mri_check_due
    ack = pump.apply(MriCheckDone())
    assert entries(pump, ack.event_seq) == [(end + DAY_MS, EventCode.MRI_CHECKED, AlarmState.NONE, 0)]
    assert not pump.status().mri_check_due and pump.apply(MriCheckDone()) == CommandAck(0)


def test_a_late_restart_comes_exactly_after_its_delay_and_the_check_waits_for_it():
    pump = pump_at_scan(minutes=30, resume_delay_min=120)
    end, restart = SCAN_AT + 30 * MINUTE_MS, SCAN_AT + 150 * MINUTE_MS
    pump.advance_to(end + HOUR_MS)
    status = pump.status()
    assert status.mri_suspended and not status.infusing and status.motor_state is MotorState.STALLED
    early = refused(pump, MriCheckDone())
    assert early.code is ErrorCode.STATE_CONFLICT and early.retry_after_ms == HOUR_MS
    assert "not restarted since the scan (due in 60 min)" in early.reason
    pump.advance_to(restart + 1)
    resume = [e for e in pump.events.read(1, 10**9) if e.code == EventCode.MRI_RESUME]
    assert [(e.time_ms, e.arg0) for e in resume] == [(restart, 150 * 60)]
    pump.apply(MriCheckDone())
    assert not pump.status().mri_check_due


def test_a_pump_that_does_not_restart_by_itself_restarts_at_the_clinicians_check():
    pump = pump_at_scan(minutes=20, restarts=False)
    pump.advance_to(SCAN_AT + DAY_MS)
    assert pump.status().mri_suspended and EventCode.MRI_RESUME not in [e[1] for e in entries(pump)]
    units = pump.reservoir_units
    ack = pump.apply(MriCheckDone())
    now = SCAN_AT + DAY_MS
    assert entries(pump, ack.event_seq - 2) == [
        (now, EventCode.MRI_SUSPEND, AlarmState.CLEARED, 0),
        (now, EventCode.MRI_RESUME, AlarmState.NONE, DAY_MS // 1000),
        (now, EventCode.MRI_CHECKED, AlarmState.NONE, 0),
    ]
    pump.advance_to(now + DAY_MS)
    assert units - pump.reservoir_units == 500 * UNITS_PER_UL


def test_the_check_is_refused_while_the_field_lasts_and_a_scan_without_a_length_waits_for_its_end():
    pump = pump_at_scan(minutes=0)
    pump.advance_to(SCAN_AT + 7 * DAY_MS)
    assert pump.status().mri_suspended
    assert "still in the MRI scan's magnetic field" in refused(pump, MriCheckDone()).reason
    pump.inject_fault("end_mri_scan", {})
    assert entries(pump)[-1][1:3] == (EventCode.MRI_RESUME, AlarmState.NONE)
    assert pump.status().infusing
    pump.inject_fault("end_mri_scan", {})  # no field: nothing happens


# --- valve-gated ---------------------------------------------------------------------------------
def test_the_flow_activated_valve_shuts_after_10_ul_and_stays_shut_until_the_reset():
    pump = Pump(VALVE, T0, 1)
    pump.advance_to(SCAN_AT)
    units, true_ul, given = pump.reservoir_units, pump.true_reservoir_ul, pump.totals.delivered_ul
    pump.inject_fault("mri_scan", {"minutes": 30})
    status = pump.status()
    assert status.mri_suspended and not status.infusing and not status.valve_closed
    assert status.motor_state is MotorState.OK  # no motor: its valves
    pump.advance_to(SCAN_AT + DAY_MS)
    shut = SCAN_AT + 6_000  # 10 µL at 100 µL/min
    assert entries(pump)[-1] == (shut, EventCode.FAV_CLOSED, AlarmState.ACTIVE, 10)
    assert pump.true_reservoir_ul == pytest.approx(true_ul - 10.0, abs=1e-9)  # the leak left the reservoir ...
    assert pump.totals.delivered_ul - given == pytest.approx(10.0, abs=1e-9)  # ... and reached the patient
    assert pump.reservoir_units == units  # unmetered: the estimate does not know; nothing else flowed
    status = pump.status()
    assert (status.mri_suspended, status.valve_closed, status.mri_check_due, status.infusing) == (
        False,
        True,
        True,
        False,
    )
    assert [(a.code, a.priority) for a in status.alarms] == [(EventCode.FAV_CLOSED, Priority.HIGH)]
    with pytest.raises(DeviceRejected, match="flow-activated valve closed"):
        pump.apply(Bolus(BolusKind.CLINICIAN, 10, 10))
    ack = pump.apply(MriCheckDone())
    reset = SCAN_AT + DAY_MS
    assert entries(pump, ack.event_seq - 1) == [
        (reset, EventCode.FAV_CLOSED, AlarmState.CLEARED, 0),
        (reset, EventCode.FAV_RESET, AlarmState.NONE, 10),
    ]
    status = pump.status()
    assert status.infusing and not (status.valve_closed or status.mri_check_due or status.alarms)
    pump.advance_to(reset + DAY_MS)
    assert units - pump.reservoir_units == 500 * UNITS_PER_UL
    assert pump.apply(MriCheckDone()) == CommandAck(0)


def test_a_field_too_short_to_shut_the_valve_leaks_less_and_delivery_comes_back():
    pump = Pump(VALVE, T0, 1)
    pump.advance_to(SCAN_AT)
    true_ul = pump.true_reservoir_ul
    pump.inject_fault("mri_scan", {"minutes": 0.05})  # 3 s
    pump.advance_to(SCAN_AT + 3_000)
    assert pump.true_reservoir_ul == pytest.approx(true_ul - 5.0, abs=1e-9)
    status = pump.status()
    assert status.infusing and not (status.valve_closed or status.mri_suspended or status.mri_check_due)
    assert not [e for e in entries(pump) if e[1] == EventCode.FAV_CLOSED]


def test_an_occluded_catheter_takes_no_leak_so_the_valve_never_shuts():
    pump = Pump(VALVE, T0, 1)
    pump.inject_fault("occlusion", {})
    true_ul = pump.true_reservoir_ul
    pump.inject_fault("mri_scan", {"minutes": 10})
    pump.advance_to(T0 + 10 * MINUTE_MS)
    assert pump.true_reservoir_ul == true_ul and not pump.status().valve_closed


def test_a_refill_finds_the_leak_in_the_true_residual_and_starts_the_count_again():
    pump = pump_at_scan(VALVE, minutes=30)
    pump.advance_to(SCAN_AT + HOUR_MS)
    assert pump.reservoir_units / UNITS_PER_UL - pump.true_reservoir_ul == pytest.approx(10.0, abs=1e-9)
    assert pump.totals.leak_units == 10 * UNITS_PER_UL
    withdrawn = round(pump.true_reservoir_ul)
    # Only ~21 µL were metered since the fill: 10 µL missing is outside its ±14.5 % band.
    flagged = refused(pump, Refill(withdrawn, 10_000, pump.program.drugs, True, False, False))
    assert "residual off by -10 µL" in flagged.reason
    reply = pump.apply(Refill(withdrawn, 10_000, pump.program.drugs, True, True, False))
    assert reply.discrepancy_ul == -10
    assert pump.totals.leak_units == 0 and pump.true_reservoir_ul == pump.reservoir_ul == 10_000


# --- time, persistence, faults, roles --------------------------------------------------------------
@pytest.mark.parametrize("config", [EXACT, VALVE], ids=["peristaltic", "valve-gated"])
@pytest.mark.parametrize("steps_ms", [[2 * DAY_MS], [MINUTE_MS] * 2_880, [997, 61_003, 4_999_999] * 30])
def test_one_long_advance_and_many_short_ones_log_the_same_events_and_state(config, steps_ms):
    def run(steps: list[int]) -> Pump:
        pump = pump_at_scan(config, minutes=45, **({} if config is VALVE else {"resume_delay_min": 30}))
        for step in steps:
            pump.advance_to(pump.now_ms + step)
        pump.advance_to(SCAN_AT + 2 * DAY_MS)
        return pump

    one, many = run([2 * DAY_MS]), run(steps_ms)
    assert entries(many) == entries(one)
    assert many.to_state() == one.to_state()


@pytest.mark.parametrize("config", [EXACT, VALVE], ids=["peristaltic", "valve-gated"])
def test_a_restart_inside_the_field_resumes_exactly(config):
    pump = pump_at_scan(config, minutes=45)
    pump.advance_to(SCAN_AT + 3_000)  # inside the leak, for the valve
    copy = Pump.from_state(json.loads(json.dumps(pump.to_state())))
    for model in (pump, copy):
        model.advance_to(SCAN_AT + DAY_MS)
        model.apply(MriCheckDone())
        model.advance_to(SCAN_AT + 2 * DAY_MS)
    assert entries(copy) == entries(pump) and copy.status() == pump.status()


def test_an_older_saved_state_without_magnet_fields_loads():
    state = json.loads(json.dumps(Pump(EXACT, T0, 1).to_state()))
    del state["magnet"], state["totals"]["leak_units"]
    pump = Pump.from_state(state)
    assert not (pump.status().mri_suspended or pump.status().mri_check_due)
    pump.inject_fault("mri_scan", {"minutes": 5})
    assert pump.status().mri_suspended


@pytest.mark.parametrize(
    ("config", "fault", "params", "message"),
    [
        (EXACT, "mri_scan", {"minute": 5}, "parameter minute; valid: minutes, restarts, resume_delay_min"),
        (EXACT, "mri_scan", {"minutes": -1}, "minutes must be a number of minutes, 0 or more"),
        (EXACT, "mri_scan", {"restarts": "sometimes"}, "restarts must be true or false"),
        (VALVE, "mri_scan", {"restarts": False}, "a valve-gated one has no motor"),
        (EXACT, "end_mri_scan", {"now": 1}, "end_mri_scan takes no parameters"),
    ],
)
def test_bad_scan_parameters_are_refused_by_name_and_change_nothing(config, fault, params, message):
    pump = Pump(config, T0, 1)
    before = pump.to_state()
    with pytest.raises(ValueError, match=message):
        pump.inject_fault(fault, params)
    assert pump.to_state() == before


def test_a_second_scan_while_one_runs_is_refused_and_a_string_flag_from_the_command_line_is_read():
    pump = pump_at_scan(minutes=10, restarts="false")  # --fault mri_scan:restarts=false
    with pytest.raises(ValueError, match="already running"):
        pump.inject_fault("mri_scan", {})
    pump.advance_to(SCAN_AT + HOUR_MS)
    assert pump.status().mri_suspended  # it did not restart by itself


def test_only_the_clinician_checks_a_pump_and_a_stimulator_has_no_such_check():
    pump = pump_at_scan(minutes=1)
    pump.advance_to(SCAN_AT + HOUR_MS)
    assert refused(pump, MriCheckDone(), Actor.PATIENT).code is ErrorCode.NOT_PERMITTED
    with pytest.raises(DeviceRejected) as info:
        Stimulator(ScsConfig(), T0, 1).apply(MriCheckDone())
    assert info.value.code is ErrorCode.UNSUPPORTED


def test_the_mechanism_reads_from_a_scenario_and_back_from_json():
    config = PumpConfig(mechanism="valve_gated")
    assert config.mechanism is PumpMechanism.VALVE_GATED
    assert PumpConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="valid: peristaltic, valve_gated"):
        PumpConfig(mechanism="gravity")
