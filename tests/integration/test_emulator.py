"""The emulator end to end: implant-mock in its own process, clients on its ptys (issue 3, Done when)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from device_mock.stimulator import ScsConfig, Stimulator
from protocols.errors import DeviceRejected, ErrorCode, LinkTimeout
from protocols.messages import (
    AlarmState,
    Area,
    BolusKind,
    DosingMode,
    Drug,
    DrugConcentration,
    EventCode,
    MotorState,
    PatientBolusSettings,
    Priority,
    StimProgramSet,
    TherapySet,
    ToneKind,
    Waveform,
)
from tests.integration.mock_process import STOPPED_LINE

DAY_MS = 86_400_000
TONIC = Area(0b0001, 0b0010, 5000, 300, 50, Waveform.TONIC, 0, 0, 0, 0)


def wait_for_device_time(client, target_ms: int, timeout_s: float = 30.0):
    """Poll status until the device clock passes ``target_ms``; return that status."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = client.status()
        if status.time_ms >= target_ms:
            return status
        time.sleep(0.05)
    raise AssertionError(f"device time did not reach {target_ms}")


@pytest.mark.parametrize("speed", ["100000", "1000000"])
def test_pump_drain_matches_rate_times_time_at_any_speed(run_mock, connect, speed):
    """The reservoir falls by rate x device time, whatever the speed (integer µL, so within 1 µL)."""
    mock = run_mock("--device", "pump", "--speed", speed)
    client = connect(mock.devices["pump-1"])
    first = client.status()
    second = wait_for_device_time(client, first.time_ms + 3 * DAY_MS)
    elapsed_days = (second.time_ms - first.time_ms) / DAY_MS
    expected_drop = first.rate_ul_per_day * elapsed_days
    assert abs((first.reservoir_ul - second.reservoir_ul) - expected_drop) <= 1.0


@pytest.mark.parametrize("speed", ["100000", "1000000"])
def test_stimulator_battery_drain_matches_the_pulse_physics(run_mock, connect, speed, tmp_path):
    """Energy taken from the cell between two polls equals (pulses/η + quiescent + radio) x device time."""
    # Without impedance drift, so that the load, and with it the draw, stays what it was at implant.
    scenario = tmp_path / "no-drift.toml"
    scenario.write_text('[scenario]\nname = "no drift"\ndevice = "scs"\n\n[config]\nimpedance_drift = 0.0\n')
    mock = run_mock("--scenario", str(scenario), "--speed", speed)
    client = connect(mock.devices["scs-1"])
    client.set_program(1, (TONIC,), 6000)
    client.set_therapy(True)
    reference = Stimulator(ScsConfig(impedance_drift=0.0), 0, 1)
    reference.apply(StimProgramSet(1, True, (TONIC,), 6000, 2))
    reference.apply(TherapySet(True))
    reference.set_telemetry_active(True)
    power_w = reference.battery_power_w()
    capacity_j = ScsConfig().rechargeable.capacity_j
    first = client.status()
    second = wait_for_device_time(client, first.time_ms + 2 * DAY_MS)
    elapsed_s = (second.time_ms - first.time_ms) / 1000
    used_j = (
        (first.battery_pct_x100 - second.battery_pct_x100) / 10_000 * capacity_j * second.capacity_pct_x100 / 10_000
    )
    expected_j = power_w * elapsed_s
    resolution_j = capacity_j / 10_000  # one step of battery_pct_x100
    assert abs(used_j - expected_j) <= 0.02 * expected_j + 2 * resolution_j
    assert second.tissue_power_uw == round(reference.tissue_power_w() * 1e6)


