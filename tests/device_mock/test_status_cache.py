"""status() stays exact whatever the models keep between calls.

Each model kind is driven through a long seeded random sequence of what a clinic, a patient and the
scenario engine do to it (time jumps from a millisecond to years, programs, therapy, charging,
impedance checks, faults, alarm acks, refills and boluses, a save and restore midway). After every
step the live model's ``status()`` must equal two references computed from a model rebuilt at that
moment with ``from_state(to_state())``, so it holds no derived value from before the step: its own
``status()``, and the straightforward computation every field started from (kept below: the models'
one-value methods, and the projections in the form they had before ``status()`` took short cuts),
which pins the formulas as well as the freshness.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from device_mock.alarms import EventLog
from device_mock.battery import DAY_S, PrimaryCellConfig, RechargeableCellConfig
from device_mock.pump import Pump, PumpConfig
from device_mock.pump_config import PumpMechanism
from device_mock.pump_dosing import DAY_MS, MINUTE_MS, UNITS_PER_UL, Projections, time_to_drain
from device_mock.stim_cells import PrimaryDrive
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.errors import DeviceRejected
from protocols.messages import (
    Area,
    BatteryKind,
    BatteryState,
    Bolus,
    BolusKind,
    DosingMode,
    DosingSet,
    Drug,
    DrugConcentration,
    DrugLevel,
    EventCode,
    FlexStep,
    ImpedanceCheck,
    MotorState,
    MriCheckDone,
    MriModeSet,
    PatientBolusSettings,
    PumpStatus,
    Refill,
    ScsStatus,
    StimProgramSet,
    TherapySet,
    Waveform,
)

T0 = 1_767_225_600_000  # a UTC midnight
HOUR_MS = 3_600_000
YEAR_MS = 31_557_600_000
STEPS = 600
LATE = STEPS * 9 // 10  # a battery failure is final: only near the end of a run
SEEDS = (1, 2, 3, 4, 5)
LOG_CAPACITY = 64  # status reads only the newest sequence number: a short log keeps the rebuilds cheap


# --- references: today's formulas over a rebuilt model ---------------------------------------------
def reference_scs_status(stim: Stimulator) -> ScsStatus:
    """Every field computed from the model's plain methods, nothing kept from an earlier call."""
    program, now = stim._programs.get(stim._active), stim.now_ms
    draw, program_w = stim.battery_power_w(), stim.program_power_w()
    eri_ms, eos_ms = reference_scs_projections(stim, draw, program_w)
    density = max(stim._densities(at_patient_max=False), default=0.0)
    pct, mv = round(stim.cell.fraction(now) * 10_000), stim.cell.voltage_mv(now)
    state = stim.cell.state(now, program_w)
    return ScsStatus(
        time_ms=now,
        therapy_on=stim._therapy,
        active_program=stim._active,
        areas=program.areas if program else (),
        patient_amp_max_ua=program.patient_amp_max_ua if program else 0,
        battery_kind=stim.cell.kind,
        battery_state=BatteryState.FAILED if stim._failed else state,
        battery_pct_x100=pct,
        battery_mv=mv,
        charging=stim._charging is not None,
        coupling_pct=stim._charging["coupling"] if stim._charging else 0,
        capacity_pct_x100=round(stim.cell.capacity_fraction(now) * 10_000),
        days_to_recharge_x100=min(0xFFFF_FFFF, round(stim.cell.seconds_to_recharge(draw, now) / DAY_S * 100)),
        eri_ms=eri_ms,
        eos_ms=eos_ms,
        tissue_power_uw=round(stim.tissue_power_w() * 1e6),
        charge_density_x100=min(0xFFFF, round(density * 100)),
        impedance_ohm=tuple(stim._readings),
        alarms=stim.alarms.active(),
        last_event_seq=stim.events.last_seq,
        stored_programs=sum(1 << (n - 1) for n in stim._programs),
        mri_mode=stim._mri is not None,
        shannon_k_x100=reference_shannon_x100(program, stim.config.contact_area_cm2),
        disabled_contacts=sum(1 << i for i, r in enumerate(stim._readings) if r < stim.config.short_ohm),
    )


