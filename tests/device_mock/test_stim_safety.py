"""The stimulator's safety rules (SPEC 4.4): charge-density policy and override, Shannon's k, the
compliance voltage, amplitude / pulse-width / rate steps, shorted contacts turned off, impedance drift."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from device_mock.alarms import ALARMS
from device_mock.faults import Scenario
from device_mock.stim_physics import DensityPolicy, shannon_k
from device_mock.stim_safety import lower_step, max_amplitude_for_shannon, upper_step
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    Actor,
    AlarmState,
    AmplitudeSet,
    Area,
    EventCode,
    ImpedanceCheck,
    Priority,
    StimProgramSet,
    TherapySet,
    Waveform,
)

T0 = 1_700_000_000_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
ROOT = Path(__file__).resolve().parents[2]
SMALL_CONTACT = 0.06  # cm²: Shannon's k = 1.85 lies at 34.3 µC/cm²/phase, above the 30 µC/cm² warning


def area(amp: int = 5000, pw: int = 300, rate: int = 50, anode: int = 0b01, cathode: int = 0b10) -> Area:
    return Area(anode, cathode, amp, pw, rate, Waveform.TONIC, 0, 0, 0, 0)


def program(*areas: Area, number: int = 1, override: bool = False, patient_max: int | None = None) -> StimProgramSet:
    top = max(a.amplitude_ua for a in areas)
    return StimProgramSet(number, True, areas, top if patient_max is None else patient_max, 2, override)


def make(ohm: int = 600, **overrides) -> Stimulator:
    """Every contact at ``ohm``, no noise, no drift, unless overridden."""
    settings = dict(impedance_ohm=(ohm, ohm), impedance_noise=0.0, impedance_drift=0.0)
    settings.update(overrides)
    return Stimulator(ScsConfig(**settings), T0, 1)


def refusal(stim: Stimulator, message) -> DeviceRejected:
    """The refusal of ``message``, after checking that it changed nothing."""
    before = json.dumps(stim.to_state())
    with pytest.raises(DeviceRejected) as refused:
        stim.apply(message)
    assert json.dumps(stim.to_state()) == before
    assert len(refused.value.reason.encode()) <= 160  # ErrorReply.message holds 160 bytes
    return refused.value


def entries(stim: Stimulator, code: EventCode) -> list:
    return [e for e in stim.events.read(1, 10**9) if e.code is code]


# --- 1. charge-density policy --------------------------------------------------------------------
DENSE = area(3800, 500)  # 31.7 µC/cm²/phase on a 0.06 cm² contact, k = 1.78


def test_warn_policy_asks_for_an_override_then_accepts_it_and_logs_it():
    stim = make(contact_area_cm2=SMALL_CONTACT)
    assert stim.config.density_policy is DensityPolicy.WARN  # the default, as Boston's programmers do
    err = refusal(stim, program(DENSE))
    assert (err.code, err.field, err.value, err.limit) == (
        ErrorCode.OVERRIDE_REQUIRED,
        "areas[0].amplitude_ua",
        3800,
        3600,
    )
    assert "31.7 µC/cm²/phase" in err.reason and "30 µC/cm²/phase limit" in err.reason
    assert "explicit override" in err.reason
    ack = stim.apply(program(DENSE, override=True))
    changed, override = stim.events.read(ack.event_seq, 2)
    assert changed.code is EventCode.PROGRAM_CHANGED
    assert (override.code, override.arg0, override.arg1) == (EventCode.DENSITY_OVERRIDE, 3167, 3000)
    assert (override.priority, override.state) == (Priority.NONE, AlarmState.NONE)
    assert EventCode.DENSITY_OVERRIDE not in ALARMS
    assert stim.status().areas == (DENSE,)


def test_the_density_alarm_holds_while_an_override_does():
    stim = make(contact_area_cm2=SMALL_CONTACT)
    stim.apply(program(DENSE, override=True))
    assert [a.code for a in stim.status().alarms] == [EventCode.CHARGE_DENSITY_LIMIT]
    stim.advance_to(T0 + DAY_MS)
    assert [a.code for a in stim.status().alarms] == [EventCode.CHARGE_DENSITY_LIMIT]
    stim.apply(program(area(3600, 500)))  # exactly at the limit: no override needed, none holds
    assert not stim.status().alarms and not entries(stim, EventCode.DENSITY_OVERRIDE)[1:]


def test_refuse_policy_refuses_with_or_without_the_override():
    stim = make(contact_area_cm2=SMALL_CONTACT, density_policy="refuse")
    for override in (False, True):
        err = refusal(stim, program(DENSE, override=override))
        assert (err.code, err.field, err.value, err.limit) == (
            ErrorCode.OUT_OF_RANGE,
            "areas[0].amplitude_ua",
            3800,
            3600,
        )


def test_an_override_that_is_not_needed_logs_nothing():
    stim = make(contact_area_cm2=SMALL_CONTACT)
    stim.apply(program(area(3000, 500), override=True))
    assert not entries(stim, EventCode.DENSITY_OVERRIDE)


def test_a_clinicians_amplitude_follows_the_stored_programs_override():
    stim = make(contact_area_cm2=SMALL_CONTACT)
    stim.apply(program(area(3000, 500), patient_max=4000))
    err = refusal(stim, AmplitudeSet(0, 3800))
    assert (err.code, err.limit) == (ErrorCode.OVERRIDE_REQUIRED, 3600)
    stim.apply(program(area(3000, 500), patient_max=4000, override=True))
    ack = stim.apply(AmplitudeSet(0, 3800), Actor.CLINICIAN)
    changed, override = stim.events.read(ack.event_seq, 2)
    assert (changed.code, override.code, override.arg0) == (
        EventCode.AMPLITUDE_CHANGED,
        EventCode.DENSITY_OVERRIDE,
        3167,
    )


def test_a_patient_never_overrides_but_may_always_turn_down():
    stim = make(contact_area_cm2=SMALL_CONTACT)
    stim.apply(program(area(3000, 500), patient_max=4000, override=True))
    before = json.dumps(stim.to_state())
    with pytest.raises(DeviceRejected) as refused:
        stim.apply(AmplitudeSet(0, 3800), Actor.PATIENT)
    err = refused.value
    assert (err.code, err.field, err.value, err.limit) == (ErrorCode.OUT_OF_RANGE, "amplitude_ua", 3800, 3600)
    assert "only the clinician can override" in err.reason and len(err.reason.encode()) <= 160
    assert json.dumps(stim.to_state()) == before
    stim.apply(AmplitudeSet(0, 3600), Actor.PATIENT)  # up to the limit is the patient's own range
    stim.apply(program(DENSE, patient_max=4000, override=True))  # the clinician goes beyond it
    stim.apply(AmplitudeSet(0, 3700), Actor.PATIENT)  # still above, but lower: allowed
    assert stim.status().areas[0].amplitude_ua == 3700


def test_old_saved_programs_load_without_an_override():
    stim = make()
    stim.apply(program(area()))
    state = json.loads(json.dumps(stim.to_state()))
    for saved in state["programs"]:
        del saved["density_override"]  # as a state saved before the field existed
    assert Stimulator.from_state(state).status() == stim.status()


# --- 2. Shannon ------------------------------------------------------------------------------------
def test_shannon_k_is_reported_signed_and_zero_without_a_program():
    assert shannon_k(3500, 300, 1, 0.123) == pytest.approx(math.log10(1.05 / 0.123) + math.log10(1.05))
    stim = make()
    assert stim.status().shannon_k_x100 == 0
    stim.apply(program(area(3500, 300), area(600, 1000, anode=0b100, cathode=0b1000)))
    assert stim.status().shannon_k_x100 == 95  # the higher of k 0.95 and 0.47
    stim.apply(program(Area(0b01, 0b10, 2500, 30, 10_000, Waveform.HIGH_FREQUENCY, 0, 0, 0, 0)))
    assert stim.status().shannon_k_x100 == -134  # 0.075 µC on 0.123 cm²: k = -1.34
    stim.apply(program(area(0, 300)))
    assert stim.status().shannon_k_x100 == 0  # no charge at all


def test_shannon_refuses_at_k_185_naming_the_largest_amplitude_whatever_the_override():
    stim = make()
    most = max_amplitude_for_shannon(500, 1, stim.config)
    assert most == 5900
    assert shannon_k(5900, 500, 1, 0.123) < 1.85 <= shannon_k(5950, 500, 1, 0.123)
    for override in (False, True):
        err = refusal(stim, program(area(10_000, 500), override=override))
        assert (err.code, err.field, err.value, err.limit) == (
            ErrorCode.OUT_OF_RANGE,
            "areas[0].amplitude_ua",
            10_000,
            5900,
        )
        assert "Shannon k 2.31" in err.reason
    stim.apply(program(area(5900, 500)))
    small = make(contact_area_cm2=SMALL_CONTACT)
    err = refusal(small, program(area(4200, 500), override=True))  # over the density warning and Shannon
    assert (err.code, err.limit) == (ErrorCode.OUT_OF_RANGE, 4100)


def test_with_the_default_contact_shannon_binds_below_the_density_warning():
    """k = log(Q² / A): on 0.123 cm², k = 1.85 at 24.0 µC/cm²/phase, so no density override is reachable."""
    c = ScsConfig()
    density_at_k = math.sqrt(10**c.shannon_k_limit / c.contact_area_cm2)
    assert density_at_k == pytest.approx(23.99, abs=0.01)
    assert density_at_k < c.charge_density_limit
    stim = make()
    err = refusal(stim, program(area(3100, 1000), override=True))  # 25.2 µC/cm²/phase: under 30, over Shannon
    assert err.code is ErrorCode.OUT_OF_RANGE and "Shannon" in err.reason


# --- 3. compliance voltage -------------------------------------------------------------------------
def test_ten_milliamps_into_four_kilohms_is_refused_and_into_600_ohms_accepted():
    high = make(ohm=3900)
    assert high.status().impedance_ohm[:2] == (3900, 3900)  # below the 4,000 Ω open threshold
    err = refusal(high, program(area(10_000, 200)))
    assert (err.code, err.field, err.value, err.limit) == (
        ErrorCode.OUT_OF_RANGE,
        "areas[0].amplitude_ua",
        10_000,
        3050,
    )
    assert "10 mA into 3,900 Ω needs 39 V; the stimulator can drive at most 12 V: at most 3050 µA" in err.reason
    high.apply(program(area(3050, 200)))  # 11.9 V fits
    low = make(ohm=600)
    low.apply(program(area(10_000, 200)))  # 6 V
    assert low.status().areas[0].amplitude_ua == 10_000
    make(ohm=3900, compliance_mv=50_000).apply(program(area(10_000, 200)))  # a stage with 50 V compliance


def test_compliance_uses_the_last_measured_impedance_not_the_true_one():
    stim = make(ohm=2000, impedance_drift=0.5, impedance_drift_tau_days=10.0)
    stim.advance_to(T0 + 60 * DAY_MS)  # truly about 3,000 Ω now, but still read as 2,000 Ω
    stim.apply(program(area(5500, 200)))  # 11 V at the reading
    stim.apply(ImpedanceCheck())
    assert stim.status().impedance_ohm[0] > 2900
    err = refusal(stim, program(area(5500, 200), number=2))
    assert err.code is ErrorCode.OUT_OF_RANGE and err.limit < 4050


# --- 4. steps --------------------------------------------------------------------------------------
AXIUM = ((0, 25), (2000, 50))


@pytest.mark.parametrize(
    ("value", "low", "up"),
    [(0, 0, 0), (10, 0, 25), (1990, 1975, 2000), (2000, 2000, 2000), (2025, 2000, 2050), (25_500, 25_500, 25_500)],
)
def test_step_neighbours_across_the_bands(value, low, up):
    assert (lower_step(value, AXIUM), upper_step(value, AXIUM)) == (low, up)


@pytest.mark.parametrize(
    ("changed", "field", "value", "nearest", "listed"),
    [
        (dict(amp=3510), "areas[0].amplitude_ua", 3510, 3500, "3500 or 3550 µA"),
        (dict(amp=1990), "areas[0].amplitude_ua", 1990, 2000, "1975 or 2000 µA"),
        (dict(amp=2025), "areas[0].amplitude_ua", 2025, 2000, "2000 or 2050 µA"),  # a tie goes down
        (dict(amp=1010), "areas[0].amplitude_ua", 1010, 1000, "1000 or 1025 µA"),
        (dict(pw=305), "areas[0].pulse_width_us", 305, 300, "300 or 310 µs"),
        (dict(pw=308), "areas[0].pulse_width_us", 308, 310, "300 or 310 µs"),
    ],
)
def test_a_value_off_the_steps_is_refused_naming_the_nearest_valid_values(changed, field, value, nearest, listed):
    err = refusal(make(), program(area(**changed)))
    assert (err.code, err.field, err.value, err.limit) == (ErrorCode.OFF_STEP, field, value, nearest)
    assert f"nearest valid {listed}" in err.reason


def test_step_sizes_are_config_fields():
    stim = make(rate_step_hz=2, pulse_width_step_us=20, amplitude_steps_ua=[[0, 100]])
    err = refusal(stim, program(area(rate=51)))
    assert (err.code, err.field, err.limit) == (ErrorCode.OFF_STEP, "areas[0].rate_hz", 50)
    assert refusal(stim, program(area(pw=310))).limit == 300
    assert refusal(stim, program(area(amp=5050))).limit == 5000
    stim.apply(program(area(5100, 320, 52)))
    with pytest.raises(ValueError, match="amplitude_steps_ua"):
        ScsConfig(amplitude_steps_ua=((100, 25),))  # must cover the lowest amplitude
    with pytest.raises(ValueError, match="amplitude_steps_ua"):
        ScsConfig(amplitude_steps_ua=((0, 0),))


def _scenario_programs() -> list[tuple[str, StimProgramSet]]:
    found = []
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        scenario = Scenario.load(path)
        found += [(path.name, a.params["message"]) for a in scenario.actions if a.action == "program"]
    return found


@pytest.mark.parametrize(("name", "message"), _scenario_programs())
def test_the_demo_scenarios_programs_meet_every_default_rule(name, message):
    for seed in range(5):  # the impedances the seeds draw (500-1500 Ω) all take them
        stim = Stimulator(ScsConfig(), T0, seed)
        stim.apply(message)
        stim.apply(TherapySet(True))


# --- 5. shorts turn contacts off -------------------------------------------------------------------
def test_a_short_found_turns_its_areas_off_until_a_check_reads_it_good():
    stim = make()
    second = area(3000, 300, anode=0b100, cathode=0b1000)
    stim.apply(program(area(), second))
    stim.apply(TherapySet(True))
    both, one = stim.tissue_power_w(), stim.tissue_power_w() - 0.45e-3
    stim.inject_fault("lead_short", {"contact": 1})
    assert 0 < stim.tissue_power_w() < both  # delivering into the short until a check finds it
    stim.apply(ImpedanceCheck())
    assert stim.tissue_power_w() == pytest.approx(one)  # the first area is off, the second goes on
    assert stim.battery_power_w() == pytest.approx(one / 0.5 + 20e-6)
    disabled = entries(stim, EventCode.CONTACTS_DISABLED)
    assert [(e.arg0, e.arg1, e.priority) for e in disabled] == [(0b10, 1, Priority.NONE)]
    assert stim.status().disabled_contacts == 0b10
    stim.apply(ImpedanceCheck())  # still short: the set is the same, nothing new logged
    stim.inject_fault("clear_lead", {"contact": 1})
    assert stim.tissue_power_w() == pytest.approx(one)  # mended, but not yet measured
    assert len(entries(stim, EventCode.CONTACTS_DISABLED)) == 1
    err = refusal(stim, program(area(4000)))
    assert (err.code, err.field) == (ErrorCode.STATE_CONFLICT, "areas[0].cathode_mask")  # as before
    stim.apply(ImpedanceCheck())
    assert [(e.arg0, e.arg1) for e in entries(stim, EventCode.CONTACTS_DISABLED)] == [(0b10, 1), (0, 0)]
    assert stim.tissue_power_w() == pytest.approx(both) and stim.status().disabled_contacts == 0


def test_the_disabled_mask_names_contact_31_and_survives_a_restart():
    stim = make(contacts=32)
    stim.inject_fault("lead_short", {"contact": 31})
    stim.apply(ImpedanceCheck())
    event = entries(stim, EventCode.CONTACTS_DISABLED)[0]
    assert (event.arg0, event.arg1) == (-(1 << 31), 1)  # the mask as i32 bits
    assert stim.status().disabled_contacts == 1 << 31
    copy = Stimulator.from_state(json.loads(json.dumps(stim.to_state())))
    assert copy.status() == stim.status()


# --- 6. impedance drift ----------------------------------------------------------------------------
def factor(days: float, drift: float = 0.3, tau: float = 30.0) -> float:
    return 1 + drift * (1 - math.exp(-days / tau))


def test_readings_follow_the_drift_in_daily_steps():
    stim = make(ohm=1000, impedance_drift=0.3)
    assert stim.status().impedance_ohm[0] == 1000  # the implant-time check
    for at_ms, days in [(30 * DAY_MS, 30), (30 * DAY_MS + 23 * HOUR_MS, 30), (365 * DAY_MS, 365)]:
        stim.advance_to(T0 + at_ms)
        stim.apply(ImpedanceCheck())
        assert stim.status().impedance_ohm[0] == round(1000 * factor(days))
    assert stim.status().impedance_ohm[0] == 1300  # settled: +30 %


def test_tissue_power_steps_with_the_drift_and_the_steps_are_breakpoints():
    stim = make(ohm=600, impedance_drift=0.3, impedance_drift_tau_days=5.0)
    stim.apply(program(area()))
    stim.apply(TherapySet(True))
    logged = stim.events.last_seq
    stim.advance_to(T0 + 10 * DAY_MS)  # one call: it must still stop at every daily step
    # A current source puts I² · Z into tissue: each day at that day's impedance, 0.45 mW at 600 Ω.
    expected = sum(0.45e-3 * factor(day, tau=5.0) * 86_400 for day in range(10))
    assert stim.tissue_energy_j == pytest.approx(expected, rel=1e-9)
    assert stim.tissue_power_w() == pytest.approx(0.45e-3 * factor(10, tau=5.0), rel=1e-12)
    assert stim.events.last_seq == logged  # a drift step logs nothing


def test_drift_in_one_call_equals_many_small_ones():
    def run(step_ms: int | None) -> Stimulator:
        stim = make(ohm=900, impedance_drift=0.3, impedance_scan_h=24.0)
        stim.apply(program(Area(0b01, 0b10, 2500, 30, 10_000, Waveform.HIGH_FREQUENCY, 0, 0, 0, 0)))  # charges often
        stim.apply(TherapySet(True))
        end = T0 + 120 * DAY_MS
        for t in range(T0 + (step_ms or end), end, step_ms or end):
            stim.advance_to(t)
        stim.advance_to(end)
        return stim

    one, fine = run(None), run(7 * HOUR_MS + 13)
    a, b = one.events.read(1, 10**9), fine.events.read(1, 10**9)
    assert [(e.code, e.state) for e in a] == [(e.code, e.state) for e in b]
    assert max(abs(x.time_ms - y.time_ms) for x, y in zip(a, b, strict=True)) <= 1
    assert any(e.code is EventCode.CHARGING_COMPLETE for e in a)
    assert one.status().impedance_ohm == fine.status().impedance_ohm
    assert one.tissue_energy_j == pytest.approx(fine.tissue_energy_j, rel=1e-9)
    assert one.status() == fine.status()


def test_no_drift_adds_no_breakpoints_and_drift_stops_once_settled():
    flat = make(impedance_drift=0.0)
    assert flat._next_drift_ms() == 0
    flat.advance_to(T0 + 365 * DAY_MS)
    flat.apply(ImpedanceCheck())
    assert flat.status().impedance_ohm[0] == 600
    drifting = make(impedance_drift=0.3)
    assert drifting._next_drift_ms() == T0 + DAY_MS
    drifting.advance_to(T0 + 5 * 365 * DAY_MS)  # exp(-days / 30) is below a float's resolution of 1.3 by now
    assert drifting._next_drift_ms() == 0


def test_a_state_saved_before_drift_existed_drifts_from_its_load():
    stim = make(impedance_drift=0.3)
    stim.advance_to(T0 + 100 * DAY_MS)
    state = json.loads(json.dumps(stim.to_state()))
    del state["_implant_ms"]
    copy = Stimulator.from_state(state)
    assert copy._next_drift_ms() == copy.now_ms + DAY_MS and copy._drift_index() == 0


# --- config ----------------------------------------------------------------------------------------
def test_config_checks_and_round_trips_the_new_fields():
    with pytest.raises(ValueError, match="max_programs 17"):
        ScsConfig(max_programs=17)  # the status mask names 16
    with pytest.raises(ValueError, match="valid: refuse, warn"):
        ScsConfig(density_policy="ignore")
    with pytest.raises(ValueError, match="impedance_drift"):
        ScsConfig(impedance_drift_tau_days=0)
    config = ScsConfig(density_policy="refuse", amplitude_steps_ua=[[0, 10], [1000, 20]], impedance_drift=0.1)
    assert config.density_policy is DensityPolicy.REFUSE and config.amplitude_steps_ua == ((0, 10), (1000, 20))
    assert ScsConfig(**json.loads(json.dumps(config.to_dict()))) == config
    assert dataclasses.replace(config, impedance_drift=0.0).impedance_drift == 0.0
