"""Seeded variety for ``implant-mock --fleet N``: each device a different patient of one clinic.

For a fleet device built afresh, ``draw_member(index, kind, seed)`` picks what its life so far
has been: how long ago it was implanted (the battery's age), for a pump its drug mix, rate and how
long since its last refill (so the reservoir fill), for a stimulator its battery kind and a stored,
active program, and for a few (``FleetConfig.fault_fraction``) a fault: a lead fracture or short,
a stalled motor or an occlusion, or a refill left too long (low reservoir). ``build_member`` then
makes the model at its implant date and lives that time through the model's own API (programs,
monthly refills, ``advance_to``), so batteries, event logs and alarms are the model's own, not
painted on. The same seed gives the same fleet. Every figure here is a clinic-mix estimate [E]
unless tagged; ``FleetConfig`` holds them all so a scenario's ``[fleet]`` table can change them.

Owns the fleet's draws; must not import ``cli``, ``server`` or ``dashboard``.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from protocols.messages import (
    Area,
    Drug,
    DrugConcentration,
    ImpedanceCheck,
    Refill,
    StimProgramSet,
    TherapySet,
    Waveform,
)

from .model import DeviceModel
from .pump import Pump, PumpConfig
from .stimulator import ScsConfig, Stimulator

DAY_MS = 86_400_000
YEAR_DAYS = 365.25


@dataclass(frozen=True)
class DrugMix:
    """A pump prescription: drugs and their strengths, and the range of daily rates it runs at."""

    name: str
    drugs: tuple[DrugConcentration, ...]
    rate_ul_per_day: tuple[int, int]  # the rates that keep each drug's daily dose in its reported range


# Strengths and daily doses from docs/devices.md 2.3; which mixes a clinic uses and how often [E].
MIXES = (
    # morphine 10 mg/mL [L] at 0.1-1 mL/day: 1-10 mg/day, inside the reported 1-20 mg/day [V]
    DrugMix("morphine", (DrugConcentration(Drug.MORPHINE, 10_000_000),), (100, 1_000)),
    # with bupivacaine 20 mg/mL: 0.3-1 mL/day gives 6-20 mg/day bupivacaine [V aneskey]
    DrugMix(
        "morphine + bupivacaine",
        (DrugConcentration(Drug.MORPHINE, 10_000_000), DrugConcentration(Drug.BUPIVACAINE, 20_000_000)),
        (300, 1_000),
    ),
    # hydromorphone 5 mg/mL [E] (PACC ceiling 15 mg/mL [L]) at 0.1-1 mL/day: 0.5-5 mg/day [V 0.5-25]
    DrugMix("hydromorphone", (DrugConcentration(Drug.HYDROMORPHONE, 5_000_000),), (100, 1_000)),
    # baclofen 500 µg/mL [L] at 0.6-1.6 mL/day: 300-800 µg/day, the usual maintenance [L]
    DrugMix("baclofen", (DrugConcentration(Drug.BACLOFEN, 500_000),), (600, 1_600)),
    # baclofen 2,000 µg/mL [V] at 0.15-0.4 mL/day: 300-800 µg/day
    DrugMix("baclofen concentrated", (DrugConcentration(Drug.BACLOFEN, 2_000_000),), (150, 400)),
    # ziconotide 25 µg/mL [L] at 0.1-0.5 mL/day: 2.5-12.5 µg/day, under the 19.2 µg/day maximum [V]
    DrugMix("ziconotide", (DrugConcentration(Drug.ZICONOTIDE, 25_000),), (100, 500)),
)
MIX_WEIGHTS = (30, 25, 10, 15, 10, 10)  # share of each mix in the clinic, % [E]
SCS_FAULTS = ("lead_open", "lead_short")
PUMP_FAULTS = ("motor_stall", "low_reservoir")  # occlusion left out: it raises no alarm of its own


@dataclass(frozen=True)
class FleetConfig:
    """Every tunable of the fleet's draws (scenario table ``[fleet]``); all clinic estimates [E]."""

    fault_fraction: float = 0.04  # devices with a fault: "a few" of a clinic's, 2-5 % asked for [E]
    scs_max_age_days: int = 3_300  # rechargeable SCS IPGs last >= 10 years [V Eterna]: up to ~9 years in [E]
    primary_max_age_days: int = 1_800  # primary-cell SCS: up to ~5 years in, some reach ERI [E]
    pump_max_age_days: int = 1_900  # SynchroMed II lasts 5-7 years [V]: up to ~5.2 years in [E]
    primary_fraction: float = 0.2  # share of SCS on a primary cell; most current IPGs recharge [E]
    refill_every_days: int = 28  # clinics refill before the alarm; monthly at 0.5 mL/day [V aneskey]
    refill_alarm_margin_days: int = 7  # ... and at least this long before the alarm volume is reached [E]
    amplitude_ua: tuple[int, int] = (1_000, 6_000)  # tonic amplitudes drawn, µA [E]
    pulse_width_us: tuple[int, int] = (200, 450)  # µs [E]
    rate_hz: tuple[int, int] = (40, 80)  # Hz, a tonic program [E]
    # A primary cell runs low-dose settings (Proclaim XR "up to ~10 years at low-dose settings" [L]):
    # lower amplitudes, cycled 30 s on / 90 s off like the microdosing of bench/sim_speed.py [E].
    primary_amplitude_ua: tuple[int, int] = (800, 2_500)
    primary_pulse_width_us: tuple[int, int] = (200, 300)
    primary_rate_hz: tuple[int, int] = (30, 50)
    primary_cycle_s: tuple[int, int] = (30, 90)