def reference_shannon_x100(program: StimProgramSet | None, area_cm2: float) -> int:
    """k = log10 D + log10 Q on each area's most loaded contact; the highest, x100; 0 with no charge."""
    ks = []
    for a in program.areas if program else ():
        n = max(1, min(a.anode_mask.bit_count(), a.cathode_mask.bit_count()))
        q = a.amplitude_ua / n * a.pulse_width_us * 1e-6
        if q > 0:
            ks.append(math.log10(q / area_cm2) + math.log10(q))
    return round(max(ks) * 100) if ks else 0


def reference_scs_projections(stim: Stimulator, draw_w: float, program_w: float) -> tuple[int, int]:
    """ERI and EOS times: when they began if reached, else projected at this drain (0 after a failure)."""
    if stim._failed:
        return 0, 0
    eri_ms, eos_ms = reference_cell_projections(stim.cell, stim.now_ms, draw_w, program_w)
    eri_code, eos_code = int(EventCode.BATTERY_ERI), int(EventCode.BATTERY_EOS)
    eos_ms = stim._reached.get(eos_code, eos_ms)
    return stim._reached.get(eri_code, eos_ms if eos_code in stim._reached else eri_ms), eos_ms


def reference_at(now_ms: int, seconds: float, fixed_ms: int | None) -> int:
    times = [now_ms + math.ceil(seconds * 1000)] if 0.0 < seconds < math.inf else []
    if seconds == 0.0:
        times.append(now_ms)
    if fixed_ms is not None:
        times.append(fixed_ms)
    return min(times, default=0)


def reference_cell_projections(cell: Any, now: int, draw_w: float, program_w: float) -> tuple[int, int]:
    """Projected ERI and EOS times of a cell, each worked out on its own."""
    b = cell.battery
    if isinstance(cell, PrimaryDrive):
        eri_ms = reference_at(now, b.seconds_until_eri(draw_w), b.age_limit_ms(True))
        return eri_ms, reference_at(now, b.seconds_until_empty(draw_w), b.age_limit_ms(False))
    c, capacity = b.config, b.capacity_j(now)
    fade = cell._fade_w(program_w, capacity)
    eri = cell._seconds_to_capacity(cell._eri_j(program_w), fade, capacity)
    eos = cell._seconds_to_capacity(c.eos_capacity_fraction * c.capacity_j, fade, capacity)
    return reference_at(now, eri, None), reference_at(now, eos, None)


def reference_pump_projections(pump: Pump) -> dict[str, int]:
    """Reservoir dates, each need walked by ``time_to_drain`` (no steady-rate short cut)."""
    reached, now, program, cfg = pump.reached, pump.now_ms, pump.program, pump.config
    if not pump.pumping or pump.stopped:  # a single bolus from a stopped pump projects nothing
        dates = (reached.low, reached.empty, 0, 0, now if reached.low else 0)
        return dict(zip(Projections._fields, dates, strict=True))

    def when(need: int, extra_rate: int = 0) -> int:
        return time_to_drain(program.schedule, pump.bolus, now, max(0, need), extra_rate) or 0

    fill, since, ptm = pump.totals.fill_ul * UNITS_PER_UL, pump.totals.since_refill, program.patient_bolus
    low_need, band = fill - since - program.alarm_volume_ul * UNITS_PER_UL, cfg.flow_accuracy
    threshold_ul = cfg.refill_threshold_ul or program.alarm_volume_ul
    extra = ptm.dose_ul * ptm.max_per_day if cfg.refill_threshold_all_boluses else 0
    worst_low = when(fill - since - threshold_ul * UNITS_PER_UL, extra)
    refill_by = max(now, worst_low - round(cfg.next_refill_margin_days * DAY_MS))
    if pump.totals.stable_until_ms:  # the drugs' stability limit, dated at the fill
        refill_by = min(refill_by, max(now, pump.totals.stable_until_ms))
    return {
        "low_alarm_ms": reached.low or when(low_need),
        "empty_ms": when(fill - since),
        "empty_earliest_ms": when(int(fill / (1 + band)) - since),
        "empty_latest_ms": when(int(fill / (1 - band)) - since),
        "next_refill_ms": now if reached.low else refill_by,
    }


def reference_tones(pump: Pump) -> dict[str, object]:
    """The sounder's state from the alarm list as it is now."""
    tones = pump.alarms.tone_state(pump.now_ms)
    return {"tone": tones.tone, "tone_code": tones.code, "next_tone": tones.next_tone, "next_tone_ms": tones.next_ms}


