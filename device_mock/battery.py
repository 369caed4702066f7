"""Battery models shared by the stimulator and the pump: a primary cell and a rechargeable cell.

Both are energy accounts drained at a constant power between events, so a segment integrates in
closed form (``drain(power_w, seconds)``) and the time at which a threshold will be crossed is
exact (``seconds_until_*``). Device models use those times as breakpoints, which is what makes the
simulation give the same result at any speed. Capacities are not published by the makers
(docs/devices.md 1.5): the defaults are engineering estimates [E], sized so typical settings reach the
documented service lives, and every one is a configurable field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from protocols.messages import BatteryState

YEAR_S = 365.25 * 86_400.0
DAY_S = 86_400.0
MIN_CAPACITY_FRACTION = 0.05  # fade never takes a cell below this share of its new capacity


@dataclass(frozen=True)
class PrimaryCellConfig:
    """A primary cell: energy, voltage curve and the ERI/EOS rules."""

    capacity_j: float = 20_000.0  # [E] about 1.7 Ah at 3.2 V
    bol_mv: int = 3_200  # beginning of life [E]
    eri_mv: int = 2_600  # Activa PC class ERI voltage [A]
    eos_mv: int = 2_200  # Activa PC class EOS voltage [A]
    eri_reserve_days: float = 90.0  # ERI -> EOS at nominal drain [V SynchroMed]
    nominal_power_w: float = 60e-6  # drain the ERI reserve is sized for [E]
    max_life_years: float = 0.0  # hard end of service by age (SynchroMed II: 7) [V]; 0 = none


class PrimaryBattery:
    """A primary cell: remaining energy, voltage, and the OK -> ERI -> EOS sequence."""

    def __init__(self, config: PrimaryCellConfig, implant_ms: int, remaining_j: float | None = None) -> None:
        self.config = config
        self.implant_ms = implant_ms
        self.remaining_j = config.capacity_j if remaining_j is None else remaining_j
        # Fixed for the cell's life (the config is frozen) and asked on every status poll: worked out once.
        self._eri_reserve_j = config.nominal_power_w * config.eri_reserve_days * DAY_S
        self._age_limits_ms: tuple[int, int] | None = None
        if config.max_life_years:
            eos = implant_ms + int(config.max_life_years * YEAR_S * 1000)
            self._age_limits_ms = (eos - int(config.eri_reserve_days * DAY_S * 1000), eos)

    @property
    def eri_reserve_j(self) -> float:
        """Energy left at ERI: what the nominal drain uses in the ERI-to-EOS interval."""
        return self._eri_reserve_j

    @property
    def fraction(self) -> float:
        """Remaining energy as a fraction of capacity."""
        return max(0.0, self.remaining_j / self.config.capacity_j)

    def drain(self, power_w: float, seconds: float) -> None:
        """Use ``power_w`` for ``seconds``."""
        self.remaining_j = max(0.0, self.remaining_j - power_w * seconds)

    def take(self, energy_j: float) -> float:
        """Use a lump of ``energy_j`` at once (a receiver wake-up); return the joules there were to take."""
        used = min(self.remaining_j, max(0.0, energy_j))
        self.remaining_j -= used
        return used

    def seconds_until_eri(self, power_w: float) -> float:
        """Seconds until the ERI energy level at ``power_w`` (0 if reached; inf if no drain)."""
        return self.seconds_until_level(self._eri_reserve_j, power_w)

    def seconds_until_level(self, level_j: float, power_w: float) -> float:
        """Seconds until ``level_j`` joules are left at ``power_w`` (0 if reached; inf if no drain)."""
        return _seconds_to_level(self.remaining_j, level_j, power_w)

    def seconds_until_empty(self, power_w: float) -> float:
        """Seconds until the energy runs out at ``power_w``."""
        return _seconds_to_level(self.remaining_j, 0.0, power_w)

    def age_limit_ms(self, eri: bool) -> int | None:
        """Device time of the age-based ERI (``eri``) or EOS, if the cell has an age limit."""
        limits = self._age_limits_ms
        return None if limits is None else limits[0] if eri else limits[1]

    def state(self, now_ms: int) -> BatteryState:
        """OK, ERI or EOS by energy and by age."""
        limits = self._age_limits_ms
        if self.remaining_j <= 0.0 or (limits is not None and now_ms >= limits[1]):
            return BatteryState.EOS
        if self.remaining_j <= self._eri_reserve_j or (limits is not None and now_ms >= limits[0]):
            return BatteryState.ERI
        return BatteryState.OK

    def voltage_mv(self) -> int:
        """Cell voltage: flat plateau, then a knee down to EOS voltage (Li/CFx-like) [E]."""
        c = self.config
        eri_fraction = self._eri_reserve_j / c.capacity_j
        f = self.fraction
        if f >= eri_fraction:
            span = (f - eri_fraction) / max(1e-9, 1.0 - eri_fraction)
            return round(c.eri_mv + (c.bol_mv - c.eri_mv) * math.sqrt(span))
        return round(c.eos_mv + (c.eri_mv - c.eos_mv) * f / max(1e-9, eri_fraction))

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state."""
        return {"config": asdict(self.config), "implant_ms": self.implant_ms, "remaining_j": self.remaining_j}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> PrimaryBattery:
        """Rebuild from ``to_state`` output."""
        return cls(PrimaryCellConfig(**data["config"]), data["implant_ms"], data["remaining_j"])


