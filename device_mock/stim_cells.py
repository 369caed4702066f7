"""The stimulator's two battery drives: a primary or a rechargeable cell behind a constant draw.

Each turns the draw of a segment into exact crossing times (ERI, EOS, full, low), and reports
what a status poll shows of the cell. Also the charging economics of a program: its draw and the
minutes a day a patient spends on the charger (``daily_charge_minutes``). Pure: no event log, no
clock. Used by ``stimulator.py``; must not import it nor anything of the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from protocols.messages import BatteryKind, BatteryState, EventCode, StimProgramSet

from .battery import (
    DAY_S,
    MIN_CAPACITY_FRACTION,
    YEAR_S,
    PrimaryBattery,
    RechargeableBattery,
)
from .stim_physics import ScsConfig, battery_pulse_power_w, load_ohm

__all__ = ["PrimaryDrive", "RechargeDrive", "Snapshot", "daily_charge_minutes", "make_drive", "program_draw_w"]


# --- battery drives ------------------------------------------------------------------------------
# What a status poll shows of a cell, as ``snapshot`` returns it: (fraction, voltage_mv, state,
# capacity_fraction, seconds_to_recharge, eri_ms, eos_ms), each the value of the method of that name
# (the last two: ``projections_ms``) at the same instant, draw and program power.
Snapshot = tuple[float, int, BatteryState, float, float, int, int]


def _future(seconds: float) -> list[float]:
    return [seconds] if 0.0 < seconds < math.inf else []


@dataclass
class PrimaryDrive:
    """A primary cell behind the stimulator: OK -> ERI -> EOS by energy (and by age, if set)."""

    battery: PrimaryBattery
    kind: BatteryKind = field(default=BatteryKind.PRIMARY, init=False)

    def integrate(self, draw_w: float, charge_w: float, seconds: float, end_ms: int) -> None:
        """Draw ``draw_w`` for ``seconds`` (a primary cell cannot be charged)."""
        self.battery.drain(draw_w, seconds)

    def take(self, energy_j: float) -> float:
        """Draw a lump of energy now (receiver wake-ups); return the joules the cell had to give."""
        return self.battery.take(energy_j)

    def crossings_s(self, draw_w: float, charge_w: float, now_ms: int, program_w: float) -> list[float]:
        """Seconds until each threshold this constant draw will cross (ERI reserve, empty)."""
        b = self.battery
        return _future(b.seconds_until_eri(draw_w)) + _future(b.seconds_until_empty(draw_w))

    def scheduled_ms(self) -> list[int]:
        """Fixed device times of age-based ERI/EOS."""
        return [t for t in (self.battery.age_limit_ms(True), self.battery.age_limit_ms(False)) if t is not None]

    def state(self, now_ms: int, program_w: float) -> BatteryState:
        """OK, ERI or EOS."""
        return self.battery.state(now_ms)

    def conditions(self, now_ms: int, program_w: float) -> dict[EventCode, bool]:
        """Battery alarm conditions; ERI gives way to EOS."""
        state = self.state(now_ms, program_w)
        return {EventCode.BATTERY_ERI: state is BatteryState.ERI, EventCode.BATTERY_EOS: state is BatteryState.EOS}

    def empty(self) -> bool:
        """No energy left to run on."""
        return self.battery.remaining_j <= 0.0

    def full(self, now_ms: int) -> bool:
        """A primary cell is never charged."""
        return True

    def fraction(self, now_ms: int) -> float:
        """Remaining energy fraction."""
        return self.battery.fraction

    def voltage_mv(self, now_ms: int) -> int:
        """Cell voltage."""
        return self.battery.voltage_mv()

    def capacity_fraction(self, now_ms: int) -> float:
        """A primary cell does not fade in this model."""
        return 1.0

    def projections_ms(self, now_ms: int, draw_w: float, program_w: float) -> tuple[int, int]:
        """Projected ERI and EOS times at this draw (0 when not projectable)."""
        b = self.battery
        eri = _at(now_ms, b.seconds_until_eri(draw_w), b.age_limit_ms(True))
        return eri, _at(now_ms, b.seconds_until_empty(draw_w), b.age_limit_ms(False))

    def seconds_to_recharge(self, draw_w: float, now_ms: int) -> float:
        """Never: a primary cell is not recharged."""
        return 0.0

    def snapshot(self, now_ms: int, draw_w: float, program_w: float) -> Snapshot:
        """What a status poll shows of the cell, in one call (see ``Snapshot``)."""
        b = self.battery
        return b.fraction, b.voltage_mv(), b.state(now_ms), 1.0, 0.0, *self.projections_ms(now_ms, draw_w, program_w)

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state."""
        return self.battery.to_state()


def _at(now_ms: int, seconds: float, fixed_ms: int | None) -> int:
    """The earlier of ``now + seconds`` (if finite and not negative) and ``fixed_ms``, 0 if neither is."""
    at = now_ms + math.ceil(seconds * 1000) if 0.0 < seconds < math.inf else now_ms if seconds == 0.0 else None
    if fixed_ms is not None:
        at = fixed_ms if at is None else min(at, fixed_ms)
    return 0 if at is None else at


