"""Alarm sounds as the patient hears them: patterns, repeats, silence after acknowledgement, the
clinician's alarm test, and memory errors a fault can raise."""

from __future__ import annotations

import json

import pytest

from device_mock.alarm_tones import Sounder, TonePattern
from device_mock.clock import ManualClock
from device_mock.device import Device
from device_mock.pump import Pump, PumpConfig
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import AlarmAck, AlarmTest, EventCode, Priority, StatusRequest, ToneKind

T0 = 1_767_225_600_000
S, MIN, HOUR, DAY = 1_000, 60_000, 3_600_000, 86_400_000
KEY = bytes(range(32))
DUAL = TonePattern(ToneKind.DUAL, 3 * S, 10 * MIN)
SINGLE = TonePattern(ToneKind.SINGLE, 1 * S, HOUR)
SOUNDER = Sounder({Priority.HIGH: DUAL, Priority.MEDIUM: SINGLE})


def pump_at(offset_ms: int = 0) -> Pump:
    pump = Pump(PumpConfig(flow_error_mean=0.0, flow_error_sd=0.0), T0, 1)
    pump.advance_to(T0 + offset_ms)
    return pump


def tones_at(pump: Pump, t_ms: int) -> tuple[ToneKind, int, ToneKind, int]:
    pump.advance_to(t_ms)
    status = pump.status()
    return status.tone, status.tone_code, status.next_tone, status.next_tone_ms


# --- the sounder alone ---------------------------------------------------------------------------
def test_a_critical_alarm_sounds_a_3_s_dual_tone_every_10_minutes_from_when_it_was_raised():
    alarms = [(EventCode.MOTOR_STALL, Priority.HIGH, T0)]
    at = [SOUNDER.state(T0 + dt, alarms, 0) for dt in (0, 2_999, 3_000, 10 * MIN - 1, 10 * MIN + 1_500)]
    assert [s.tone for s in at] == [ToneKind.DUAL, ToneKind.DUAL, ToneKind.NONE, ToneKind.NONE, ToneKind.DUAL]
    assert at[0].code == EventCode.MOTOR_STALL and at[2].code == 0
    assert [s.next_ms for s in at] == [T0 + 10 * MIN] * 4 + [T0 + 20 * MIN]
    assert {s.next_tone for s in at} == {ToneKind.DUAL}


def test_a_non_critical_alarm_sounds_a_1_s_single_tone_hourly_and_a_low_one_is_silent():
    medium = SOUNDER.state(T0 + HOUR + 500, [(EventCode.LOW_RESERVOIR, Priority.MEDIUM, T0)], 0)
    assert (medium.tone, medium.next_tone, medium.next_ms) == (ToneKind.SINGLE, ToneKind.SINGLE, T0 + 2 * HOUR)
    assert SOUNDER.state(T0 + HOUR + 1_000, [(EventCode.LOW_RESERVOIR, Priority.MEDIUM, T0)], 0).tone is ToneKind.NONE
    low = SOUNDER.state(T0, [(EventCode.TELEMETRY_FLOOD, Priority.LOW, T0)], 0)
    assert (low.tone, low.next_tone, low.next_ms) == (ToneKind.NONE, ToneKind.NONE, 0)


def test_when_tones_overlap_the_higher_priority_is_heard_and_the_next_start_is_the_earliest():
    alarms = [(EventCode.LOW_RESERVOIR, Priority.MEDIUM, T0), (EventCode.EMPTY_RESERVOIR, Priority.HIGH, T0 + 500)]
    heard = SOUNDER.state(T0 + 700, alarms, 0)
    assert (heard.tone, heard.code) == (ToneKind.DUAL, EventCode.EMPTY_RESERVOIR)
    assert (heard.next_tone, heard.next_ms) == (ToneKind.DUAL, T0 + 500 + 10 * MIN)


def test_a_tone_as_long_as_its_interval_is_refused():
    with pytest.raises(ValueError, match="shorter than its repeat interval"):
        TonePattern(ToneKind.DUAL, HOUR, HOUR)
    with pytest.raises(ValueError, match="critical tone"):
        PumpConfig(critical_tone_ms=600_000, critical_repeat_s=600)


# --- the pump --------------------------------------------------------------------------------------
def test_the_low_reservoir_alarm_sounds_when_raised_and_again_an_hour_later():
    probe = pump_at(37 * DAY)  # 20 mL at 0.5 mL/day: the 2 mL alarm on day 36, empty on day 40
    t = next(e.time_ms for e in probe.events.read(1, 100) if e.code is EventCode.LOW_RESERVOIR)
    pump = pump_at(0)
    assert tones_at(pump, t - 1) == (ToneKind.NONE, 0, ToneKind.NONE, 0)
    assert tones_at(pump, t) == (ToneKind.SINGLE, EventCode.LOW_RESERVOIR, ToneKind.SINGLE, t + HOUR)
    assert tones_at(pump, t + 1_500) == (ToneKind.NONE, 0, ToneKind.SINGLE, t + HOUR)
    assert tones_at(pump, t + HOUR + 200)[:2] == (ToneKind.SINGLE, EventCode.LOW_RESERVOIR)