@dataclass(frozen=True)
class RechargeableCellConfig:
    """A lithium-ion cell with capacity fade."""

    capacity_j: float = 2_592.0  # 200 mAh x 3.6 V (docs/devices.md 1.5 worked example) [E]
    full_mv: int = 4_100  # [E]
    empty_mv: int = 3_300  # [E]
    fade_per_year: float = 0.02  # calendar fade [E]
    fade_per_cycle: float = 0.0002  # per equivalent full cycle [E]
    low_fraction: float = 0.25  # "recharge soon" [E]
    recharge_now_fraction: float = 0.10  # "recharge now" [E]
    eos_capacity_fraction: float = 0.50  # end of service when capacity has faded to this [E]
    eri_min_days_per_charge: float = 1.0  # ERI when a full charge lasts less than this (Eterna rule) [V]
    # ERI also once the faded capacity is within reach of EOS, so ERI always comes first: 2 points above
    # EOS, about a year ahead at the calendar fade [E].
    eri_capacity_fraction: float = 0.52
    charge_power_w: float = 0.2  # into the cell at perfect coupling: full in ~4 h (Boston) [V/E]
    # A session goes on this long once the cell is full: the constant-voltage top-off a lithium-ion charge
    # ends with, and finding the coupling [E]. Calibrated so one session a day of a 10 kHz program gives
    # Provenzano 2021's daily charging minutes at 3 % and 14 % duty (docs/devices.md 1.5) [V/E].
    charge_tail_min: float = 7.0
    # Left flat (stimulation stopped by the battery) longer than this, the cell is damaged for good: it must
    # be recharged within 30-90 days of the stop (SJM Protege manual p31) [V range]; 60, its middle [E].
    deep_discharge_days: float = 60.0

    def __post_init__(self) -> None:
        if self.deep_discharge_days <= 0:
            raise ValueError(f"deep_discharge_days {self.deep_discharge_days}: a flat cell cannot be damaged at once")
        if not self.eos_capacity_fraction < self.eri_capacity_fraction < 1.0:
            raise ValueError(
                f"eri_capacity_fraction {self.eri_capacity_fraction} must lie between "
                f"eos_capacity_fraction {self.eos_capacity_fraction} and 1: ERI comes before EOS"
            )


