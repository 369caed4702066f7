"""Physics and limits of the stimulator model: its tunables, per-area pulse energy and charge density,
program validation, and the two battery drives that turn a constant draw into exact crossing times.

Pure functions and small classes: no event log, no clock. ``stimulator.py`` composes them. Numbers
come from docs/devices.md part 1 with their section and confidence tag; every [L], [E] and [A] number is a
field of ``ScsConfig`` so a scenario can override it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import Area, BatteryKind, BatteryState, EventCode, StimProgramSet, Waveform

from .battery import (
    MIN_CAPACITY_FRACTION,
    YEAR_S,
    PrimaryBattery,
    PrimaryCellConfig,
    RechargeableBattery,
    RechargeableCellConfig,
)
from .model import require

# ~10.9 years at microdosed BurstDR (Proclaim XR "up to ~10 years", 1.5) [L/E]; the ERI reserve is sized
# for a 0.3 mW draw: about a month of tonic stimulation, or a year of low-dose burst, after ERI [E].
SCS_PRIMARY = PrimaryCellConfig(capacity_j=20_000.0, nominal_power_w=300e-6)
PHASES = 2  # a biphasic pulse: a stimulating phase and an equal charge-balancing phase


@dataclass(frozen=True)
class ScsConfig:
    """Every tunable of the stimulator model (docs/devices.md section and tag after each)."""

    model_name: str = "EMU-SCS16"
    serial: str = "SCS-000001"
    firmware: str = "1.0.0"
    contacts: int = 16  # 16 most IPGs, 32 on Boston Spectra/WaveWriter (1.1, 1.9) [V]
    battery_kind: BatteryKind = BatteryKind.RECHARGEABLE  # most current SCS IPGs (1.1) [V]
    primary: PrimaryCellConfig = SCS_PRIMARY  # see above
    rechargeable: RechargeableCellConfig = field(default_factory=RechargeableCellConfig)  # 200 mAh x 3.6 V (1.5) [E]
    max_programs: int = 16  # program numbers 1..16 [E]
    max_areas: int = 4  # Boston: up to 4 areas per program (1.3) [A]
    amplitude_ua: tuple[int, int] = (0, 25_500)  # 0-25.5 mA (1.2) [L]
    pulse_width_us: tuple[int, int] = (20, 1_000)  # 20-1000 µs (1.2) [L]
    rate_hz: tuple[int, int] = (2, 1_200)  # tonic 2-1200 Hz (1.2) [L]
    hf_rate_hz: tuple[int, int] = (2, 10_000)  # sub-perception / HF10 up to 10 kHz (1.2) [L]
    burst_train_hz: tuple[int, int] = (2, 100)  # burst repetition rate; BurstDR 40 Hz (1.2) [V]; range [E]
    burst_pulses: tuple[int, int] = (2, 10)  # pulses per burst; BurstDR 5 (1.2) [V]; range [E]
    burst_rate_hz: tuple[int, int] = (100, 1_000)  # intra-burst rate; BurstDR 500 Hz (1.2) [V]; range [E]
    contact_cap_ua: int = 12_700  # per-contact current interlock (1.2, Vercise DBS) [A]
    area_cap_ua: int = 20_000  # per-area current interlock (1.2, Vercise DBS) [A]
    charge_density_limit: float = 30.0  # µC/cm²/phase, Boston programmer warning (1.8) [A]
    contact_area_cm2: float = 0.123  # 1.3 mm x 3 mm cylinder (1.4) [L]
    cycle_s: tuple[int, int] = (1, 5_400)  # cycling on/off 1 s - 90 min (1.3) [A]
    ramp_s: tuple[int, int] = (1, 10)  # ramp-on 1-10 s (1.3) [A]; 0 = no ramp
    impedance_ohm: tuple[int, int] = (500, 1_500)  # per-contact baseline, drawn by seed (1.4) [E/L]
    impedance_noise: float = 0.02  # SD of a measurement, fraction of the true value [E]
    open_ohm: int = 4_000  # a reading above this is an open circuit (1.4) [L]
    short_ohm: int = 250  # a reading below this is a short (1.4) [L]
    short_fault_ohm: int = 120  # what a shorted contact really is [E]
    impedance_scan_h: float = 0.0  # automatic scan interval, 0 = on demand only (1.4: both exist) [E/A]
    k_phase: float = 2.0  # energy factor, 2 for active symmetric recharge (1.5) [E]
    efficiency: float = 0.5  # η of the output stage, "often 0.3-0.7" (1.5) [E]
    supply_mv: int = 0  # > 0: the stage draws I x V_supply per phase instead, η = I·Z / V (1.5) [E]
    quiescent_w: float = 20e-6  # housekeeping drain, "tens of µW" (1.5) [E]
    telemetry_w: float = 2e-3  # extra drain while a session is open, "radio adds mW" (1.5) [E]
    # One receiver wake-up for a frame outside the open session (R10): not in docs/devices.md. Taken as the
    # radio and MCU on for ~25 ms at the telemetry_w above, to receive a frame, check it and answer [A].
    # A flood held to the 50 frames/s budget then costs 2.5 mW: about what one more open session draws.
    wake_j: float = 50e-6
    auto_recharge: bool = True  # a simulated patient charges at "recharge soon" [E]
    auto_recharge_coupling_pct: int = 80  # that patient's charger coupling [E]
    auto_recharge_max_h: float = 8.0  # ... gives up after this long if it never fills (Boston full: 4 h) [E]
    auto_recharge_retry_h: float = 24.0  # ... and tries again a day later [E]
    resume_after_charge: bool = True  # therapy the battery stopped comes back after a full charge [E]

    def __post_init__(self) -> None:
        """Normalise values read from JSON or a scenario file (lists, ints, dicts) and check them."""
        for f in fields(self):
            if isinstance(f.default, tuple):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        kind = self.battery_kind
        if isinstance(kind, str) and kind.upper() not in BatteryKind.__members__:
            raise ValueError(f"battery_kind {kind!r}: valid: {', '.join(k.lower() for k in BatteryKind.__members__)}")
        object.__setattr__(
            self, "battery_kind", BatteryKind[kind.upper()] if isinstance(kind, str) else BatteryKind(kind)
        )
        if isinstance(self.primary, dict):  # partial tables of a scenario file override the SCS defaults
            object.__setattr__(self, "primary", replace(SCS_PRIMARY, **self.primary))
        if isinstance(self.rechargeable, dict):
            object.__setattr__(self, "rechargeable", RechargeableCellConfig(**self.rechargeable))
        if not 1 <= self.contacts <= 32:
            raise ValueError(f"contacts {self.contacts} outside 1..32 (the wire carries 32)")
        if not 1 <= self.max_areas <= 4:
            raise ValueError(f"max_areas {self.max_areas} outside 1..4 (the wire carries 4)")
        if self.efficiency <= 0 or self.k_phase <= 0:
            raise ValueError("efficiency and k_phase must be positive")
        if self.wake_j < 0:
            raise ValueError(f"wake_j {self.wake_j} J: a wake-up cannot give energy back")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``ScsConfig(**d)`` reads it back."""
        data = asdict(self)
        data["battery_kind"] = int(self.battery_kind)
        return data