def test_low_reservoir_alarm_at_the_documented_time_and_refill(run_mock, connect, tmp_path):
    """Scenario: 20 mL at 0.45 mL/day, 2 mL alarm -> LOW_RESERVOIR on day 40 exactly; refill on day 42 clears it."""
    mock = run_mock("--scenario", "scenarios/pump-low-reservoir.toml", "--speed", "2000000")
    client = connect(mock.devices["pump-1"])
    start = client.read_events(1).entries[0].time_ms - 0  # first entry is the session opening
    start_ms = 1_767_225_600_000
    assert start >= start_ms
    wait_for_device_time(client, start_ms + 43 * DAY_MS)
    events = client.events_since(1)
    low = [e for e in events if e.code == EventCode.LOW_RESERVOIR]
    assert low[0].state == AlarmState.ACTIVE and low[0].priority == Priority.MEDIUM
    assert low[0].time_ms == start_ms + 40 * DAY_MS
    assert low[0].arg0 == 2000 and low[0].arg1 == 2000
    refill = [e for e in events if e.code == EventCode.REFILL]
    assert refill and refill[0].time_ms == start_ms + 42 * DAY_MS
    assert low[-1].state == AlarmState.CLEARED and low[-1].time_ms == start_ms + 42 * DAY_MS
    assert not any(e.code == EventCode.EMPTY_RESERVOIR for e in events)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_out_of_range_commands_are_refused_and_change_nothing(run_mock, connect):
    """Program, dosing and refill beyond the device limits: OUT_OF_RANGE naming the limit, state unchanged."""
    mock = run_mock("--device", "scs", "--device", "pump", "--speed", "1")
    scs, pump = connect(mock.devices["scs-1"]), connect(mock.devices["pump-1"])
    before = scs.status()
    too_strong = Area(0b0001, 0b0010, 30_000, 300, 50, Waveform.TONIC, 0, 0, 0, 0)
    with pytest.raises(DeviceRejected) as refused:
        scs.set_program(1, (too_strong,), 6000)
    assert refused.value.code == ErrorCode.OUT_OF_RANGE
    assert refused.value.field == "areas[0].amplitude_ua" and refused.value.value == 30_000
    after = scs.status()
    assert (after.areas, after.active_program, after.last_event_seq) == (
        before.areas,
        before.active_program,
        before.last_event_seq,
    )

    pump_before = pump.status()
    ptm = PatientBolusSettings(False, 0, 0, 0, 0)
    with pytest.raises(DeviceRejected) as refused:
        pump.set_dosing(DosingMode.CONTINUOUS, 50_000, ptm, 2000)
    assert refused.value.code == ErrorCode.OUT_OF_RANGE and refused.value.field == "rate_ul_per_day"
    assert refused.value.limit == 24_000
    with pytest.raises(DeviceRejected) as refused:
        pump.refill(pump_before.reservoir_ul, 45_000, (DrugConcentration(Drug.MORPHINE, 10_000_000),), True)
    assert refused.value.code == ErrorCode.OUT_OF_RANGE
    pump_after = pump.status()
    assert pump_after.rate_ul_per_day == pump_before.rate_ul_per_day
    assert pump_after.drugs == pump_before.drugs
    assert pump_after.last_event_seq == pump_before.last_event_seq


