"""Device glue: common requests, clock, persistence, pushes, and scenarios run in device time."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from device_mock.clock import ManualClock
from device_mock.device import Device
from device_mock.faults import Scenario, ScenarioError, parse_duration_ms
from device_mock.pump import Pump, PumpConfig
from device_mock.state import StateError, StateStore
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.client import DeviceClient
from protocols.errors import DeviceRejected, ErrorCode, LinkError
from protocols.messages import (
    AlarmAck,
    AlarmState,
    ClockRead,
    ClockSet,
    EventCode,
    EventLogRead,
    ImpedanceCheck,
    StatusRequest,
)
from protocols.transport import LoopbackPair

T0 = 1_767_225_600_000
DAY_MS = 86_400_000
KEY = bytes(range(32))
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def scs_device(tmp_path=None, scenario=None) -> tuple[Device, ManualClock]:
    clock = ManualClock(T0, speed=1000)
    store = StateStore(tmp_path / "scs") if tmp_path else None
    return Device(Stimulator(ScsConfig(), T0, 1), clock, KEY, store=store, scenario=scenario), clock


def test_status_follows_the_clock():
    device, clock = scs_device()
    assert device.handle(StatusRequest()).time_ms == T0
    clock.advance(DAY_MS)
    device.sync()
    assert device.handle(StatusRequest()).time_ms == T0 + DAY_MS


def test_event_log_paging_and_page_size_limit():
    device, _ = scs_device()
    for _ in range(12):
        device.model.events.append(T0, EventCode.COMM_ERROR)
    page = device.handle(EventLogRead(3, 8))
    assert [e.seq for e in page.entries] == list(range(3, 11))
    assert page.last_seq == device.model.events.last_seq
    with pytest.raises(DeviceRejected) as refused:
        device.handle(EventLogRead(1, 9))
    assert (refused.value.code, refused.value.field, refused.value.limit) == (ErrorCode.OUT_OF_RANGE, "max_count", 8)


def test_clock_set_forward_is_logged_and_backwards_is_refused():
    device, _ = scs_device()
    ack = device.handle(ClockSet(T0 + 3_600_000))
    assert device.model.events.read(ack.event_seq, 1)[0].code == EventCode.CLOCK_SET
    assert device.handle(ClockRead()).time_ms == T0 + 3_600_000
    assert device.handle(ClockRead()).speed_x1000 == 1_000_000
    with pytest.raises(DeviceRejected) as refused:
        device.handle(ClockSet(T0))
    assert refused.value.code == ErrorCode.STATE_CONFLICT and refused.value.limit == T0 + 3_600_000


def test_acknowledging_an_alarm_that_is_not_up_is_a_state_conflict():
    device, _ = scs_device()
    with pytest.raises(DeviceRejected) as refused:
        device.handle(AlarmAck(EventCode.LOW_RESERVOIR))
    assert refused.value.code == ErrorCode.STATE_CONFLICT


def test_state_is_saved_when_events_grow_and_resumes(tmp_path):
    device, _ = scs_device(tmp_path)
    device.model.inject_fault("battery_failure", {})
    device.tick()
    saved = json.loads((tmp_path / "scs" / "state.json").read_text())
    assert saved["model"]["events"]["next_seq"] == device.model.events.next_seq
    restored = Stimulator.from_state(saved["model"])
    assert restored.status() == device.model.status()


def test_corrupt_or_foreign_state_files_give_a_clear_error(tmp_path):
    store = StateStore(tmp_path / "dev")
    store.directory.mkdir()
    store.state_path.write_text("{not json")
    with pytest.raises(StateError, match="not valid JSON"):
        store.load()
    store.state_path.write_text('{"format": 99}')
    with pytest.raises(StateError, match="format-1"):
        store.load()


def test_pairing_key_is_created_once_and_kept(tmp_path):
    store = StateStore(tmp_path / "dev")
    key, new = store.pairing_key("dev")
    again, new_again = store.pairing_key("dev")
    assert new and not new_again and key == again and len(key) == 32
    assert store.key_path.stat().st_mode & 0o077 == 0


def test_new_events_are_pushed_to_the_open_session():
    """A fault during a session arrives at the client as an EventPush, in order, without polling the log."""
    device, _ = scs_device()
    pair = LoopbackPair(timeout=0.02)
    stop, fail = threading.Event(), threading.Event()

    def serve():
        while not stop.is_set():
            try:
                data = pair.device.read(4096)
            except LinkError:
                return
            if fail.is_set():  # the model belongs to this thread: the fault is raised here, not by the test's
                fail.clear()
                device.model.inject_fault("battery_failure", {})
            out = device.receive(data) if data else device.tick()
            if out:
                pair.device.write(out)

    thread = threading.Thread(target=serve, name="device-loop")
    thread.start()
    try:
        with DeviceClient(pair.host, KEY, timeout=0.5) as client:
            client.identify()
            client.open_session()
            fail.set()
            pushed: list = []
            deadline = time.monotonic() + 2.0
            while not pushed and time.monotonic() < deadline:  # the SESSION_OPENED push may come first, alone
                pushed += [e for e in client.poll_pushes(wait_s=0.2) if e.code != EventCode.SESSION_OPENED]
            assert pushed[0].code == EventCode.BATTERY_FAILURE and pushed[0].state == AlarmState.ACTIVE
            assert [e.seq for e in pushed] == sorted(e.seq for e in pushed)
    finally:
        stop.set()
        pair.close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[event]]\naction = "fault"\nname = "lead_open"\n', "missing 'at'"),
        ('[[event]]\nat = "soon"\naction = "fault"\nname = "x"\n', "not a duration"),
        ('[[event]]\nat = "1d"\naction = "explode"\n', "unknown action 'explode'"),
        ('[[event]]\nat = "1d"\naction = "bolus"\nkind = "CLINICIAN"\n', "Bolus needs 'volume_ul'"),
        ('[[event]]\nat = "1d"\naction = "therapy"\non = true\nspeed = 3\n', r"has no field\(s\) speed"),
        ('[scenario]\ndevice = "toaster"\n', "must be 'scs', 'pump', 'scs-trial' or 'pump-trial', not 'toaster'"),
        ("[[event]\n", "scenario file"),
        ("[patient]\nresponders = 0.5\n", r"\[patient\] has no setting\(s\) responders"),
    ],
)
def test_scenario_errors_name_the_file_the_entry_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match=message) as error:
        Scenario.load(path)
    assert "bad.toml" in str(error.value)


def test_durations():
    assert parse_duration_ms("38d", "x") == 38 * DAY_MS
    assert parse_duration_ms("1.5h", "x") == 5_400_000
    assert parse_duration_ms(90, "x") == 90_000
    assert parse_duration_ms("250ms", "x") == 250


def _run_scenario(name: str, model, until_ms: int) -> Device:
    scenario = Scenario.load(SCENARIOS / name)
    scenario.resume(T0, 0)
    clock = ManualClock(T0)
    device = Device(model, clock, KEY, scenario=scenario)
    clock.set_time(until_ms)
    device.sync()
    return device


def test_shipped_scenario_pump_runs_low_and_is_refilled():
    scenario = Scenario.load(SCENARIOS / "pump-low-reservoir.toml")
    config = PumpConfig(**scenario.config)
    device = _run_scenario("pump-low-reservoir.toml", Pump(config, T0, 3), T0 + 50 * DAY_MS)
    log = device.model.events.read(1, 1000)
    low = [e for e in log if e.code == EventCode.LOW_RESERVOIR]
    assert [(e.state, e.time_ms) for e in low] == [
        (AlarmState.ACTIVE, T0 + 40 * DAY_MS),
        (AlarmState.CLEARED, T0 + 42 * DAY_MS),
    ]
    assert any(e.code == EventCode.REFILL and e.time_ms == T0 + 42 * DAY_MS for e in log)
    assert device.model.status().reservoir_ul > 15_000


def test_shipped_scenario_lead_fracture_is_found_by_the_next_check():
    device = _run_scenario("lead-fracture.toml", Stimulator(ScsConfig(), T0, 5), T0 + 4 * 60_000)
    reading = device.model.apply(ImpedanceCheck())
    assert reading.impedance_ohm[3] == 65535
    assert any(a.code == EventCode.LEAD_OPEN for a in device.model.status().alarms)


def test_shipped_scenario_demo_finds_its_lead_fracture_at_the_next_daily_scan():
    scenario = Scenario.load(SCENARIOS / "demo-scs.toml")
    device = _run_scenario("demo-scs.toml", Stimulator(ScsConfig(**scenario.config), T0, 1), T0 + 42 * DAY_MS)
    opened = [e for e in device.model.events.read(1, 10_000) if e.code == EventCode.LEAD_OPEN]
    assert opened and T0 + 40 * DAY_MS <= opened[0].time_ms <= T0 + 41 * DAY_MS
    assert (opened[0].arg0, opened[0].arg1) == (2, 65535)  # contact 2 reads open
    assert device.model.status().impedance_ohm[2] == 65535
    assert any(a.code == EventCode.LEAD_OPEN for a in device.model.status().alarms)


def test_shipped_scenario_battery_reaches_eri():
    scenario = Scenario.load(SCENARIOS / "battery-eri.toml")
    config = ScsConfig(**scenario.config)
    device = _run_scenario("battery-eri.toml", Stimulator(config, T0, 11), T0 + 365 * DAY_MS)
    codes = [e.code for e in device.model.events.read(1, 1000)]
    assert EventCode.BATTERY_ERI in codes and EventCode.BATTERY_EOS in codes
    assert codes.index(EventCode.BATTERY_ERI) < codes.index(EventCode.BATTERY_EOS)


def test_shipped_scenario_scs_mri_checks_the_leads_scans_and_restores_then_refuses_a_stale_check():
    device = _run_scenario("scs-mri.toml", Stimulator(ScsConfig(), T0, 2), T0 + 6 * DAY_MS)
    log = [(e.time_ms, e.code) for e in device.model.events.read(1, 1000) if e.time_ms >= T0 + 3 * DAY_MS]
    scan, end = T0 + 3 * DAY_MS, T0 + 3 * DAY_MS + 45 * 60_000
    assert log == [
        (scan, EventCode.IMPEDANCE_MEASURED),
        (scan, EventCode.THERAPY_OFF),
        (scan, EventCode.MRI_MODE_ON),
        (end, EventCode.THERAPY_ON),
        (end, EventCode.MRI_MODE_OFF),
    ]  # nothing on day 5: the entry without a fresh check was refused
    status = device.model.status()
    assert status.therapy_on and not status.mri_mode


def test_shipped_scenario_pump_mri_stalls_the_motor_which_restarts_late_and_the_check_waits_for_it():
    device = _run_scenario("pump-mri.toml", Pump(PumpConfig(), T0, 4), T0 + 3 * DAY_MS)
    minute = 60_000
    log = [(e.time_ms, e.code, e.state, e.arg0) for e in device.model.events.read(1, 1000)]
    assert log == [
        (T0 + 2 * DAY_MS, EventCode.BOLUS_STARTED, AlarmState.NONE, 100),
        (T0 + 2895 * minute, EventCode.BOLUS_COMPLETE, AlarmState.NONE, 25),  # cut short 15 min in
        (T0 + 2895 * minute, EventCode.MRI_SUSPEND, AlarmState.ACTIVE, 45),
        (T0 + 3060 * minute, EventCode.MRI_SUSPEND, AlarmState.CLEARED, 0),  # 2 h after the scan
        (T0 + 3060 * minute, EventCode.MRI_RESUME, AlarmState.NONE, 165 * 60),
        (T0 + 3120 * minute, EventCode.MRI_CHECKED, AlarmState.NONE, 0),  # the check at 1 h was refused
    ]
    status = device.model.status()
    assert status.infusing and not (status.mri_suspended or status.mri_check_due)


def test_shipped_scenario_pump_mri_valve_shuts_after_its_leak_until_the_check_resets_it():
    scenario = Scenario.load(SCENARIOS / "pump-mri-valve.toml")
    pump = Pump(PumpConfig(**scenario.config), T0, 4)
    device = _run_scenario("pump-mri-valve.toml", pump, T0 + 2 * DAY_MS)
    log = [(e.time_ms, e.code, e.state, e.arg0) for e in device.model.events.read(1, 1000)]
    reset = T0 + 1560 * 60_000
    assert log == [
        (T0 + DAY_MS + 6_000, EventCode.FAV_CLOSED, AlarmState.ACTIVE, 10),
        (reset, EventCode.FAV_CLOSED, AlarmState.CLEARED, 0),
        (reset, EventCode.FAV_RESET, AlarmState.NONE, 10),
    ]
    assert device.model.status().infusing


def test_shipped_scenario_noisy_link_turns_noise_on_then_drops_the_link():
    device = _run_scenario("noisy-link.toml", Stimulator(ScsConfig(), T0, 7), T0 + 1000)
    assert device.link_faults.flip_rate == 0.0005 and device.link_faults.noise_until_ms == T0 + 600_000
    clock = device.clock
    clock.set_time(T0 + 600_001)
    device.sync()
    assert not device.link_faults.connected(clock.now_ms())
    assert device.link_faults.connected(T0 + 620_000)


def test_shipped_scenario_occlusion_is_found_by_the_true_residual_at_the_refill():
    scenario = Scenario.load(SCENARIOS / "pump-occlusion.toml")
    device = _run_scenario("pump-occlusion.toml", Pump(PumpConfig(**scenario.config), T0, 3), T0 + 31 * DAY_MS)
    log = device.model.events.read(1, 1000)
    assert not [e for e in log if e.code == EventCode.OCCLUSION]  # the pump never sensed it
    (refill,) = [e for e in log if e.code == EventCode.REFILL]  # the first, unaccepted, was refused
    (flag,) = [e for e in log if e.code == EventCode.REFILL_DISCREPANCY]
    assert refill.time_ms == T0 + 30 * DAY_MS
    assert (refill.arg0, refill.arg1, flag.arg1) == (10_000, 5_000, 5_000)  # 10 mL found, 5 mL expected