@dataclass(frozen=True)
class FleetMember:
    """What the seed drew for one device of the fleet."""

    index: int
    kind: str  # "scs" or "pump"
    age_days: int  # implanted this long before the fleet's start time
    overrides: dict[str, Any] = field(default_factory=dict)  # config fields (ScsConfig / PumpConfig)
    mix: str = ""  # a pump's DrugMix name
    days_since_refill: int = 0  # a pump's last refill (its reservoir fill follows from the rate)
    program: StimProgramSet | None = None  # a stimulator's stored program, active, therapy on
    fault: str | None = None  # a SCS_FAULTS / PUMP_FAULTS name
    fault_params: dict[str, Any] = field(default_factory=dict)


def fleet_config(overrides: dict[str, Any]) -> FleetConfig:
    """``FleetConfig`` with a scenario's ``[fleet]`` values; ``ValueError`` naming an unknown key."""
    known = {f.name for f in dataclasses.fields(FleetConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"[fleet] has no setting(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(known))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    config = FleetConfig(**values)
    if not 0.0 <= config.fault_fraction <= 1.0 or not 0.0 <= config.primary_fraction <= 1.0:
        raise ValueError("[fleet] fault_fraction and primary_fraction are shares from 0 to 1")
    return config


def draw_member(index: int, kind: str, seed: int, config: FleetConfig | None = None) -> FleetMember:
    """The life so far of fleet device ``index`` of ``kind``: the same for the same seed and index."""
    config = config or FleetConfig()
    rng = random.Random(f"{seed}:fleet:{index}")
    faulty = rng.random() < config.fault_fraction
    if kind == "scs":
        return _draw_scs(index, rng, config, faulty)
    if kind == "pump":
        return _draw_pump(index, rng, config, faulty)
    raise ValueError(f"no fleet draw for device kind {kind!r}")


def _draw_scs(index: int, rng: random.Random, config: FleetConfig, faulty: bool) -> FleetMember:
    primary = rng.random() < config.primary_fraction
    overrides: dict[str, Any] = {"battery_kind": "PRIMARY"} if primary else {}
    age = rng.randint(30, config.primary_max_age_days if primary else config.scs_max_age_days)
    cathode = rng.randrange(1, 8)
    amplitudes, widths, rates = (
        (config.primary_amplitude_ua, config.primary_pulse_width_us, config.primary_rate_hz)
        if primary
        else (config.amplitude_ua, config.pulse_width_us, config.rate_hz)
    )
    amplitude = rng.randrange(amplitudes[0], amplitudes[1] + 1, 50)
    cycle = config.primary_cycle_s if primary else (0, 0)
    area = Area(
        anode_mask=1 << (cathode - 1),
        cathode_mask=1 << cathode,
        amplitude_ua=amplitude,
        pulse_width_us=rng.randrange(widths[0], widths[1] + 1, 10),
        rate_hz=rng.randint(*rates),
        waveform=Waveform.TONIC,
        burst_pulses=0,
        burst_rate_hz=0,
        cycle_on_s=cycle[0],
        cycle_off_s=cycle[1],
    )
    program = StimProgramSet(rng.randint(1, 4), True, (area,), amplitude + 2_000, 2)  # patient +2 mA [E]
    fault, params = None, {}
    if faulty:
        fault = rng.choice(SCS_FAULTS)
        params = {"contact": cathode}
    return FleetMember(index, "scs", age, overrides, program=program, fault=fault, fault_params=params)


def _draw_pump(index: int, rng: random.Random, config: FleetConfig, faulty: bool) -> FleetMember:
    mix = rng.choices(MIXES, weights=MIX_WEIGHTS)[0]
    rate = rng.randrange(mix.rate_ul_per_day[0], mix.rate_ul_per_day[1] + 1, 10)
    base = PumpConfig()
    overrides: dict[str, Any] = {"initial_rate_ul_per_day": rate, "initial_drugs": mix.drugs}
    age = rng.randint(30, config.pump_max_age_days)
    interval = refill_interval_days(rate, base, config)
    fault = rng.choice(PUMP_FAULTS) if faulty else None
    if fault == "low_reservoir":  # the refill visit was missed: a day or more past the alarm volume [E]
        since = (base.capacity_ul - base.alarm_volume_ul) // rate + rng.randint(1, 5)
        since = min(since, (base.capacity_ul - 100) // rate)  # ... yet not quite empty
    else:
        since = rng.randint(0, interval)
    return FleetMember(index, "pump", max(age, since + 1), overrides, mix.name, since, fault=fault)


def refill_interval_days(rate_ul_per_day: int, pump: PumpConfig, config: FleetConfig) -> int:
    """Days between a clinic's refills: monthly, or sooner to stay a margin above the alarm volume."""
    to_alarm = (pump.capacity_ul - pump.alarm_volume_ul) // max(1, rate_ul_per_day)
    return max(1, min(config.refill_every_days, to_alarm - config.refill_alarm_margin_days))


def build_member(
    member: FleetMember, config: ScsConfig | PumpConfig, start_ms: int, seed: int, fleet: FleetConfig | None = None
) -> DeviceModel:
    """The model of ``member`` at ``start_ms``, implanted ``age_days`` before and lived until then.

    ``config`` is the device's config with ``member.overrides`` already applied (the caller adds the
    serial). A stimulator gets its program and therapy at implant; a pump is refilled with its mix
    every ``refill_interval_days`` and last ``days_since_refill`` ago. The fault comes last, so it
    is new at the start (a lead fault shows at once: an impedance check follows it).
    """
    fleet = fleet or FleetConfig()
    implant_ms = start_ms - member.age_days * DAY_MS
    if isinstance(config, ScsConfig):
        stim = Stimulator(config, implant_ms, seed)
        assert member.program is not None
        stim.apply(member.program)
        stim.apply(TherapySet(True))
        stim.advance_to(start_ms)
        if member.fault:
            stim.inject_fault(member.fault, dict(member.fault_params))
            stim.apply(ImpedanceCheck())
        return stim
    pump = Pump(config, implant_ms, seed)
    last_refill_ms = start_ms - member.days_since_refill * DAY_MS
    step_ms = refill_interval_days(config.initial_rate_ul_per_day, config, fleet) * DAY_MS
    refills = list(range(last_refill_ms, implant_ms, -step_ms))[::-1]
    for at_ms in refills:
        if at_ms <= implant_ms:
            continue
        pump.advance_to(at_ms)
        withdrawn = min(config.capacity_ul, round(pump.true_reservoir_ul))
        pump.apply(Refill(withdrawn, config.capacity_ul, config.initial_drugs, True, True, False))
    pump.advance_to(start_ms)
    if member.fault and member.fault != "low_reservoir":  # a low reservoir is the missed refill itself
        pump.inject_fault(member.fault, dict(member.fault_params))
    return pump