def test_implant_ctl_reports_the_broken_limit_with_its_exit_code(run_mock):
    mock = run_mock("--device", "pump", "--speed", "1")
    device = mock.devices["pump-1"]
    result = subprocess.run(
        [sys.executable, "-m", "protocols.ctl", "--port", device.port, "--key", str(device.key), "--json",
         "dose", "--rate-ul-per-day", "99999"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 6, result.stderr
    error = json.loads(result.stdout)
    assert (error["code"], error["field"], error["value"], error["limit"]) == (
        "OUT_OF_RANGE",
        "rate_ul_per_day",
        99999,
        24000,
    )


def test_kill_9_and_restart_resumes_state_and_event_numbering(run_mock, connect):
    mock = run_mock("--device", "scs", "--device", "pump", "--speed", "100000")
    scs, pump = connect(mock.devices["scs-1"]), connect(mock.devices["pump-1"])
    scs.set_program(3, (TONIC,), 6000)
    pump.bolus(BolusKind.CLINICIAN, 200, 30)
    scs_before, pump_before = scs.status(), pump.status()
    key_before = mock.devices["scs-1"].key.read_text()
    mock.kill9()
    scs.close(), pump.close()

    again = run_mock("--device", "scs", "--device", "pump", "--speed", "100000")
    assert "state=resumed" in "\n".join(again.lines)
    assert again.devices["scs-1"].key.read_text() == key_before
    scs, pump = connect(again.devices["scs-1"]), connect(again.devices["pump-1"])
    scs_after, pump_after = scs.status(), pump.status()
    assert scs_after.active_program == 3 and scs_after.areas == (TONIC,)
    # The device-time heartbeat: the clock resumes at or after anything a reply revealed before the
    # crash, so the reservoir never appears to refill and the battery never to recharge by itself.
    assert scs_after.time_ms >= scs_before.time_ms and pump_after.time_ms >= pump_before.time_ms
    assert pump_after.reservoir_ul <= pump_before.reservoir_ul
    assert abs(scs_after.battery_pct_x100 - scs_before.battery_pct_x100) <= 100
    for client, before in ((scs, scs_before), (pump, pump_before)):
        events = client.events_since(1)
        assert [e.seq for e in events] == list(range(1, len(events) + 1)), "event log has a gap or a repeat"
        assert events[-1].seq >= before.last_event_seq
        assert any(e.code == EventCode.SESSION_OPENED and e.seq > before.last_event_seq for e in events)


def test_sigterm_saves_and_exits_cleanly(run_mock):
    mock = run_mock("--device", "scs", "--speed", "1000")
    assert mock.stop() == 0
    assert STOPPED_LINE in mock.lines
    assert (mock.devices["scs-1"].key.parent / "state.json").exists()


def test_device_faults_from_flags_are_seen_by_a_client(run_mock, connect):
    mock = run_mock(
        "--device",
        "scs",
        "--device",
        "pump",
        "--speed",
        "1",
        "--fault",
        "lead_open:contact=1",
        "--fault",
        "motor_stall",
    )
    scs, pump = connect(mock.devices["scs-1"]), connect(mock.devices["pump-1"])
    reading = scs.impedance_check()
    assert reading.impedance_ohm[1] == 65535
    assert any(a.code == EventCode.LEAD_OPEN for a in scs.status().alarms)
    status = pump.status()
    assert status.motor_state == MotorState.STALLED
    assert [(a.code, a.priority) for a in status.alarms if a.code == EventCode.MOTOR_STALL] == [
        (EventCode.MOTOR_STALL, Priority.HIGH)
    ]


def test_battery_failure_fault(run_mock, connect):
    mock = run_mock("--device", "pump", "--speed", "1", "--fault", "battery_failure")
    pump = connect(mock.devices["pump-1"])
    assert any(a.code == EventCode.BATTERY_FAILURE and a.priority == Priority.HIGH for a in pump.status().alarms)


def test_an_occlusion_fault_is_not_sensed_by_the_pump(run_mock, connect):
    mock = run_mock("--device", "pump", "--speed", "1", "--fault", "occlusion")
    pump = connect(mock.devices["pump-1"])
    status = pump.status()
    assert status.alarms == () and status.motor_state == MotorState.OK and status.infusing


def test_fault_at_a_device_time_offset_arrives_then(run_mock, connect):
    mock = run_mock("--device", "pump", "--speed", "100000", "--fault", "motor_stall@1d")
    pump = connect(mock.devices["pump-1"])
    status = wait_for_device_time(pump, 1_767_225_600_000 + DAY_MS + 1)
    assert status.motor_state == MotorState.STALLED
    stall = [e for e in pump.events_since(1) if e.code == EventCode.MOTOR_STALL]
    assert stall[0].time_ms == 1_767_225_600_000 + DAY_MS


def test_line_noise_is_survived_and_counted(run_mock, connect):
    """Corrupted, dropped and duplicated bytes: every poll answers, damage is counted, a bolus is one bolus."""
    # The rates are per byte: a poll moves about 300 bytes (the PumpStatus reply is over 220), so at
    # 0.03 % each about one exchange in four is damaged. Nine tries then all fail about once in 400,000
    # polls, and 41 exchanges all come through clean about once in 80,000 runs: both outcomes the test
    # checks are certain, whatever the status grows to within a few dozen bytes.
    mock = run_mock("--device", "pump", "--speed", "1", "--noise", "flip=0.0003,drop=0.0003,dup=0.0003")
    pump = connect(mock.devices["pump-1"], timeout=0.3, retries=8)
    for _ in range(40):
        pump.status()
    pump.bolus(BolusKind.CLINICIAN, 100, 30)
    assert pump.stats.retries > 0
    starts = [e for e in pump.events_since(1) if e.code == EventCode.BOLUS_STARTED]
    assert len(starts) == 1


def test_disconnect_from_a_scenario_times_out_then_recovers(run_mock, connect, tmp_path):
    scenario = tmp_path / "drop.toml"
    scenario.write_text('[scenario]\nname = "drop"\n\n[[event]]\nat = "2s"\naction = "disconnect"\nduration = "3s"\n')
    mock = run_mock("--device", "scs", "--speed", "1", "--scenario", str(scenario))
    client = connect(mock.devices["scs-1"], timeout=0.3, retries=0)
    time.sleep(2.3)
    with pytest.raises(LinkTimeout):
        client.status()
    time.sleep(3.0)
    client.retries = 3
    assert client.status().time_ms > 0


# pyserial's spy handler never closes its trace file (its close() leaves it open): not our leak.
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_spy_url_traces_every_byte_of_a_real_session(run_mock, tmp_path):
    """pyserial's spy:// wrapper sees the traffic (the client's fast path is only for plain ports)."""
    from protocols.client import DeviceClient

    mock = run_mock("--device", "scs", "--speed", "1")
    device = mock.devices["scs-1"]
    trace = tmp_path / "spy.txt"
    with DeviceClient.connect(f"spy://{device.port}?file={trace}", device.key) as client:
        client.identify()
        client.open_session()
        client.status()
    text = trace.read_text()
    assert "TX" in text.upper() and "RX" in text.upper() and "0000" in text


def test_implant_ctl_alarm_test_sounds_the_pump_and_the_stimulator_refuses_it(run_mock, connect):
    mock = run_mock("--device", "scs", "--device", "pump", "--speed", "1")

    def ctl_alarm_test(name: str) -> subprocess.CompletedProcess:
        device = mock.devices[name]
        argv = ["--port", device.port, "--key", str(device.key), "--json", "alarm-test"]
        return subprocess.run(
            [sys.executable, "-m", "protocols.ctl", *argv], capture_output=True, text=True, timeout=30
        )

    refused = ctl_alarm_test("scs-1")
    assert refused.returncode == 6, refused.stderr
    assert json.loads(refused.stdout)["code"] == "UNSUPPORTED"
    done = ctl_alarm_test("pump-1")
    assert done.returncode == 0, done.stderr
    pump = connect(mock.devices["pump-1"])
    entry = next(e for e in pump.events_since(1) if e.seq == json.loads(done.stdout)["event_seq"])
    assert (entry.code, entry.arg0) == (EventCode.ALARM_TEST, 4_000)
    # What sounds depends only on the device time since the test: judged by it, not by wall timing.
    status = pump.status()
    while status.time_ms < entry.time_ms + 5_000:
        offset = status.time_ms - entry.time_ms
        expected = ToneKind.DUAL if offset < 3_000 else ToneKind.SINGLE if offset < 4_000 else ToneKind.NONE
        assert status.tone is expected, f"{offset} ms into the test"
        time.sleep(0.2)
        status = pump.status()
    assert status.tone is ToneKind.NONE and status.next_tone is ToneKind.NONE


def test_implant_ctl_programs_a_flex_day_in_local_time_and_reads_it_back(run_mock, connect):
    mock = run_mock("--device", "pump", "--speed", "1")
    device = mock.devices["pump-1"]

    def ctl(*argv: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "protocols.ctl", "--port", device.port, "--key", str(device.key), *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=30)

    dose = ["dose", "--mode", "flex", "--step", "00:00=400", "--step", "08:00=600"]
    done = ctl(*dose, "--periodic", "12:00=100/60", "--utc-offset-min", "-300")
    assert done.returncode == 0, done.stderr
    text = ctl("schedule")
    assert text.returncode == 0, text.stderr
    for line in ("Local time     UTC-05:00", "From 08:00     0.6 mL/day", "Bolus 12:00    0.1 mL over 60 min, daily"):
        assert line in text.stdout, text.stdout
    read = json.loads(ctl("schedule", "--json").stdout)
    assert (read["mode"], read["utc_offset_min"], read["daily_ul"]) == ("FLEX", -300, 634)
    assert read["periodic_boluses"] == [{"start_min": 720, "volume_ul": 100, "duration_min": 60}]
    status = connect(device).status()
    assert status.drugs[0].dose_ng_per_day == status.drugs[0].conc_ng_per_ml * 634 // 1000  # the day, not the step
    refused = ctl(*dose, "--periodic", "12:00=1/7", "--json")
    assert refused.returncode == 6
    error = json.loads(refused.stdout)
    assert (error["field"], error["value"], error["limit"]) == ("periodic_boluses[0].duration_min", 7, 8)
    bad = ctl("dose", "--mode", "flex", "--step", "25:00=400")
    assert bad.returncode == 2 and "HH:MM=UL_PER_DAY" in bad.stderr
