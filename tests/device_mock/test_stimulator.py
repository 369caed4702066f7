"""The SCS model: drain physics, closed form vs stepping, determinism, limits, alarms, faults, persistence."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_mock.alarms import ALARMS, EventLog
from device_mock.battery import DAY_S, YEAR_S, RechargeableCellConfig
from device_mock.stim_cells import daily_charge_minutes, program_draw_w
from device_mock.stim_physics import (
    LONG_LIFE_TONIC_CELL,
    LOW_DOSE_BURST_CELL,
    PRIMARY_CELLS,
    charge_density,
    effective_rate_hz,
    split,
    tissue_power_w,
)
from device_mock.stimulator import FAULTS, OPEN_READING, ScsConfig, Stimulator
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    AlarmState,
    Area,
    BatteryKind,
    BatteryState,
    Capability,
    ChargingSet,
    CommandAck,
    DosingMode,
    DosingSet,
    EventCode,
    ImpedanceCheck,
    ImpedanceReply,
    PatientBolusSettings,
    Priority,
    StimProgramSet,
    TherapySet,
    Waveform,
)

T0 = 1_700_000_000_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
YEAR_MS = round(YEAR_S * 1000)
TAIL_MS = round(RechargeableCellConfig().charge_tail_min * 60_000)  # a session's top-off once full
PRIMARY, RECHARGEABLE = BatteryKind.PRIMARY, BatteryKind.RECHARGEABLE


def area(amp: int = 5000, pw: int = 300, rate: int = 50, **kw) -> Area:
    """A tonic bipolar area (anode 0, cathode 1) unless overridden."""
    fields = dict(anode_mask=0b01, cathode_mask=0b10, waveform=Waveform.TONIC, burst_pulses=0, burst_rate_hz=0)
    fields.update(cycle_on_s=0, cycle_off_s=0)
    fields.update(kw)
    return Area(amplitude_ua=amp, pulse_width_us=pw, rate_hz=rate, **fields)


HF = dict(amp=2500, pw=30, rate=10_000, waveform=Waveform.HIGH_FREQUENCY)
BURST = dict(amp=600, pw=1000, rate=40, waveform=Waveform.BURST, burst_pulses=5, burst_rate_hz=500)
MICRODOSED_BURST = dict(BURST, cycle_on_s=30, cycle_off_s=90)


def program(*areas: Area, number: int = 1, activate: bool = True, patient_max: int | None = None) -> StimProgramSet:
    areas = areas or (area(),)
    top = max(a.amplitude_ua for a in areas)
    return StimProgramSet(number, activate, areas, top if patient_max is None else patient_max, 2)


def make(kind: BatteryKind = RECHARGEABLE, seed: int = 1, ohm: int = 600, **overrides) -> Stimulator:
    """A stimulator with every contact at ``ohm``, no measurement noise and no drift unless overridden."""
    settings_ = dict(battery_kind=kind, impedance_ohm=(ohm, ohm), impedance_noise=0.0, impedance_drift=0.0)
    settings_.update(overrides)
    return Stimulator(ScsConfig(**settings_), T0, seed)


def running(*areas: Area, kind: BatteryKind = RECHARGEABLE, **overrides) -> Stimulator:
    stim = make(kind, **overrides)
    stim.apply(program(*areas))
    stim.apply(TherapySet(True))
    return stim


def log(stim: Stimulator) -> list[tuple[int, EventCode, AlarmState]]:
    return [(e.time_ms, e.code, e.state) for e in stim.events.read(1, 10**9)]


def first(stim: Stimulator, code: EventCode, state: AlarmState = AlarmState.ACTIVE):
    return next(e for e in stim.events.read(1, 10**9) if e.code is code and e.state is state)


def no_fade(**kw) -> RechargeableCellConfig:
    return RechargeableCellConfig(fade_per_year=0.0, fade_per_cycle=0.0, **kw)


# --- physics ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "ohm", "tissue_uw"),
    [
        (dict(amp=5000, pw=300, rate=50), 600, 450.0),  # docs/devices.md 1.5 worked examples
        (dict(amp=3000, pw=200, rate=60), 800, 172.8),
        (HF, 600, 2250.0),
        (BURST, 525, 75.6),
        (MICRODOSED_BURST, 525, 18.9),
    ],
)
def test_tissue_power_matches_the_worked_examples(params, ohm, tissue_uw):
    a = area(**params)
    assert tissue_power_w(a, ohm, 2.0) * 1e6 == pytest.approx(tissue_uw, rel=1e-9)
    stim = running(a, ohm=ohm)
    assert stim.status().tissue_power_uw == round(tissue_uw)
    assert stim.battery_power_w() == pytest.approx(tissue_uw * 1e-6 / 0.5 + 20e-6, rel=1e-12)


def test_effective_rate_counts_burst_pulses_and_cycling():
    assert effective_rate_hz(area(**BURST)) == 200.0
    assert effective_rate_hz(area(**MICRODOSED_BURST)) == 50.0
    assert effective_rate_hz(area(cycle_on_s=10, cycle_off_s=30)) == 12.5


def test_charge_density_examples_and_highest_in_status():
    assert charge_density(5000, 300, 1, 0.123) == pytest.approx(12.195, abs=1e-3)
    assert charge_density(10_000, 500, 1, 0.123) == pytest.approx(40.65, abs=1e-2)
    stim = running(area(), area(amp=4000, pw=400, anode_mask=0b100, cathode_mask=0b1000))
    assert stim.status().charge_density_x100 == round(4000 * 400e-6 / 0.123 * 100)


@pytest.mark.parametrize("kind", [PRIMARY, RECHARGEABLE])
def test_battery_energy_over_a_day_is_power_times_time(kind):
    stim = running(area(), kind=kind)
    power = 0.45e-3 / 0.5 + 20e-6
    assert stim.battery_power_w() == pytest.approx(power, rel=1e-12)
    before = stim.cell.battery.to_state()
    stim.advance_to(T0 + DAY_MS)
    after = stim.cell.battery.to_state()
    key = "remaining_j" if kind is PRIMARY else "charge_j"
    assert before[key] - after[key] == pytest.approx(power * DAY_S, rel=1e-9)
    assert stim.battery_energy_j == pytest.approx(power * DAY_S, rel=1e-12)
    assert stim.tissue_energy_j == pytest.approx(0.45e-3 * DAY_S, rel=1e-12)


def test_telemetry_session_and_supply_voltage_change_the_drain():
    stim = running(area())
    base = stim.battery_power_w()
    days = stim.status().days_to_recharge_x100
    stim.set_telemetry_active(True)
    assert stim.battery_power_w() == pytest.approx(base + 2e-3, rel=1e-12)
    assert stim.status().days_to_recharge_x100 < days
    # A 5 V current-source stage draws I·V per phase: 2 x 5 mA x 5 V x 300 µs x 50 Hz = 0.75 mW.
    fixed = running(area(), supply_mv=5000)
    assert fixed.battery_power_w() == pytest.approx(0.75e-3 + 20e-6, rel=1e-12)


# --- closed form vs fine stepping ------------------------------------------------------------------
def _run_20_years(stim: Stimulator, step_ms: int | None) -> Stimulator:
    end = T0 + 20 * YEAR_MS
    if step_ms is None:
        stim.advance_to(end)
    else:
        for t in range(T0 + step_ms, end + 1, step_ms):
            stim.advance_to(t)
        stim.advance_to(end)
    return stim


@pytest.mark.parametrize(
    ("kind", "params"),
    [(PRIMARY, MICRODOSED_BURST), (PRIMARY, dict(amp=3000, pw=200, rate=60)), (RECHARGEABLE, {})],
)
def test_twenty_years_in_one_call_equals_hourly_steps(kind, params):
    one, fine = (running(area(**params), kind=kind, impedance_scan_h=24.0) for _ in range(2))
    _run_20_years(one, None)
    _run_20_years(fine, HOUR_MS)
    a, b = log(one), log(fine)
    assert [(c, s) for _, c, s in a] == [(c, s) for _, c, s in b]
    assert max(abs(x[0] - y[0]) for x, y in zip(a, b, strict=True)) <= 0.001 * 20 * YEAR_MS
    assert one.battery_energy_j == pytest.approx(fine.battery_energy_j, rel=1e-3)
    assert one.cell.fraction(one.now_ms) == pytest.approx(fine.cell.fraction(fine.now_ms), rel=1e-3, abs=1e-9)
    # Hourly drains round differently from one drain of the whole day: a crossing may move by 1 ms.
    x, y = one.status(), fine.status()
    assert abs(x.eri_ms - y.eri_ms) <= 1 and abs(x.eos_ms - y.eos_ms) <= 1
    assert dataclasses.replace(x, eri_ms=0, eos_ms=0) == dataclasses.replace(y, eri_ms=0, eos_ms=0)
    assert any(code is EventCode.BATTERY_EOS for _, code, _ in a) == (kind is PRIMARY)


# --- determinism -----------------------------------------------------------------------------------
def _seeded(seed: int) -> tuple[Stimulator, list[ImpedanceReply]]:
    stim = Stimulator(ScsConfig(impedance_scan_h=24.0), T0, seed)
    stim.apply(program())
    replies = []
    for day in range(1, 31):
        stim.advance_to(T0 + day * DAY_MS + 5 * HOUR_MS)
        replies.append(stim.apply(ImpedanceCheck()))
    return stim, replies


def test_same_seed_gives_identical_readings_and_logs_and_another_seed_differs():
    a, replies_a = _seeded(7)
    b, replies_b = _seeded(7)
    _, replies_c = _seeded(8)
    assert replies_a == replies_b
    assert a.events.to_state() == b.events.to_state()
    assert a.status() == b.status()
    assert [r.impedance_ohm for r in replies_a] != [r.impedance_ohm for r in replies_c]
    readings = [z for r in replies_a for z in r.impedance_ohm]
    drifted = 1 + 0.3 * (1 - math.exp(-31 / 30))  # the default drift after a month
    assert 400 < min(readings) and max(readings) < 1.1 * 1500 * drifted  # 500-1500 Ω baselines, 2 % noise
    assert len({r.impedance_ohm for r in replies_a}) == len(replies_a)  # noise differs between checks


def test_scheduled_scans_run_at_their_exact_times():
    stim = make(impedance_scan_h=24.0)
    stim.advance_to(T0 + 10 * DAY_MS + 1)
    scans = [t for t, code, _ in log(stim) if code is EventCode.IMPEDANCE_MEASURED]
    assert scans == [T0 + d * DAY_MS for d in range(11)]  # day 0 is the implant-time check


# --- limits ----------------------------------------------------------------------------------------
PAIRS = dict(anode_mask=0b0011, cathode_mask=0b1100)
LIMIT_CASES = [
    (program(area(amp=25_501)), "areas[0].amplitude_ua", 25_501, 25_500),
    (program(area(amp=-1), patient_max=0), "areas[0].amplitude_ua", -1, 0),
    (program(area(pw=19)), "areas[0].pulse_width_us", 19, 20),
    (program(area(pw=1001, rate=2)), "areas[0].pulse_width_us", 1001, 1000),
    (program(area(rate=1)), "areas[0].rate_hz", 1, 2),
    (program(area(rate=1201)), "areas[0].rate_hz", 1201, 1200),
    (program(area(**dict(HF, rate=10_001))), "areas[0].rate_hz", 10_001, 10_000),
    (program(area(**dict(HF, pw=60))), "areas[0].pulse_width_us", 60, 50),  # two phases fit 100 µs
    (program(area(amp=20_001, pw=20, **PAIRS)), "areas[0].amplitude_ua", 20_001, 20_000),  # per area
    (program(area(amp=12_701, pw=20)), "areas[0].amplitude_ua", 12_701, 12_700),  # per contact
    (program(area(amp=10_000, pw=500)), "areas[0].amplitude_ua", 10_000, 5900),  # Shannon k 1.85 binds first
    (program(area(anode_mask=0)), "areas[0].anode_mask", 0, 1),
    (program(area(cathode_mask=0)), "areas[0].cathode_mask", 0, 1),
    (program(area(anode_mask=0b11, cathode_mask=0b10)), "areas[0].cathode_mask", 0b10, 0),
    (program(area(cathode_mask=1 << 16)), "areas[0].cathode_mask", 16, 15),
    (program(area(**dict(BURST, burst_pulses=11))), "areas[0].burst_pulses", 11, 10),
    (program(area(**dict(BURST, burst_rate_hz=1001))), "areas[0].burst_rate_hz", 1001, 1000),
    (program(area(**dict(BURST, rate=101))), "areas[0].rate_hz", 101, 100),
    (program(area(**dict(BURST, rate=60, burst_pulses=10))), "areas[0].rate_hz", 60, 50),  # train fits period
    (program(area(burst_pulses=3)), "areas[0].burst_pulses", 3, 0),
    (program(area(cycle_on_s=5401, cycle_off_s=10)), "areas[0].cycle_on_s", 5401, 5400),
    (program(area(cycle_on_s=10, cycle_off_s=0)), "areas[0].cycle_off_s", 0, 1),
    (program(area(cycle_off_s=10)), "areas[0].cycle_off_s", 10, 0),
    (program(area(), area(amp=9000, pw=100), patient_max=5000), "patient_amp_max_ua", 5000, 9000),
    (program(area(), patient_max=25_501), "patient_amp_max_ua", 25_501, 25_500),
    (dataclasses.replace(program(), ramp_s=11), "ramp_s", 11, 10),
    (program(number=0), "program", 0, 1),
    (program(number=17), "program", 17, 16),
    (program(*[area()] * 5), "areas", 5, 4),
    (dataclasses.replace(program(), areas=()), "areas", 0, 1),
    (program(area(), area(amp=-5)), "areas[1].amplitude_ua", -5, 0),
]


@pytest.mark.parametrize(("message", "field", "value", "limit"), LIMIT_CASES)
def test_every_limit_refuses_naming_field_value_and_limit_and_changes_nothing(message, field, value, limit):
    stim = running(area(amp=3000), area(amp=2000, anode_mask=0b100, cathode_mask=0b1000))
    stim.advance_to(T0 + DAY_MS)
    status, state = stim.status(), json.dumps(stim.to_state())
    with pytest.raises(DeviceRejected) as refused:
        stim.apply(message)
    err = refused.value
    assert (err.code, err.field, err.value, err.limit) == (ErrorCode.OUT_OF_RANGE, field, value, limit)
    assert field in str(err) and str(value) in str(err)
    assert stim.status() == status
    assert json.dumps(stim.to_state()) == state


def _within_limits(a: Area, c: ScsConfig, ohm: int = 600) -> bool:
    """Independent statement of the limits a stored area must satisfy (contacts at ``ohm``, no override)."""
    rates = {Waveform.HIGH_FREQUENCY: c.hf_rate_hz, Waveform.BURST: c.burst_train_hz}.get(a.waveform, c.rate_hz)
    pulse_rate = a.burst_rate_hz if a.waveform is Waveform.BURST else a.rate_hz
    n = split(a)
    charge_uc = a.amplitude_ua / n * a.pulse_width_us * 1e-6
    return (
        a.amplitude_ua % (25 if a.amplitude_ua < 2000 else 50) == 0  # Axium steps
        and a.pulse_width_us % 10 == 0
        and a.amplitude_ua * 1e-6 * ohm <= 12.0  # a 1+/n- area of equal contacts is an ``ohm`` load at most
        and (charge_uc == 0 or math.log10(charge_uc**2 / c.contact_area_cm2) < 1.85)
    ) and (
        0 <= a.amplitude_ua <= min(c.area_cap_ua, c.contact_cap_ua * n)
        and c.pulse_width_us[0] <= a.pulse_width_us <= c.pulse_width_us[1]
        and rates[0] <= a.rate_hz <= rates[1]
        and 2 * a.pulse_width_us * pulse_rate <= 1_000_000
        and a.amplitude_ua / n * a.pulse_width_us * 1e-6 / c.contact_area_cm2 <= c.charge_density_limit
    )


SAFETY_CODES = (ErrorCode.OUT_OF_RANGE, ErrorCode.OFF_STEP, ErrorCode.OVERRIDE_REQUIRED)


@settings(max_examples=300, deadline=None)
@given(
    amp=st.one_of(st.integers(-(10**6), 10**7), st.integers(0, 1020).map(lambda n: 25 * n)),
    pw=st.one_of(st.integers(-(10**6), 10**7), st.integers(0, 101).map(lambda n: 10 * n)),
    rate=st.integers(-(10**6), 10**7),
    waveform=st.sampled_from(Waveform),
    cathodes=st.integers(1, 3),
)
def test_the_model_never_holds_an_out_of_range_program(amp, pw, rate, waveform, cathodes):
    stim = make()
    extra = dict(burst_pulses=5, burst_rate_hz=500) if waveform is Waveform.BURST else {}
    cathode_mask = ((1 << cathodes) - 1) << 4
    candidate = program(area(amp, pw, rate, waveform=waveform, cathode_mask=cathode_mask, **extra), patient_max=0)
    candidate = dataclasses.replace(candidate, patient_amp_max_ua=max(0, amp))
    before = json.dumps(stim.to_state())
    try:
        stim.apply(candidate)
    except DeviceRejected as err:
        assert err.code in SAFETY_CODES and err.field
        assert json.dumps(stim.to_state()) == before
    assert all(_within_limits(a, stim.config) for a in stim.status().areas)


def test_state_conflicts_and_unsupported_commands():
    stim = make()
    with pytest.raises(DeviceRejected) as refused:
        stim.apply(TherapySet(True))
    assert refused.value.code is ErrorCode.STATE_CONFLICT  # no program yet
    dosing = DosingSet(DosingMode.CONTINUOUS, 100, (), PatientBolusSettings(False, 0, 0, 0, 0), 0)
    with pytest.raises(DeviceRejected) as refused:
        stim.apply(dosing)
    assert refused.value.code is ErrorCode.UNSUPPORTED
    assert stim.apply(program(activate=False)) == CommandAck(stim.events.last_seq)
    assert stim.status().active_program == 0  # stored, not active
    assert stim.apply(TherapySet(False)) == CommandAck(0)  # already off: nothing logged


def test_charge_density_alarm_while_the_patient_range_could_exceed_the_limit():
    stim = running(area(amp=5000, pw=500))  # 40.7 µC/cm² at 10 mA, the patient's maximum below
    stim.apply(program(area(amp=5000, pw=500), patient_max=10_000))
    alarm = first(stim, EventCode.CHARGE_DENSITY_LIMIT)
    assert alarm.priority is ALARMS[EventCode.CHARGE_DENSITY_LIMIT].priority is Priority.LOW
    stim.apply(program(area(amp=5000, pw=500), patient_max=7000))
    assert log(stim)[-1][1:] == (EventCode.CHARGE_DENSITY_LIMIT, AlarmState.CLEARED)


# --- alarms at their thresholds --------------------------------------------------------------------
def test_primary_eri_at_the_reserve_then_eos_stops_stimulation():
    stim = running(area(), kind=PRIMARY)
    power, cell = stim.battery_power_w(), stim.config.primary
    reserve = cell.nominal_power_w * cell.eri_reserve_days * DAY_S
    projected = stim.status()
    stim.advance_to(T0 + 2 * YEAR_MS)
    eri, eos = first(stim, EventCode.BATTERY_ERI), first(stim, EventCode.BATTERY_EOS)
    assert abs(eri.time_ms - (T0 + (cell.capacity_j - reserve) / power * 1000)) <= 1
    assert abs(eos.time_ms - (T0 + cell.capacity_j / power * 1000)) <= 1
    assert (projected.eri_ms, projected.eos_ms) == (eri.time_ms, eos.time_ms)
    assert eri.priority is ALARMS[EventCode.BATTERY_ERI].priority is Priority.MEDIUM
    assert eos.priority is ALARMS[EventCode.BATTERY_EOS].priority is Priority.HIGH
    assert first(stim, EventCode.THERAPY_OFF, AlarmState.NONE).time_ms == eos.time_ms
    status = stim.status()
    assert (status.battery_state, status.therapy_on, status.battery_pct_x100) == (BatteryState.EOS, False, 0)
    assert (status.eri_ms, status.eos_ms) == (eri.time_ms, eos.time_ms)
    for command in (TherapySet(True), program(area(amp=1000))):
        with pytest.raises(DeviceRejected) as refused:
            stim.apply(command)
        assert refused.value.code is ErrorCode.STATE_CONFLICT


def test_primary_age_limit_gives_eri_and_eos_by_date():
    cell = dataclasses.replace(ScsConfig().primary, max_life_years=2.0)
    stim = running(area(**MICRODOSED_BURST), kind=PRIMARY, primary=cell)
    stim.advance_to(T0 + 3 * YEAR_MS)
    eos_ms = T0 + int(2 * YEAR_S * 1000)
    assert first(stim, EventCode.BATTERY_ERI).time_ms == eos_ms - int(cell.eri_reserve_days * DAY_S * 1000)
    assert first(stim, EventCode.BATTERY_EOS).time_ms == eos_ms
    assert not stim.status().therapy_on and stim.status().battery_pct_x100 > 7000  # energy left, but too old


# --- primary-cell life (docs/devices.md 1.5) --------------------------------------------------------
TYPICAL_TONIC = dict(amp=3000, pw=200, rate=60)
CLAIMS = [  # preset, its calibration program, load, claimed years to EOS
    ("low_dose_burst", MICRODOSED_BURST, 525, 10.0),  # Proclaim XR class: "up to 10 years" at low-dose BurstDR
    ("long_life_tonic", TYPICAL_TONIC, 800, 11.0),  # Vanta class: "up to ~11 years"
]


@pytest.mark.parametrize(("preset", "params", "ohm", "years"), CLAIMS, ids=["burst_10.0y", "tonic_11.0y"])
def test_primary_presets_last_their_claimed_life_with_90_days_from_eri_to_eos(preset, params, ohm, years):
    stim = running(area(**params), kind=PRIMARY, ohm=ohm, primary=preset)
    projected = stim.status()
    assert (projected.eos_ms - T0) / YEAR_MS == pytest.approx(years, abs=0.05)  # within about 18 days
    assert (projected.eos_ms - projected.eri_ms) / DAY_MS == pytest.approx(90.0, abs=0.01)  # the [E] reserve
    stim.advance_to(T0 + round((years + 1) * YEAR_MS))  # the same dates are reached, not only projected
    eri, eos = first(stim, EventCode.BATTERY_ERI), first(stim, EventCode.BATTERY_EOS)
    assert (eri.time_ms, eos.time_ms) == (projected.eri_ms, projected.eos_ms)
    assert stim.status().battery_state is BatteryState.EOS and not stim.status().therapy_on


@pytest.mark.parametrize("preset", sorted(PRIMARY_CELLS))
@pytest.mark.parametrize("params", [MICRODOSED_BURST, BURST, TYPICAL_TONIC, {}, HF], ids=str)
def test_a_primary_cell_projects_eri_before_eos_at_any_program(preset, params):
    stim = running(area(**params), kind=PRIMARY, primary=preset)
    stim.set_telemetry_active(True)  # an open session draws more, and still ERI comes first
    for status in (stim.status(), running(area(**params), kind=PRIMARY, primary=preset).status()):
        assert T0 < status.eri_ms < status.eos_ms


def test_a_scenario_picks_a_primary_preset_by_name_or_overrides_one():
    assert ScsConfig(primary="long_life_tonic").primary == LONG_LIFE_TONIC_CELL
    tuned = ScsConfig(primary={"preset": "long_life_tonic", "eri_reserve_days": 30.0})
    assert tuned.primary == dataclasses.replace(LONG_LIFE_TONIC_CELL, eri_reserve_days=30.0)
    assert ScsConfig(**json.loads(json.dumps(tuned.to_dict()))) == tuned
    with pytest.raises(ValueError, match="valid: low_dose_burst, long_life_tonic"):
        ScsConfig(primary="nuclear")


# --- daily charging of a rechargeable (Provenzano 2021, docs/devices.md 1.5) ---------------------------
PULSE_DOSING = [  # 10 kHz pulse dosing: (cycling on, off) s, published daily charging min (mean, SD) [V]
    ((3, 97), 8.3, 3.1),
    ((14, 86), 13.9, 4.9),
    ((50, 50), 26.2, 7.4),
    ((0, 0), 43.8, 10.9),  # 100 % ON
]


def _pulse_dosed(on_s: int, off_s: int) -> Area:
    return area(**dict(HF, cycle_on_s=on_s, cycle_off_s=off_s))  # 2.5 mA, 30 µs, 10 kHz


@pytest.mark.parametrize(
    ("cycle", "mean", "sd"), PULSE_DOSING, ids=["3%_8.3min", "14%_13.9min", "50%_26.2min", "100%_43.8min"]
)
def test_daily_charging_minutes_of_10_khz_pulse_dosing_fall_within_provenzano_2021(cycle, mean, sd):
    config = ScsConfig(impedance_ohm=(600, 600))
    draw = program_draw_w(program(_pulse_dosed(*cycle)), [600.0] * config.contacts, config)
    minutes = daily_charge_minutes(config, draw)  # one session a day at the patient's 80 % coupling
    assert abs(minutes - mean) <= sd, f"{minutes:.1f} min/day against {mean} ± {sd}"


@pytest.mark.parametrize("cycle", [(3, 97), (14, 86)], ids=["3%", "14%"])
def test_a_patient_charging_once_a_day_spends_the_minutes_daily_charge_minutes_gives(cycle):
    stim = running(_pulse_dosed(*cycle), auto_recharge=False, rechargeable=no_fade())  # fade: 1 s/day less
    config, days = stim.config, 14
    assert program_draw_w(program(_pulse_dosed(*cycle)), [600.0] * 16, config) == stim.program_power_w()
    stim.apply(ChargingSet(True))  # on a full cell a session is the top-off alone
    for day in range(days + 1):  # then every evening at 8 pm; the first evening's refills 20 h, not a day
        stim.advance_to(T0 + day * DAY_MS + 20 * HOUR_MS)
        stim.apply(ChargingSet(True))
    stim.advance_to(stim.now_ms + DAY_MS)
    starts = [e.time_ms for e in stim.events.read(1, 10**9) if e.code is EventCode.CHARGING_STARTED]
    ends = [e.time_ms for e in stim.events.read(1, 10**9) if e.code is EventCode.CHARGING_COMPLETE]
    assert len(starts) == len(ends) == days + 2 and (starts[0], ends[0]) == (T0, T0 + TAIL_MS)
    starts, ends = starts[1:], ends[1:]
    simulated = sum(end - start for start, end in zip(starts[1:], ends[1:], strict=True)) / days / 60_000
    assert simulated == pytest.approx(daily_charge_minutes(config, stim.program_power_w()), rel=1e-4)
    filled = [e.arg0 for e in stim.events.read(1, 10**9) if e.code is EventCode.CHARGING_COMPLETE]
    assert filled == [10_000] * (days + 2)  # every session filled the cell


def test_daily_charge_minutes_is_infinite_when_the_charger_cannot_keep_up():
    config = ScsConfig()
    assert daily_charge_minutes(config, 0.2) == math.inf  # draws more than the charger gives at 80 %
    assert daily_charge_minutes(config, 1e-3, sessions_per_day=300) == math.inf  # top-offs fill the day
    assert daily_charge_minutes(config, 1e-3, coupling_pct=40) > daily_charge_minutes(config, 1e-3)


def test_rechargeable_soon_now_and_depleted_at_their_state_of_charge():
    stim = running(area(), auto_recharge=False, rechargeable=no_fade())
    power, capacity = stim.battery_power_w(), stim.config.rechargeable.capacity_j
    assert stim.status().days_to_recharge_x100 == round(0.75 * capacity / power / DAY_S * 100)
    stim.advance_to(T0 + 60 * DAY_MS)
    low, now = first(stim, EventCode.BATTERY_LOW), first(stim, EventCode.RECHARGE_NOW)
    assert abs(low.time_ms - (T0 + 0.75 * capacity / power * 1000)) <= 1
    assert abs(now.time_ms - (T0 + 0.90 * capacity / power * 1000)) <= 1
    assert (low.arg0, now.arg0) == (2500, 1000)  # battery 0.01 % at the event
    assert low.priority is ALARMS[EventCode.BATTERY_LOW].priority
    assert now.priority is ALARMS[EventCode.RECHARGE_NOW].priority
    assert first(stim, EventCode.BATTERY_LOW, AlarmState.CLEARED).time_ms == now.time_ms  # escalated
    stopped = first(stim, EventCode.THERAPY_OFF, AlarmState.NONE)
    assert abs(stopped.time_ms - (T0 + capacity / power * 1000)) <= 1
    with pytest.raises(DeviceRejected) as refused:
        stim.apply(TherapySet(True))
    assert refused.value.code is ErrorCode.STATE_CONFLICT
    # Charge it back: from the charger, the device draws only its quiescent power while off.
    stim.inject_fault("charge", {"coupling_pct": 50})
    start, net = stim.now_ms, 0.2 * 0.5 - 20e-6
    stim.advance_to(start + DAY_MS)
    done = first(stim, EventCode.CHARGING_COMPLETE, AlarmState.NONE)
    assert abs(done.time_ms - (start + capacity / net * 1000 + TAIL_MS)) <= 1  # full, then the top-off
    assert log(stim)[-1] == (done.time_ms, EventCode.THERAPY_ON, AlarmState.NONE)  # resumed after a full charge
    assert not stim.alarms.active()


# --- deep discharge: a rechargeable left flat (SJM Protege: recharge within 30-90 days) ------------
def _gone_flat() -> tuple[Stimulator, int]:
    """A rechargeable nobody charges, run until its battery stops stimulation; and the ms it went flat."""
    stim = running(area(), auto_recharge=False, rechargeable=no_fade())
    stim.advance_to(T0 + 10 * DAY_MS)  # 0.92 mW empties 2592 J in 32.6 days
    stim.advance_to(T0 + 40 * DAY_MS)
    flat_ms = first(stim, EventCode.THERAPY_OFF, AlarmState.NONE).time_ms
    assert stim.cell.empty() and abs(flat_ms - (T0 + 2592 / stim.program_power_w() * 1000)) <= 1
    return stim, flat_ms


def test_a_flat_cell_tells_the_patient_to_charge_and_a_charge_within_its_window_saves_it():
    stim, flat_ms = _gone_flat()
    status = stim.status()
    assert (status.battery_state, status.therapy_on) == (BatteryState.RECHARGE_NOW, False)
    assert EventCode.RECHARGE_NOW in {a.code for a in status.alarms}  # raised at 10 %, still up when flat
    stim.advance_to(flat_ms + 59 * DAY_MS)
    assert stim.status().battery_state is BatteryState.RECHARGE_NOW
    stim.apply(ChargingSet(True))
    stim.advance_to(flat_ms + 61 * DAY_MS)
    assert log(stim)[-1][1] is EventCode.THERAPY_ON  # full again, therapy back
    assert stim.status().battery_state is BatteryState.OK
    assert not [e for e in stim.events.read(1, 10**9) if e.code is EventCode.BATTERY_DEEP_DISCHARGE]


@pytest.mark.parametrize("step_days", [None, 1, 7])
def test_a_cell_left_flat_past_its_window_is_damaged_for_good_at_the_exact_ms(step_days):
    stim, flat_ms = _gone_flat()
    end = flat_ms + 61 * DAY_MS
    for t in range(stim.now_ms, end, (step_days or 10**6) * DAY_MS):
        stim.advance_to(t)
    stim.advance_to(end)
    damaged = first(stim, EventCode.BATTERY_DEEP_DISCHARGE)
    assert (damaged.time_ms, damaged.arg0) == (flat_ms + 60 * DAY_MS, 60)  # deep_discharge_days = 60
    assert damaged.priority is ALARMS[EventCode.BATTERY_DEEP_DISCHARGE].priority is Priority.HIGH
    assert first(stim, EventCode.RECHARGE_NOW, AlarmState.CLEARED).time_ms == damaged.time_ms  # no charge to ask
    status = stim.status()
    assert (status.battery_state, status.eri_ms, status.eos_ms) == (BatteryState.FAILED, 0, 0)
    assert [a.code for a in status.alarms] == [EventCode.BATTERY_DEEP_DISCHARGE]
    restarted = Stimulator.from_state(json.loads(json.dumps(stim.to_state())))
    for model in (stim, restarted):
        for command in (ChargingSet(True), TherapySet(True)):
            with pytest.raises(DeviceRejected) as refused:
                model.apply(command)
            assert refused.value.code is ErrorCode.STATE_CONFLICT
            assert "left flat for more than 60 days and is permanently damaged" in refused.value.reason
        with pytest.raises(ValueError, match="permanently damaged"):
            model.inject_fault("charge", {})
        model.alarms.acknowledge(EventCode.BATTERY_DEEP_DISCHARGE, model.now_ms)  # latched: the cell stays bad
        model.advance_to(end + YEAR_MS)
        assert model.status().battery_state is BatteryState.FAILED
        assert [a.state for a in model.status().alarms] == [AlarmState.ACKNOWLEDGED]
    assert restarted.to_state() == stim.to_state()


def test_the_deep_discharge_window_survives_a_restart_inside_it_and_is_configurable():
    stim, flat_ms = _gone_flat()
    stim.advance_to(flat_ms + 30 * DAY_MS)
    restarted = Stimulator.from_state(json.loads(json.dumps(stim.to_state())))
    restarted.advance_to(flat_ms + 90 * DAY_MS)
    assert first(restarted, EventCode.BATTERY_DEEP_DISCHARGE).time_ms == flat_ms + 60 * DAY_MS
    short = running(area(), auto_recharge=False, rechargeable=no_fade(deep_discharge_days=30.0))
    short.advance_to(T0 + 100 * DAY_MS)
    off = first(short, EventCode.THERAPY_OFF, AlarmState.NONE).time_ms
    assert first(short, EventCode.BATTERY_DEEP_DISCHARGE).time_ms == off + 30 * DAY_MS
    with pytest.raises(ValueError, match="deep_discharge_days"):
        RechargeableCellConfig(deep_discharge_days=0.0)


def test_rechargeable_eri_when_a_full_charge_lasts_under_a_day():
    cell = RechargeableCellConfig(
        fade_per_year=0.1, fade_per_cycle=0.0, eos_capacity_fraction=0.1, eri_capacity_fraction=0.12
    )
    stim = running(area(**HF), rechargeable=cell)
    target = stim.program_power_w() * DAY_S
    expected = T0 + (cell.capacity_j - target) / (cell.capacity_j * 0.1 / YEAR_S) * 1000
    assert abs(stim.status().eri_ms - expected) <= 1
    stim.advance_to(T0 + round(8.6 * YEAR_MS))  # EOS (10 % capacity) follows at 9 years
    eri = first(stim, EventCode.BATTERY_ERI)
    assert abs(eri.time_ms - expected) <= 1
    assert stim.status().battery_state is BatteryState.ERI
    assert stim.status().capacity_pct_x100 < 1600


def test_auto_recharge_starts_at_recharge_soon_and_charges_to_full():
    stim = running(area(), rechargeable=no_fade())
    power, capacity = stim.battery_power_w(), stim.config.rechargeable.capacity_j
    stim.advance_to(T0 + 30 * DAY_MS)
    started = first(stim, EventCode.CHARGING_STARTED, AlarmState.NONE)
    done = first(stim, EventCode.CHARGING_COMPLETE, AlarmState.NONE)
    assert started.time_ms == first(stim, EventCode.BATTERY_LOW).time_ms
    assert abs(done.time_ms - (started.time_ms + 0.75 * capacity / (0.2 * 0.8 - power) * 1000 + TAIL_MS)) <= 2
    assert (done.arg0, stim.status().battery_state) == (10_000, BatteryState.OK)


def test_battery_events_are_logged_at_the_crossing_not_after_it():
    """Replay to 2 ms before each event: its condition must not hold yet (catches late predictions)."""
    cell = RechargeableCellConfig(fade_per_year=0.05, fade_per_cycle=0.01)  # strong fade moves every level
    stim = running(area(**HF), rechargeable=cell)
    snapshots = {}  # replay from the nearest earlier snapshot: the same trajectory, much shorter
    for t in range(T0, T0 + YEAR_MS, 10 * DAY_MS):
        stim.advance_to(t)
        snapshots[t] = json.dumps(stim.to_state())
    checks = {  # code: (how long before the entry the condition begins, the condition)
        EventCode.BATTERY_LOW: (0, lambda m: m.cell.fraction(m.now_ms) <= cell.low_fraction),
        EventCode.CHARGING_COMPLETE: (TAIL_MS, lambda m: m.cell.full(m.now_ms)),  # full, then the top-off
    }
    events = [e for e in stim.events.read(1, 10**9) if e.code in checks and e.state is not AlarmState.CLEARED]
    assert len(events) > 60
    for event in events:
        before, holds = checks[event.code]
        at = event.time_ms - before
        replay = Stimulator.from_state(json.loads(snapshots[max(t for t in snapshots if t < at - 2)]))
        replay.advance_to(at - 2)
        assert not holds(replay), event
        replay.advance_to(at)
        assert holds(replay), event
        replay.advance_to(event.time_ms - 1)
        assert replay.status().charging, event  # the session goes on through the whole top-off


# --- faults ----------------------------------------------------------------------------------------
def test_lead_open_loses_the_area_reads_open_and_latches_until_acknowledged():
    stim = running(area())
    stim.inject_fault("lead_open", {"contact": 1})
    assert stim.tissue_power_w() == 0.0  # the area's only cathode is open
    reply = stim.apply(ImpedanceCheck())
    assert reply.impedance_ohm[1] == OPEN_READING == stim.status().impedance_ohm[1]
    assert stim.events.read(reply.event_seq, 1)[0].code is EventCode.IMPEDANCE_MEASURED
    alarm = first(stim, EventCode.LEAD_OPEN)
    assert (alarm.arg0, alarm.arg1, alarm.priority) == (1, OPEN_READING, Priority.MEDIUM)
    with pytest.raises(DeviceRejected) as refused:
        stim.apply(program(area(amp=1000)))
    assert (refused.value.code, refused.value.field, refused.value.value) == (
        ErrorCode.STATE_CONFLICT,
        "areas[0].cathode_mask",
        1,
    )
    stim.inject_fault("clear_lead", {"contact": 1})
    assert stim.tissue_power_w() == pytest.approx(0.45e-3)
    stim.apply(ImpedanceCheck())
    assert [(a.code, a.state) for a in stim.status().alarms] == [(EventCode.LEAD_OPEN, AlarmState.ACTIVE)]
    stim.alarms.acknowledge(EventCode.LEAD_OPEN, stim.now_ms)
    assert not stim.status().alarms
    assert log(stim)[-1][1:] == (EventCode.LEAD_OPEN, AlarmState.CLEARED)


def test_lead_short_reads_low_and_raises_lead_short():
    stim = running(area())
    stim.inject_fault("lead_short", {"contact": 0})
    assert stim.tissue_power_w() < 0.45e-3  # the short lowers the load
    reply = stim.apply(ImpedanceCheck())
    assert reply.impedance_ohm[0] < stim.config.short_ohm
    assert first(stim, EventCode.LEAD_SHORT).arg0 == 0


def test_battery_failure_stops_stimulation_and_freezes_the_cell():
    stim = running(area())
    stim.inject_fault("battery_failure", {})
    alarm = first(stim, EventCode.BATTERY_FAILURE)
    assert alarm.priority is Priority.HIGH
    assert log(stim)[-1][1] is EventCode.THERAPY_OFF
    status = stim.status()
    assert (status.battery_state, status.therapy_on, status.eri_ms) == (BatteryState.FAILED, False, 0)
    stim.advance_to(T0 + YEAR_MS)
    assert stim.status().battery_pct_x100 == status.battery_pct_x100
    with pytest.raises(DeviceRejected):
        stim.apply(TherapySet(True))
    with pytest.raises(ValueError, match="failed"):
        stim.inject_fault("charge", {"coupling_pct": 80})


def test_charge_fault_with_hours_and_stop_charge():
    stim = running(area(), auto_recharge=False)
    stim.advance_to(T0 + 10 * DAY_MS)
    soc = stim.cell.fraction(stim.now_ms)
    stim.inject_fault("charge", {"coupling_pct": 25, "hours": 1})
    assert (stim.status().charging, stim.status().coupling_pct) == (True, 25)
    net = 0.2 * 0.25 - stim.battery_power_w()
    stim.advance_to(stim.now_ms + 2 * HOUR_MS)
    done = first(stim, EventCode.CHARGING_COMPLETE, AlarmState.NONE)
    assert done.time_ms == T0 + 10 * DAY_MS + HOUR_MS
    gained = net * 3600 / stim.config.rechargeable.capacity_j
    assert done.arg0 == pytest.approx((soc + gained) * 10_000, abs=2)
    stim.inject_fault("charge", {"coupling_pct": 90})
    stim.inject_fault("stop_charge", {})
    assert not stim.status().charging
    assert [c for _, c, _ in log(stim)[-2:]] == [EventCode.CHARGING_STARTED, EventCode.CHARGING_COMPLETE]


@pytest.mark.parametrize(
    ("kind", "fault", "params", "match"),
    [
        (RECHARGEABLE, "lead_melt", {}, "valid: " + ", ".join(FAULTS)),
        (RECHARGEABLE, "lead_open", {"contact": 16}, "contact"),
        (RECHARGEABLE, "lead_open", {}, "contact"),
        (RECHARGEABLE, "charge", {"coupling_pct": 0}, "coupling_pct"),
        (PRIMARY, "charge", {"coupling_pct": 80}, "primary"),
    ],
)
def test_bad_faults_raise_value_error(kind, fault, params, match):
    with pytest.raises(ValueError, match=match):
        make(kind).inject_fault(fault, params)


# --- identity and persistence ----------------------------------------------------------------------
def test_identity_and_capabilities():
    base = Capability.STIMULATION | Capability.IMPEDANCE | Capability.EVENT_PUSH | Capability.CLOCK_SET
    assert make(PRIMARY).capabilities == base
    assert make(RECHARGEABLE).capabilities == base | Capability.RECHARGEABLE
    stim = Stimulator(ScsConfig(contacts=32, serial="SCS-42"), T0, 3)
    assert (stim.serial, len(stim.status().impedance_ohm)) == ("SCS-42", 32)


@pytest.mark.parametrize("kind", [PRIMARY, RECHARGEABLE])
def test_state_round_trip_resumes_identically(kind):
    stim = running(area(), area(**MICRODOSED_BURST, anode_mask=0b100, cathode_mask=0b1000), kind=kind)
    stim.config = dataclasses.replace(stim.config)  # configs are values: nothing hangs on identity
    stim.inject_fault("lead_open", {"contact": 3})
    stim.set_telemetry_active(True)
    stim.advance_to(T0 + 100 * DAY_MS + 17)
    if kind is RECHARGEABLE:
        stim.inject_fault("charge", {"coupling_pct": 40, "hours": 2})
    copy = Stimulator.from_state(json.loads(json.dumps(stim.to_state())))
    assert copy.status() == stim.status()
    for model in (stim, copy):
        model.advance_to(model.now_ms + HOUR_MS)
        model.set_telemetry_active(False)
        model.apply(ImpedanceCheck())
        model.advance_to(T0 + 465 * DAY_MS)
    assert copy.status() == stim.status()
    assert log(copy) == log(stim)
    assert copy.to_state() == stim.to_state()


def test_from_state_uses_a_log_the_caller_restored_even_an_empty_one():
    stim = running(area())
    shared = EventLog()
    copy = Stimulator.from_state(stim.to_state(), events=shared)
    copy.apply(ImpedanceCheck())
    assert copy.events is shared and len(shared) == 1  # the measurement, nothing replayed from the state


def test_config_reads_back_from_json_and_scenario_overrides():
    config = ScsConfig(battery_kind=PRIMARY, impedance_ohm=[700, 900], contacts=32)
    assert ScsConfig(**json.loads(json.dumps(config.to_dict()))) == config
    assert config.impedance_ohm == (700, 900) and config.battery_kind is PRIMARY
    with pytest.raises(ValueError, match="contacts"):
        ScsConfig(contacts=33)
    with pytest.raises(ValueError, match="valid: primary, rechargeable"):
        ScsConfig(battery_kind="nuclear")
    assert ScsConfig().primary == LOW_DOSE_BURST_CELL
    scenario = ScsConfig(battery_kind="primary", primary={"capacity_j": 5000.0})  # as a TOML [config] gives it
    assert scenario.battery_kind is PRIMARY
    assert (scenario.primary.capacity_j, scenario.primary.nominal_power_w) == (5000.0, 57.8e-6)


@pytest.mark.parametrize("program", [dict(amp=1000, pw=60, rate=20), {}, HF])
def test_a_rechargeable_projects_eri_before_eos_at_any_program(program):
    """A low-power program never needs a charge a day; ERI then comes from fade, ahead of EOS."""
    stim = running(area(**program))
    status = stim.status()
    assert 0 < status.eri_ms < status.eos_ms
    cell = RechargeableCellConfig()
    if stim.program_power_w() * DAY_S < cell.eri_capacity_fraction * cell.capacity_j:  # the fade rule decides
        fade_per_s = status.eos_ms - status.eri_ms
        assert fade_per_s > 0.5 * YEAR_S * 1000  # months of warning, not a coincident ERI and EOS


def test_eri_capacity_must_lie_between_eos_and_new():
    with pytest.raises(ValueError, match="ERI comes before EOS"):
        RechargeableCellConfig(eos_capacity_fraction=0.5, eri_capacity_fraction=0.5)


def test_sixteen_stored_programs_read_back_with_their_areas_cycling_and_ramp_across_a_restart():
    """A programmer reads each stored program back exactly (areas, cycling, patient maximum, ramp)."""
    from protocols.messages import ProgramRead

    stim = make()
    sent = {}
    for number in range(1, 17):
        areas = tuple(
            area(
                amp=1_000 + 100 * number + 50 * k,
                pw=200 + 10 * k,
                rate=40 + number,
                anode_mask=1 << (2 * k),
                cathode_mask=1 << (2 * k + 1),
                cycle_on_s=0 if number % 3 == 0 else 10 * number,
                cycle_off_s=0 if number % 3 == 0 else 20 * number + k,
            )
            for k in range(1 + (number - 1) % 4)
        )
        sent[number] = StimProgramSet(number, number == 9, areas, 4_000 + 50 * number, number % 11)
        stim.apply(sent[number])
    for restarted in (False, True):
        if restarted:
            stim = Stimulator.from_state(json.loads(json.dumps(stim.to_state())))
        assert stim.status().stored_programs == 0xFFFF
        for number, program_ in sent.items():
            reply = stim.apply(ProgramRead(number))
            assert (reply.program, reply.active) == (number, number == 9)
            assert (reply.areas, reply.patient_amp_max_ua, reply.ramp_s) == (
                program_.areas,
                program_.patient_amp_max_ua,
                program_.ramp_s,
            )
    with pytest.raises(DeviceRejected) as info:
        stim.apply(StimProgramSet(17, False, (area(),), 5_000, 2))
    assert (info.value.code, info.value.limit) == (ErrorCode.OUT_OF_RANGE, 16)