def test_an_acknowledged_alarm_is_silent_and_a_stall_sounds_again_only_if_raised_again():
    pump = pump_at(HOUR)
    pump.inject_fault("motor_stall", {})
    assert tones_at(pump, T0 + HOUR + 1_000) == (
        ToneKind.DUAL,
        EventCode.MOTOR_STALL,
        ToneKind.DUAL,
        T0 + HOUR + 10 * MIN,
    )
    pump.alarms.acknowledge(EventCode.MOTOR_STALL, pump.now_ms)
    assert tones_at(pump, T0 + HOUR + 10 * MIN + 1_000) == (ToneKind.NONE, 0, ToneKind.NONE, 0)


def test_the_schedule_of_a_sounding_alarm_survives_a_restart():
    pump = pump_at(HOUR)
    pump.inject_fault("motor_stall", {})
    restored = Pump.from_state(json.loads(json.dumps(pump.to_state())))
    assert tones_at(restored, T0 + HOUR + 30 * MIN + 2_000) == tones_at(pump, T0 + HOUR + 30 * MIN + 2_000)
    assert restored.status().tone is ToneKind.DUAL


def test_a_saved_state_from_before_the_sounder_still_loads():
    pump = pump_at(HOUR)
    pump.inject_fault("motor_stall", {})
    state = pump.to_state()
    state["alarms"] = {code: entry[:2] for code, entry in state["alarms"]["listed"].items()}  # the older form
    restored = Pump.from_state(state)
    assert restored.alarms.is_active(EventCode.MOTOR_STALL)
    assert restored.status().next_tone is ToneKind.DUAL


def test_a_critical_memory_error_stops_delivery_and_a_minor_one_does_not():
    pump = pump_at(HOUR)
    pump.inject_fault("memory_error", {"critical": "false"})  # as the command line gives it
    assert pump.status().infusing and pump.alarms.is_active(EventCode.MEMORY_ERROR_MINOR)
    assert pump.status().tone is ToneKind.SINGLE
    pump.inject_fault("memory_error", {})
    status = pump.status()
    assert not status.infusing and (status.tone, status.tone_code) == (ToneKind.DUAL, EventCode.MEMORY_ERROR)
    before = pump.reservoir_ul
    pump.advance_to(T0 + 2 * DAY)
    assert pump.reservoir_ul == before  # nothing pumped while stopped
    pump.inject_fault("clear_memory_error", {})
    assert pump.status().infusing
    assert pump.alarms.is_active(EventCode.MEMORY_ERROR)  # latching: the clinician must acknowledge it


@pytest.mark.parametrize(
    ("fault", "params", "message"),
    [
        ("memory_error", {"critical": "yes"}, "must be true or false"),
        ("memory_error", {"severity": 1}, "unknown fault parameter severity"),
        ("motor_stall", {"contact": 1}, "takes no parameters"),
    ],
)
def test_bad_fault_parameters_are_refused_by_name_and_change_nothing(fault, params, message):
    pump = pump_at(HOUR)
    before = pump.to_state()
    with pytest.raises(ValueError, match=message):
        pump.inject_fault(fault, params)
    assert pump.to_state() == before


# --- the alarm test, through the device --------------------------------------------------------
def test_the_alarm_test_plays_the_dual_then_the_single_tone_and_is_logged():
    clock = ManualClock(T0, speed=1)
    device = Device(Pump(PumpConfig(), T0, 1), clock, KEY)
    ack = device.handle(AlarmTest())
    entry = device.model.events.read(ack.event_seq, 1)[0]
    assert (entry.code, entry.arg0, entry.time_ms) == (EventCode.ALARM_TEST, 4_000, T0)
    heard = []
    for dt in (1_000, 3_500, 4_500):
        clock.advance(dt - (clock.now_ms() - T0))
        device.sync()
        status = device.handle(StatusRequest())
        heard.append((status.tone, status.tone_code))
    assert heard == [(ToneKind.DUAL, EventCode.ALARM_TEST), (ToneKind.SINGLE, EventCode.ALARM_TEST), (ToneKind.NONE, 0)]


def test_a_stimulator_has_no_sounder_and_refuses_the_alarm_test_without_logging():
    device = Device(Stimulator(ScsConfig(), T0, 1), ManualClock(T0, speed=1), KEY)
    last = device.model.events.last_seq
    with pytest.raises(DeviceRejected) as refused:
        device.handle(AlarmTest())
    assert refused.value.code is ErrorCode.UNSUPPORTED and "no alarm sounder" in str(refused.value)
    assert device.model.events.last_seq == last


def test_acknowledging_through_the_device_silences_the_alarm():
    clock = ManualClock(T0, speed=1)
    device = Device(Pump(PumpConfig(), T0, 1), clock, KEY)
    device.model.inject_fault("motor_stall", {})
    assert device.handle(StatusRequest()).tone is ToneKind.DUAL
    device.handle(AlarmAck(EventCode.MOTOR_STALL))
    assert device.handle(StatusRequest()).next_tone is ToneKind.NONE