@dataclass
class RechargeDrive:
    """A rechargeable cell behind the stimulator: state of charge, charging, fade, Eterna ERI.

    Charge and capacity both move linearly in time within a segment (drain or charge at constant
    power; calendar fade per second; cycle fade per joule drawn), so every threshold crossing, even
    one relative to the fading capacity, is the root of a linear equation.
    """

    battery: RechargeableBattery
    kind: BatteryKind = field(default=BatteryKind.RECHARGEABLE, init=False)

    def integrate(self, draw_w: float, charge_w: float, seconds: float, end_ms: int) -> None:
        """Run the device from the cell (or from the charger, the surplus filling the cell)."""
        net = charge_w - draw_w
        if charge_w > 0 and net >= 0:
            self.battery.charge(net, seconds, end_ms)
        elif net < 0:
            self.battery.drain(-net, seconds)

    def take(self, energy_j: float) -> float:
        """Draw a lump of energy now (receiver wake-ups) from the cell, even while charging; return the joules.

        The charger's surplus refills it over the rest of the segment, so only the cell's balance moves.
        """
        return self.battery.take(energy_j)

    def _rates(self, draw_w: float, charge_w: float) -> tuple[float, float]:
        """(d charge/dt, d throughput/dt), W: what ``integrate`` will do to the cell."""
        net = charge_w - draw_w
        if net < 0 and self.battery.charge_j <= 0.0:
            return 0.0, 0.0  # flat: nothing left to draw
        if charge_w > 0 and net >= 0:
            return net, 0.0
        return net, max(0.0, -net)

    # The helpers take the capacity at the segment's start (``capacity_j(now)``), worked out once by the caller.
    def _fade_w(self, throughput_w: float, capacity_j: float) -> float:
        """Capacity lost per second: calendar fade plus cycle fade of the energy drawn."""
        c = self.battery.config
        if capacity_j <= MIN_CAPACITY_FRACTION * c.capacity_j * (1 + 1e-9):
            return 0.0
        return c.capacity_j * c.fade_per_year / YEAR_S + c.fade_per_cycle * throughput_w

    def _seconds_to_soc(self, fraction: float, rate_w: float, fade_w: float, capacity_j: float) -> float:
        """Solve charge + r·t = fraction · (capacity - fade·t) for t > 0."""
        denominator = rate_w + fraction * fade_w
        if denominator == 0.0:
            return math.inf
        t = (fraction * capacity_j - self.battery.charge_j) / denominator
        return t if t > 0.0 else math.inf

    def _seconds_to_capacity(self, target_j: float, fade_w: float, capacity_j: float) -> float:
        return (capacity_j - target_j) / fade_w if capacity_j > target_j and fade_w > 0.0 else math.inf

    def _eri_j(self, program_w: float) -> float:
        """The capacity at which ERI is reached (see ``RechargeableBattery.eri_capacity_j``)."""
        return self.battery.eri_capacity_j(program_w)

    def crossings_s(self, draw_w: float, charge_w: float, now_ms: int, program_w: float) -> list[float]:
        """Seconds until each state-of-charge or capacity threshold this segment crosses."""
        c, capacity = self.battery.config, self.battery.capacity_j(now_ms)
        rate, throughput = self._rates(draw_w, charge_w)
        fade = self._fade_w(throughput, capacity)
        levels = [c.low_fraction, c.recharge_now_fraction] + ([1.0] if charge_w > 0 else []) + [0.0]
        times = [self._seconds_to_soc(f, rate, fade, capacity) for f in levels]
        times.append(self._seconds_to_capacity(c.eos_capacity_fraction * c.capacity_j, fade, capacity))
        times.append(self._seconds_to_capacity(self._eri_j(program_w), fade, capacity))
        return [t for t in times if t < math.inf]

    def scheduled_ms(self) -> list[int]:
        """No fixed-time events."""
        return []

    def state(self, now_ms: int, program_w: float) -> BatteryState:
        """EOS by fade, ERI by days per charge, else by state of charge."""
        return self.battery.state(now_ms, program_w)

    def conditions(self, now_ms: int, program_w: float) -> dict[EventCode, bool]:
        """Battery alarm conditions; "recharge soon" gives way to "recharge now"."""
        c, soc = self.battery.config, self.battery.soc(now_ms)
        state = self.state(now_ms, program_w)
        return {
            EventCode.BATTERY_LOW: c.recharge_now_fraction < soc <= c.low_fraction,
            EventCode.RECHARGE_NOW: soc <= c.recharge_now_fraction,
            EventCode.BATTERY_ERI: state is BatteryState.ERI,
            EventCode.BATTERY_EOS: state is BatteryState.EOS,
        }

    def empty(self) -> bool:
        """Flat."""
        return self.battery.charge_j <= 0.0

    def full(self, now_ms: int) -> bool:
        """Charged to the current capacity."""
        return self.battery.charge_j >= self.battery.capacity_j(now_ms)

    def fraction(self, now_ms: int) -> float:
        """State of charge."""
        return self.battery.soc(now_ms)

    def voltage_mv(self, now_ms: int) -> int:
        """Cell voltage."""
        return self.battery.voltage_mv(now_ms)

    def capacity_fraction(self, now_ms: int) -> float:
        """Capacity after fade, fraction of new."""
        return self.battery.capacity_j(now_ms) / self.battery.config.capacity_j

    def projections_ms(self, now_ms: int, draw_w: float, program_w: float) -> tuple[int, int]:
        """Projected ERI and EOS times: capacity fades by age and by the energy the program draws."""
        return self._projections_ms(now_ms, program_w, self.battery.capacity_j(now_ms))

    def _projections_ms(self, now_ms: int, program_w: float, capacity_j: float) -> tuple[int, int]:
        c = self.battery.config
        fade = self._fade_w(program_w, capacity_j)
        eri = self._seconds_to_capacity(self._eri_j(program_w), fade, capacity_j)
        eos = self._seconds_to_capacity(c.eos_capacity_fraction * c.capacity_j, fade, capacity_j)
        return _at(now_ms, eri, None), _at(now_ms, eos, None)

    def seconds_to_recharge(self, draw_w: float, now_ms: int) -> float:
        """Seconds until "recharge soon" at this draw from the present charge (0 if already due)."""
        return self._to_recharge_s(draw_w, self.battery.soc(now_ms), self.battery.capacity_j(now_ms))

    def _to_recharge_s(self, draw_w: float, soc: float, capacity_j: float) -> float:
        low = self.battery.config.low_fraction
        if soc <= low or draw_w <= 0:
            return 0.0
        t = self._seconds_to_soc(low, -draw_w, self._fade_w(draw_w, capacity_j), capacity_j)
        return 0.0 if math.isinf(t) else t

    def snapshot(self, now_ms: int, draw_w: float, program_w: float) -> Snapshot:
        """What a status poll shows of the cell, in one call with the faded capacity worked out once."""
        capacity, soc, state, mv = self.battery.gauge(now_ms, program_w)
        eri_ms, eos_ms = self._projections_ms(now_ms, program_w, capacity)
        capacity_fraction = capacity / self.battery.config.capacity_j
        return soc, mv, state, capacity_fraction, self._to_recharge_s(draw_w, soc, capacity), eri_ms, eos_ms

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state."""
        return self.battery.to_state()


def make_drive(config: ScsConfig, implant_ms: int, state: dict[str, Any] | None = None) -> PrimaryDrive | RechargeDrive:
    """The battery drive the config asks for, new or restored from ``to_state`` output."""
    if config.battery_kind is BatteryKind.PRIMARY:
        primary = PrimaryBattery.from_state(state) if state else PrimaryBattery(config.primary, implant_ms)
        return PrimaryDrive(primary)
    rechargeable = (
        RechargeableBattery.from_state(state) if state else RechargeableBattery(config.rechargeable, implant_ms)
    )
    return RechargeDrive(rechargeable)


# --- charging economics --------------------------------------------------------------------------
def program_draw_w(program: StimProgramSet, contact_ohm: Sequence[float], config: ScsConfig) -> float:
    """What a program takes from the cell with therapy on and no session open: pulses / η plus quiescent.

    The same sum as ``Stimulator.program_power_w`` for contacts at ``contact_ohm``; an area on an open
    contact (inf) delivers nothing.
    """
    total = config.quiescent_w
    for area in program.areas:
        z = load_ohm(area, contact_ohm)
        total += 0.0 if math.isinf(z) else battery_pulse_power_w(area, z, config)
    return total


def daily_charge_minutes(
    config: ScsConfig, draw_w: float, sessions_per_day: float = 1.0, coupling_pct: int | None = None
) -> float:
    """Average minutes a day on the charger for a patient who tops the cell up ``sessions_per_day`` times.

    Each session charges at ``charge_power_w`` x coupling (the device running from the charger) until
    full, then goes on ``charge_tail_min``; over a day the charge put in equals what ``draw_w`` took
    while off the charger. Fade does not change the daily energy. ``inf`` if the charger cannot keep up.
    """
    cell = config.rechargeable
    coupling = config.auto_recharge_coupling_pct if coupling_pct is None else coupling_pct
    charger_w = cell.charge_power_w * coupling / 100.0
    tails_s = sessions_per_day * cell.charge_tail_min * 60.0
    if charger_w <= draw_w or tails_s >= DAY_S:
        return math.inf
    # (charger - draw) x t = draw x (day - t - tails): the cell's balance over a day.
    filling_s = draw_w * (DAY_S - tails_s) / charger_w
    return math.inf if filling_s + tails_s > DAY_S else (filling_s + tails_s) / 60.0