# --- pulse physics -------------------------------------------------------------------------------
def pulse_rate_hz(area: Area) -> float:
    """Pulses per second while the area is on (burst: bursts/s x pulses per burst)."""
    if area.waveform is Waveform.BURST:
        return float(area.rate_hz * area.burst_pulses)
    return float(area.rate_hz)


def duty(area: Area) -> float:
    """Fraction of time on: cycling on / (on + off), 1 when continuous."""
    if area.cycle_on_s <= 0:
        return 1.0
    return area.cycle_on_s / (area.cycle_on_s + area.cycle_off_s)


def effective_rate_hz(area: Area) -> float:
    """Mean pulse rate over the cycling period (docs/devices.md 1.5: f_eff = rate x duty)."""
    return pulse_rate_hz(area) * duty(area)


def pulse_energy_j(amplitude_ua: float, pulse_width_us: float, load_ohm: float, k_phase: float) -> float:
    """Energy of one biphasic pulse into a resistive load: k_phase · I² · Z · PW."""
    current = amplitude_ua * 1e-6
    return k_phase * current * current * load_ohm * pulse_width_us * 1e-6


def tissue_power_w(area: Area, load_ohm: float, k_phase: float) -> float:
    """Mean power an area puts into tissue."""
    return pulse_energy_j(area.amplitude_ua, area.pulse_width_us, load_ohm, k_phase) * effective_rate_hz(area)