def reference_pump_status(pump: Pump) -> PumpStatus:
    """Every field computed from the model's plain methods, nothing kept from an earlier call."""
    program, now = pump.program, pump.now_ms
    rate = program.schedule.rate_at(now) if program.therapy_on else 0
    basal = pump.pumping and not pump.stopped  # nothing infused: 0
    daily_ul = program.schedule.daily_ul() if basal else 0  # the whole programmed day, not this step
    given = [row for row in pump.totals.boluses_given if row[0] + DAY_MS > now]
    drugs = tuple(
        DrugLevel(
            d.drug,
            d.conc_ng_per_ml,
            min(0xFFFF_FFFF, d.conc_ng_per_ml * daily_ul // 1000),
            min(0xFFFF_FFFF, sum(ng for _, drug, ng in given if drug == d.drug)),
        )
        for d in program.drugs
    )
    eri_ms, eos_ms = pump._battery_dates(pump.pumping and not pump.stopped)
    faults, magnet = pump.faults, pump.magnet
    motor = MotorState.STALLED if faults.stalled or magnet.suspended_ms else MotorState.OK
    valve_gated = pump.config.mechanism is PumpMechanism.VALVE_GATED
    return PumpStatus(
        time_ms=now,
        mode=program.schedule.mode if program.therapy_on else DosingMode.STOPPED,
        infusing=pump.pumping,
        reservoir_ul=pump.reservoir_ul,
        capacity_ul=pump.config.capacity_ul,
        alarm_volume_ul=program.alarm_volume_ul,
        rate_ul_per_day=rate,
        drugs=drugs,
        patient_bolus=program.patient_bolus,
        patient_boluses_today=min(255, sum(t + DAY_MS > now for t in pump.totals.patient_boluses)),
        bolus_active=pump.bolus is not None,
        battery_state=BatteryState.FAILED if faults.battery_failed else pump._battery_state(),
        battery_pct_x100=round(pump.battery.fraction * 10_000),
        battery_mv=pump.battery.voltage_mv(),
        eri_ms=eri_ms,
        eos_ms=eos_ms,
        motor_state=motor,
        alarms=pump.alarms.active(),
        last_event_seq=pump.events.last_seq,
        **reference_pump_projections(pump),
        **reference_tones(pump),
        mri_suspended=magnet.suspended_ms > 0 or (magnet.field and valve_gated),
        mri_check_due=magnet.check_due,
        valve_closed=magnet.valve_closed,
        replacement_ms=pump._replacement_date(pump.pumping and not pump.stopped),
    )


def rebuilt_scs(stim: Stimulator) -> Stimulator:
    return Stimulator.from_state(stim.to_state())


def rebuilt_pump(pump: Pump) -> Pump:
    return Pump.from_state(pump.to_state())


# --- random operations -----------------------------------------------------------------------------
# time step scale, ms: weight. Mostly poll-sized steps, sometimes hours or days, now and then months or a year.
SCALES = {1: 20, 1_000: 10, 60_000: 8, HOUR_MS: 10, DAY_MS: 10, 30 * DAY_MS: 3, YEAR_MS: 1}
SCS_OPS = {"advance": 40, "program": 8, "activate": 3, "therapy": 8, "impedance": 4, "lead": 5, "charge": 4}
SCS_OPS |= {"stop": 2, "telemetry": 4, "ack": 4, "fail": 0.3, "mri": 2}
PUMP_OPS = {"advance": 40, "dosing": 6, "therapy": 5, "bolus": 5, "patient": 6, "refill": 12, "fault": 5, "ack": 4}
PUMP_OPS |= {"fail": 0.3, "mri": 3}
PUMP_FAULTS = ("motor_stall", "clear_motor", "clear_motor", "occlusion", "clear_occlusion", "clear_occlusion")


def random_op(rng: random.Random, ops: dict[str, float], late: bool) -> str:
    """An operation by weight; a battery failure is final, so only ``late`` in a run."""
    return rng.choices(list(ops), weights=[w if op != "fail" or late else 0 for op, w in ops.items()])[0]


def random_advance(rng: random.Random) -> int:
    """A time step, ms, of a random scale."""
    scale = rng.choices(list(SCALES), weights=list(SCALES.values()))[0]
    return rng.randint(1, scale if scale == YEAR_MS else 2 * scale)


def random_area(rng: random.Random, contacts: int) -> Area:
    anode, cathode = rng.sample(range(contacts), 2)
    extra = rng.randrange(contacts)
    cathode_mask = 1 << cathode | (1 << extra if extra != anode else 0)
    cycle = rng.random() < 0.3
    on_s, off_s = (rng.randint(1, 600), rng.randint(1, 600)) if cycle else (0, 0)
    kind = rng.choice([Waveform.TONIC, Waveform.HIGH_FREQUENCY, Waveform.BURST])

    def made(amp: int, pw: int, rate: int, burst: tuple[int, int] = (0, 0)) -> Area:
        return Area(1 << anode, cathode_mask, amp, pw, rate, kind, *burst, on_s, off_s)

    # Amplitudes and pulse widths on the device's steps (25 µA below 2 mA, 50 µA above, 10 µs).
    if kind is Waveform.HIGH_FREQUENCY:
        return made(50 * rng.randint(10, 80), 10 * rng.randint(2, 4), 10_000)
    if kind is Waveform.BURST:
        return made(25 * rng.randint(8, 60), 1_000, 40, (5, 500))
    return made(50 * rng.randint(10, 100), 10 * rng.randint(6, 40), rng.randint(20, 300))


def scs_step(rng: random.Random, stim: Stimulator, late: bool) -> None:
    """One random thing happening to a stimulator; refusals are part of the game."""
    c, now, op = stim.config, stim.now_ms, random_op(rng, SCS_OPS, late)
    try:
        if op == "advance":
            stim.advance_to(now + random_advance(rng))
        elif op == "program":
            areas = tuple(random_area(rng, c.contacts) for _ in range(rng.randint(1, c.max_areas)))
            top = max(a.amplitude_ua for a in areas)
            number = rng.randint(1, 4)
            stim.apply(StimProgramSet(number, rng.random() < 0.8, areas, rng.randint(top, top + 6_000), 2))
        elif op == "activate":  # re-send a stored program to make it active
            stored = list(stim._programs.values())
            if stored:
                stim.apply(replace(rng.choice(stored), activate=True))
        elif op == "therapy":
            stim.apply(TherapySet(rng.random() < 0.7))
        elif op == "impedance":
            stim.apply(ImpedanceCheck())
        elif op == "lead":
            fault = rng.choice(["lead_open", "lead_short", "clear_lead", "clear_lead"])
            stim.inject_fault(fault, {"contact": rng.randrange(c.contacts)})
        elif op == "charge":
            params: dict[str, Any] = {"coupling_pct": rng.randint(1, 100)}
            if rng.random() < 0.7:
                params["hours"] = rng.choice([0.5, 1, 3, 8])
            stim.inject_fault("charge", params)
        elif op == "stop":
            stim.inject_fault("stop_charge", {})
        elif op == "telemetry":
            stim.set_telemetry_active(rng.random() < 0.5)
        elif op == "ack":
            listed = stim.alarms.active()
            if listed:
                stim.alarms.acknowledge(rng.choice(listed).code, now)
        elif op == "mri":
            stim.apply(MriModeSet(rng.random() < 0.5))
        elif op == "fail":
            stim.inject_fault("battery_failure", {})
    except (DeviceRejected, ValueError):
        pass


MIX = (DrugConcentration(Drug.MORPHINE, 10_000_000), DrugConcentration(Drug.BUPIVACAINE, 20_000_000))
BACLOFEN = (DrugConcentration(Drug.BACLOFEN, 500_000),)


def random_dosing(rng: random.Random) -> DosingSet:
    mode = rng.choices([DosingMode.CONTINUOUS, DosingMode.FLEX, DosingMode.STOPPED], weights=[5, 4, 0.5])[0]
    steps: tuple[FlexStep, ...] = ()
    if mode is DosingMode.FLEX:
        starts = sorted(rng.sample(range(1, 1_440), rng.randint(0, 4)))
        steps = tuple(FlexStep(s, rng.randint(48, 1_500)) for s in [0, *starts])
    ptm = PatientBolusSettings(False, 0, 0, 0, 0)
    if rng.random() < 0.5:
        dose, minutes, lockout = rng.randint(5, 60), rng.randint(5, 30), rng.randint(10, 240)
        ptm = PatientBolusSettings(True, dose, minutes, lockout, rng.randint(1, 6))
    return DosingSet(mode, rng.randint(48, 1_500), steps, ptm, rng.choice([1_000, 2_000, 4_000]))


def pump_step(rng: random.Random, pump: Pump, late: bool) -> None:
    """One random thing happening to a pump; refusals are part of the game."""
    now, op = pump.now_ms, random_op(rng, PUMP_OPS, late)
    try:
        if op == "advance":
            pump.advance_to(now + random_advance(rng))
        elif op == "dosing":
            pump.apply(random_dosing(rng))
        elif op == "therapy":
            pump.apply(TherapySet(rng.random() < 0.85))
        elif op == "bolus":
            pump.apply(Bolus(BolusKind.CLINICIAN, rng.randint(10, 400), rng.randint(15, 240)))
        elif op == "patient":
            pump.apply(Bolus(BolusKind.PATIENT, 0, 0))
        elif op == "refill":
            withdrawn = max(0, round(pump.true_reservoir_ul) + rng.randint(-3_000, 3_000))
            drugs = rng.choice([MIX, BACLOFEN])
            accepted, bridge = rng.random() < 0.7, rng.random() < 0.3
            pump.apply(Refill(withdrawn, rng.randint(5_000, 20_000), drugs, True, accepted, bridge))
        elif op == "fault":
            pump.inject_fault(rng.choice(PUMP_FAULTS), {})  # clears twice as likely: faults come and go
        elif op == "ack":
            listed = pump.alarms.active()
            if listed:
                pump.alarms.acknowledge(rng.choice(listed).code, now)
        elif op == "mri":  # a scan of minutes to hours, its end, or the clinician's check
            what = rng.choice(["scan", "scan", "end", "check", "check"])
            if what == "scan":
                keys: dict[str, Any] = {"minutes": rng.choice([0, 0.05, 20, 45, 180])}
                if pump.config.mechanism is PumpMechanism.PERISTALTIC:
                    keys |= {"resume_delay_min": rng.choice([0, 0, 90]), "restarts": rng.random() < 0.8}
                pump.inject_fault("mri_scan", keys)
            elif what == "end":
                pump.inject_fault("end_mri_scan", {})
            else:
                pump.apply(MriCheckDone())
        elif op == "fail":
            pump.inject_fault("battery_failure", {})
    except (DeviceRejected, ValueError):
        pass


# --- the runs ------------------------------------------------------------------------------------
def scs_model(kind: BatteryKind, seed: int) -> Stimulator:
    """Batteries sized so ERI and EOS come within the run, and scans on a schedule."""
    config = ScsConfig(
        battery_kind=kind,
        primary=PrimaryCellConfig(capacity_j=60_000.0, nominal_power_w=1e-3, max_life_years=2.5 if seed % 2 else 0.0),
        rechargeable=RechargeableCellConfig(capacity_j=1_500.0, fade_per_year=0.15, fade_per_cycle=0.001),
        impedance_scan_h=24.0 * 7,
        auto_recharge=seed != 3,
    )
    return Stimulator(config, T0, seed, EventLog(LOG_CAPACITY))


def pump_model(seed: int) -> Pump:
    """A cell that ends by age (odd seeds) or, being small, by energy within the run."""
    cell = PumpConfig().cell
    cell = replace(cell, max_life_years=1.5) if seed % 2 else replace(cell, capacity_j=6_000.0)
    mechanism = PumpMechanism.VALVE_GATED if seed >= 4 else PumpMechanism.PERISTALTIC
    return Pump(PumpConfig(cell=cell, mechanism=mechanism), T0, seed, EventLog(LOG_CAPACITY))


def drive(
    model: Any,
    step: Callable[[random.Random, Any, bool], None],
    rebuild: Callable[[Any], Any],
    reference: Callable[[Any], Any],
    seed: int,
) -> list[Any]:
    """Run the sequence, checking status() after every step; return the statuses seen."""
    rng = random.Random(f"status-cache:{seed}")
    seen = []
    for i in range(STEPS):
        if i == STEPS // 2:  # a restart midway, through the JSON the state file holds: it must carry on exactly
            model = type(model).from_state(json.loads(json.dumps(model.to_state())))
        step(rng, model, i >= LATE)
        status = model.status()
        fresh = rebuild(model)
        assert status == fresh.status(), f"step {i}: a kept value went stale"
        assert status == reference(fresh), f"step {i}: status differs from its plain computation"
        assert model.status() == status  # asking again changes nothing
        seen.append(status)
    return seen


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind", [BatteryKind.RECHARGEABLE, BatteryKind.PRIMARY])
def test_scs_status_is_always_freshly_exact(kind, seed):
    seen = drive(scs_model(kind, seed), scs_step, rebuilt_scs, reference_scs_status, seed)
    # The run must have reached what it is meant to exercise.
    states = {s.battery_state for s in seen}
    assert {BatteryState.ERI, BatteryState.EOS} & states or BatteryState.FAILED in states
    assert any(s.therapy_on for s in seen) and any(s.alarms for s in seen)
    if kind is BatteryKind.RECHARGEABLE:
        assert any(s.charging for s in seen)


@pytest.mark.parametrize("seed", SEEDS)
def test_pump_status_is_always_freshly_exact(seed):
    seen = drive(pump_model(seed), pump_step, rebuilt_pump, reference_pump_status, seed)
    assert any(s.infusing for s in seen) and any(s.bolus_active for s in seen) and any(s.alarms for s in seen)
    assert {s.battery_state for s in seen} & {BatteryState.ERI, BatteryState.EOS, BatteryState.FAILED}
    assert any(s.mri_suspended for s in seen) and any(s.mri_check_due for s in seen)


def test_status_right_after_each_kind_of_change():
    """The same instant, before and after a change: the second status must show it."""
    stim = scs_model(BatteryKind.RECHARGEABLE, 5)
    area = Area(0b1, 0b10, 4_000, 300, 50, Waveform.TONIC, 0, 0, 0, 0)
    changes: list[Callable[[], Any]] = [
        lambda: stim.apply(StimProgramSet(1, True, (area,), 6_000, 2)),
        lambda: stim.apply(TherapySet(True)),
        lambda: stim.apply(StimProgramSet(1, True, (replace(area, amplitude_ua=6_000),), 6_000, 2)),
        lambda: stim.advance_to(stim.now_ms + DAY_MS),  # off a full battery, so a charging session lasts
        lambda: stim.set_telemetry_active(True),
        lambda: stim.inject_fault("lead_short", {"contact": 1}),
        lambda: stim.apply(ImpedanceCheck()),
        lambda: stim.inject_fault("charge", {"coupling_pct": 60}),
        lambda: stim.alarms.acknowledge(stim.alarms.active()[0].code, stim.now_ms),
        lambda: stim.inject_fault("stop_charge", {}),
        # The check turned the shorted contact off: mending it changes nothing until a check reads it good.
        lambda: (stim.inject_fault("clear_lead", {"contact": 1}), stim.apply(ImpedanceCheck())),
        lambda: stim.apply(TherapySet(False)),
        lambda: stim.inject_fault("battery_failure", {}),
    ]
    for change in changes:
        stim.advance_to(stim.now_ms + MINUTE_MS)
        before = stim.status()
        change()
        after = stim.status()
        assert after == reference_scs_status(rebuilt_scs(stim)) != before, change
    pump = pump_model(5)
    ptm = PatientBolusSettings(True, 20, 10, 30, 4)
    pump_changes: list[Callable[[], Any]] = [
        lambda: pump.apply(DosingSet(DosingMode.FLEX, 0, (FlexStep(0, 300), FlexStep(600, 900)), ptm, 2_000)),
        lambda: pump.apply(Bolus(BolusKind.PATIENT, 0, 0)),
        lambda: pump.inject_fault("motor_stall", {}),
        lambda: pump.inject_fault("clear_motor", {}),
        lambda: pump.apply(Refill(pump.reservoir_ul, 15_000, BACLOFEN, True, True, False)),
        lambda: pump.alarms.acknowledge(pump.alarms.active()[0].code, pump.now_ms),
        lambda: pump.apply(TherapySet(False)),
        lambda: pump.inject_fault("battery_failure", {}),
    ]
    for change in pump_changes:
        pump.advance_to(pump.now_ms + 10 * MINUTE_MS)
        before = pump.status()
        change()
        after = pump.status()
        assert after == reference_pump_status(rebuilt_pump(pump)) != before, change