class RechargeableBattery:
    """A rechargeable cell: state of charge, capacity fade, charging."""

    def __init__(self, config: RechargeableCellConfig, implant_ms: int) -> None:
        self.config = config
        self.implant_ms = implant_ms
        self.charge_j = config.capacity_j
        self.throughput_j = 0.0
        self._capacity_key: tuple[int, float] | None = None
        self._capacity = config.capacity_j

    def capacity_j(self, now_ms: int) -> float:
        """Capacity after calendar and cycle fade."""
        key = (now_ms, self.throughput_j)
        if key == self._capacity_key:  # asked many times per status at the same instant
            return self._capacity
        self._capacity_key, self._capacity = key, self._faded_capacity_j(now_ms)
        return self._capacity

    def _faded_capacity_j(self, now_ms: int) -> float:
        c = self.config
        years = max(0.0, (now_ms - self.implant_ms) / 1000.0 / YEAR_S)
        cycles = self.throughput_j / c.capacity_j
        return c.capacity_j * max(MIN_CAPACITY_FRACTION, 1.0 - c.fade_per_year * years - c.fade_per_cycle * cycles)

    def soc(self, now_ms: int) -> float:
        """State of charge, 0..1, of the current capacity."""
        return self._soc(self.capacity_j(now_ms))

    def _soc(self, capacity_j: float) -> float:
        return min(1.0, self.charge_j / capacity_j)

    def drain(self, power_w: float, seconds: float) -> None:
        """Use ``power_w`` for ``seconds``."""
        used = min(self.charge_j, power_w * seconds)
        self.charge_j -= used
        self.throughput_j += used

    def take(self, energy_j: float) -> float:
        """Use a lump of ``energy_j`` from the cell (it counts toward cycle fade); return the joules taken."""
        used = min(self.charge_j, max(0.0, energy_j))
        self.charge_j -= used
        self.throughput_j += used
        return used

    def charge(self, power_w: float, seconds: float, now_ms: int) -> None:
        """Put ``power_w`` into the cell for ``seconds``, up to the current capacity."""
        self.charge_j = min(self.capacity_j(now_ms), self.charge_j + power_w * seconds)

    def seconds_until_fraction(self, fraction: float, net_drain_w: float, now_ms: int) -> float:
        """Seconds until the state of charge falls to ``fraction`` at a net drain of ``net_drain_w``."""
        return _seconds_to_level(self.charge_j, fraction * self.capacity_j(now_ms), net_drain_w)

    def state(self, now_ms: int, drain_w: float) -> BatteryState:
        """EOS by fade, ERI by days per charge, else by state of charge."""
        capacity = self.capacity_j(now_ms)
        return self._state(capacity, self._soc(capacity), drain_w)

    def eri_capacity_j(self, drain_w: float) -> float:
        """The faded capacity at which ERI is reached: a full charge lasting under ``eri_min_days_per_charge``
        at ``drain_w`` (Eterna rule), or the capacity near EOS, whichever comes first."""
        c = self.config
        return max(drain_w * c.eri_min_days_per_charge * DAY_S, c.eri_capacity_fraction * c.capacity_j)

    def _state(self, capacity_j: float, soc: float, drain_w: float) -> BatteryState:
        c = self.config
        if capacity_j <= c.eos_capacity_fraction * c.capacity_j:
            return BatteryState.EOS
        if capacity_j <= self.eri_capacity_j(drain_w):
            return BatteryState.ERI
        if soc <= c.recharge_now_fraction:
            return BatteryState.RECHARGE_NOW
        if soc <= c.low_fraction:
            return BatteryState.LOW
        return BatteryState.OK

    def voltage_mv(self, now_ms: int) -> int:
        """Cell voltage from state of charge (linear between empty and full) [E]."""
        return self._voltage_mv(self.soc(now_ms))

    def _voltage_mv(self, soc: float) -> int:
        c = self.config
        return round(c.empty_mv + (c.full_mv - c.empty_mv) * soc)

    def gauge(self, now_ms: int, drain_w: float) -> tuple[float, float, BatteryState, int]:
        """(capacity J, state of charge, state, voltage mV) at ``now_ms``.

        The values of ``capacity_j``, ``soc``, ``state`` and ``voltage_mv`` with the faded capacity worked
        out once: a status poll wants them all.
        """
        capacity = self.capacity_j(now_ms)
        soc = self._soc(capacity)
        return capacity, soc, self._state(capacity, soc, drain_w), self._voltage_mv(soc)

    def to_state(self) -> dict[str, Any]:
        """JSON-ready state."""
        return {
            "config": asdict(self.config),
            "implant_ms": self.implant_ms,
            "charge_j": self.charge_j,
            "throughput_j": self.throughput_j,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> RechargeableBattery:
        """Rebuild from ``to_state`` output."""
        battery = cls(RechargeableCellConfig(**data["config"]), data["implant_ms"])
        battery.charge_j = data["charge_j"]
        battery.throughput_j = data["throughput_j"]
        return battery


def _seconds_to_level(level_now: float, level: float, power_w: float) -> float:
    if level_now <= level:
        return 0.0
    if power_w <= 0:
        return math.inf
    return (level_now - level) / power_w