def battery_pulse_power_w(area: Area, load_ohm: float, config: ScsConfig) -> float:
    """Mean power the area's pulses take from the battery: tissue / η, or I·V_supply per phase."""
    tissue = tissue_power_w(area, load_ohm, config.k_phase)
    if config.supply_mv <= 0:
        return tissue / config.efficiency
    # A current source burns the headroom V_supply - I·Z; never less than the tissue gets (compliance).
    stage = config.k_phase * area.amplitude_ua * 1e-6 * config.supply_mv * 1e-3 * area.pulse_width_us * 1e-6
    return max(tissue, stage * effective_rate_hz(area))


def split(area: Area) -> int:
    """Contacts sharing the current on the busier side: max per-contact current = amplitude / split."""
    return max(1, min(area.anode_mask.bit_count(), area.cathode_mask.bit_count()))


def charge_density(amplitude_ua: float, pulse_width_us: float, contacts: int, area_cm2: float) -> float:
    """Charge density on the most loaded contact, µC/cm²/phase (charge = I · PW per contact)."""
    return amplitude_ua / contacts * pulse_width_us * 1e-6 / area_cm2


def load_ohm(area: Area, contact_ohm: Sequence[float]) -> float:
    """Load of an area [E]: mean of the anode-side and cathode-side parallel impedances.

    A 1+/1- pair of 600 Ω contacts is a 600 Ω load, the convention of docs/devices.md 1.5's worked examples.
    An open contact (inf) makes the whole area open: its current source cannot drive it.
    """
    sides = []
    for mask in (area.anode_mask, area.cathode_mask):
        ohms = [contact_ohm[i] for i in range(len(contact_ohm)) if mask >> i & 1]
        if any(math.isinf(z) for z in ohms):
            return math.inf
        sides.append(1.0 / sum(1.0 / z for z in ohms))
    return sum(sides) / 2.0


# --- program validation --------------------------------------------------------------------------
def _refuse(field_name: str, value: int, limit: int, reason: str) -> DeviceRejected:
    """OUT_OF_RANGE for a derived limit, with the reason spelled out."""
    return DeviceRejected(ErrorCode.OUT_OF_RANGE, f"{field_name} {value}: {reason}", field_name, value, limit)


def validate_program(message: StimProgramSet, config: ScsConfig) -> None:
    """Refuse the first broken limit of a program (OUT_OF_RANGE naming field, value and limit)."""
    require("program", message.program, 1, config.max_programs, "(program number)")
    require("areas", len(message.areas), 1, config.max_areas, "areas")
    for i, area in enumerate(message.areas):
        _validate_area(f"areas[{i}]", area, config)
    top = max(area.amplitude_ua for area in message.areas)
    require("patient_amp_max_ua", message.patient_amp_max_ua, top, config.amplitude_ua[1], "µA")
    if message.ramp_s != 0:
        require("ramp_s", message.ramp_s, *config.ramp_s, "s")


def _validate_area(p: str, area: Area, c: ScsConfig) -> None:
    rates = {Waveform.HIGH_FREQUENCY: c.hf_rate_hz, Waveform.BURST: c.burst_train_hz}.get(area.waveform, c.rate_hz)
    require(f"{p}.rate_hz", area.rate_hz, *rates, "Hz")
    require(f"{p}.amplitude_ua", area.amplitude_ua, *c.amplitude_ua, "µA")
    require(f"{p}.pulse_width_us", area.pulse_width_us, *c.pulse_width_us, "µs")
    _validate_contacts(p, area, c.contacts)
    _validate_burst(p, area, c)
    _validate_cycle(p, area, c)
    _validate_current(p, area, c)


def _validate_contacts(p: str, area: Area, contacts: int) -> None:
    for name, mask, role in (("anode_mask", area.anode_mask, "anode"), ("cathode_mask", area.cathode_mask, "cathode")):
        if mask < 0 or mask >> contacts:
            highest = mask.bit_length() - 1 if mask > 0 else mask
            raise _refuse(f"{p}.{name}", highest, contacts - 1, f"contact out of range; contacts are 0-{contacts - 1}")
        if mask == 0:
            raise _refuse(f"{p}.{name}", 0, 1, f"an area needs at least one {role}")
    both = area.anode_mask & area.cathode_mask
    if both:
        listed = [i for i in range(contacts) if both >> i & 1]
        raise _refuse(f"{p}.cathode_mask", both, 0, f"contacts {listed} cannot be both anode and cathode")


def _validate_burst(p: str, area: Area, c: ScsConfig) -> None:
    if area.waveform is not Waveform.BURST:
        require(f"{p}.burst_pulses", area.burst_pulses, 0, 0, "(burst waveform only)")
        require(f"{p}.burst_rate_hz", area.burst_rate_hz, 0, 0, "Hz (burst waveform only)")
        pulse_rate = area.rate_hz
    else:
        require(f"{p}.burst_pulses", area.burst_pulses, *c.burst_pulses, "pulses")
        require(f"{p}.burst_rate_hz", area.burst_rate_hz, *c.burst_rate_hz, "Hz")
        most = area.burst_rate_hz // area.burst_pulses
        if area.rate_hz > most:
            reason = f"{area.burst_pulses} pulses at {area.burst_rate_hz} Hz fit a burst period only up to {most} Hz"
            raise _refuse(f"{p}.rate_hz", area.rate_hz, most, reason)
        pulse_rate = area.burst_rate_hz
    longest = int(1e6 // (PHASES * pulse_rate))
    if area.pulse_width_us > longest:
        reason = f"two {area.pulse_width_us} µs phases do not fit the pulse period at {pulse_rate} Hz (max {longest})"
        raise _refuse(f"{p}.pulse_width_us", area.pulse_width_us, longest, reason)


def _validate_cycle(p: str, area: Area, c: ScsConfig) -> None:
    if area.cycle_on_s == 0:
        require(f"{p}.cycle_off_s", area.cycle_off_s, 0, 0, "s (cycling is off: cycle_on_s is 0)")
        return
    require(f"{p}.cycle_on_s", area.cycle_on_s, *c.cycle_s, "s")
    require(f"{p}.cycle_off_s", area.cycle_off_s, *c.cycle_s, "s")


def _validate_current(p: str, area: Area, c: ScsConfig) -> None:
    amp, n, f = area.amplitude_ua, split(area), f"{p}.amplitude_ua"
    if amp > c.area_cap_ua:
        raise _refuse(f, amp, c.area_cap_ua, f"above the per-area current cap {c.area_cap_ua} µA")
    if amp > c.contact_cap_ua * n:
        reason = f"{amp / n:.0f} µA on one of {n} contact(s) is above the per-contact cap {c.contact_cap_ua} µA"
        raise _refuse(f, amp, c.contact_cap_ua * n, reason)
    density = charge_density(amp, area.pulse_width_us, n, c.contact_area_cm2)
    if density > c.charge_density_limit:
        most = max_amplitude_for_density(area.pulse_width_us, n, c)
        reason = (
            f"{density:.1f} µC/cm²/phase is above the {c.charge_density_limit:g} µC/cm² limit; "
            f"at most {most} µA at {area.pulse_width_us} µs"
        )
        raise _refuse(f, amp, most, reason)


def max_amplitude_for_density(pulse_width_us: int, contacts: int, config: ScsConfig) -> int:
    """Largest amplitude, µA, within the charge-density limit at this pulse width and split."""
    most = int(config.charge_density_limit * config.contact_area_cm2 * 1e6 * contacts / pulse_width_us)
    while charge_density(most, pulse_width_us, contacts, config.contact_area_cm2) > config.charge_density_limit:
        most -= 1  # float rounding at the boundary
    return most


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
