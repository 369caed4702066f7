"""Physics and limits of the stimulator model: its tunables, per-area pulse energy, charge density and
Shannon k, and program validation (ranges, contacts, current caps). The battery drives are in
``stim_cells``; the safety rules that need the measured impedance or a clinician's override (steps,
compliance voltage, Shannon, charge-density policy) are in ``stim_safety``.

Pure functions and small classes: no event log, no clock. ``stimulator.py`` composes them. Numbers
come from docs/devices.md part 1 with their section and confidence tag; every [L], [E] and [A] number is a
field of ``ScsConfig`` so a scenario can override it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import MASKED_PROGRAMS, Area, BatteryKind, StimProgramSet, Waveform

from .battery import (
    PrimaryCellConfig,
    RechargeableCellConfig,
)
from .model import require

# Primary-cell presets (docs/devices.md 1.5). No maker publishes a capacity: each preset holds the energy
# its calibration program draws in the life its product class claims, at the ScsConfig defaults below
# (k_phase 2, efficiency 0.5, quiescent 20 µW) [E]. The ERI reserve of each is 90 days at that program [E]:
# no SCS ERI-to-EOS interval is public, so it borrows the SynchroMed II's 90 days from ERI to stop
# (docs/devices.md 2.7) [A] as the warning a replacement needs; at a lighter program it lasts longer.
# "low_dose_burst": Proclaim XR class, "up to 10 years" at low-dose BurstDR [V MassDevice 2019]: BurstDR
# 0.6 mA, 1000 µs, 40 Hz x 5 at 500 Hz, 30 s on / 90 s off (6 h a day, the top of the BOLD study's dosing)
# into 525 Ω draws 57.8 µW: 18,250 J (~1.6 Ah at 3.2 V) lasts 10.0 years.
LOW_DOSE_BURST_CELL = PrimaryCellConfig(capacity_j=18_250.0, nominal_power_w=57.8e-6)
# "long_life_tonic": Vanta class, "up to ~11 years" [L; V FierceBiotech 2023: "with optimized power
# delivery settings"], calibrated at a light tonic program, 3 mA, 200 µs, 60 Hz into 800 Ω: 365.6 µW, so
# 127,000 J (~35 Wh) for 11.0 years. That is several times what an IPG-sized cell holds [E]: the claim's
# settings must draw far less than this program; the preset reproduces the claim, not a real cell.
LONG_LIFE_TONIC_CELL = PrimaryCellConfig(capacity_j=127_000.0, nominal_power_w=365.6e-6)
PRIMARY_CELLS = {"low_dose_burst": LOW_DOSE_BURST_CELL, "long_life_tonic": LONG_LIFE_TONIC_CELL}
SCS_PRIMARY = LOW_DOSE_BURST_CELL  # the default primary cell: the BurstDR class of the 1.5 worked example
PHASES = 2  # a biphasic pulse: a stimulating phase and an equal charge-balancing phase


class DensityPolicy(StrEnum):
    """What the device does with a program above ``charge_density_limit``."""

    REFUSE = "refuse"  # always OUT_OF_RANGE
    WARN = "warn"  # OVERRIDE_REQUIRED unless the clinician's StimProgramSet sets density_override


@dataclass(frozen=True)
class ScsConfig:
    """Every tunable of the stimulator model (docs/devices.md section and tag after each)."""

    family: str = "generic"  # the maker's class whose ranges the rest follow (stim_families.SCS_FAMILIES)
    model_name: str = "EMU-SCS16"
    serial: str = "SCS-000001"
    firmware: str = "1.0.0"
    contacts: int = 16  # 16 most IPGs, 32 on Boston Spectra/WaveWriter (1.1, 1.9) [V]
    battery_kind: BatteryKind = BatteryKind.RECHARGEABLE  # most current SCS IPGs (1.1) [V]
    # A PrimaryCellConfig, a preset's name (PRIMARY_CELLS), or a scenario's table of overrides of the
    # default cell (with ``preset = "name"``: of that preset) (1.5) [E]
    primary: PrimaryCellConfig = SCS_PRIMARY
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
    # Boston's programmer warns at the limit and lets the clinician go on ("continue at your discretion") (1.8) [A]
    density_policy: DensityPolicy = DensityPolicy.WARN
    shannon_k_limit: float = 1.85  # k = log D + log Q at which damage is possible, Shannon 1992 / Cogan 2016 (1.8) [V]
    # Output compliance of the current sources (1.8): no public IPG figure found [E]; 12 V drives 10 mA into
    # 600 Ω (6 V) but not into 4 kΩ (40 V). Axium: "0-6000 µA (depending on measured impedance)" (1.2) [V].
    compliance_mv: int = 12_000
    # Amplitude step by band, (from µA, step µA): 25 µA below 2 mA, 50 µA from 2 mA, Axium (1.2) [V].
    amplitude_steps_ua: tuple[tuple[int, int], ...] = ((0, 25), (2_000, 50))
    pulse_width_step_us: int = 10  # Axium 10 µs (1.2) [V]; pulse widths are multiples of it
    rate_step_hz: int = 1  # Axium steps 2 Hz (1.2) [V]; 1 keeps every integer rate (HF10 10 kHz, BurstDR 40 Hz) [E]
    contact_area_cm2: float = 0.123  # 1.3 mm x 3 mm cylinder (1.4) [L]
    cycle_s: tuple[int, int] = (1, 5_400)  # cycling on/off 1 s - 90 min (1.3) [A]
    ramp_s: tuple[int, int] = (1, 10)  # ramp-on 1-10 s (1.3) [A]; 0 = no ramp
    impedance_ohm: tuple[int, int] = (500, 1_500)  # per-contact baseline, drawn by seed (1.4) [E/L]
    impedance_noise: float = 0.02  # SD of a measurement, fraction of the true value [E]
    open_ohm: int = 4_000  # a reading above this is an open circuit (1.4) [L]
    short_ohm: int = 250  # a reading below this is a short (1.4) [L]
    short_fault_ohm: int = 120  # what a shorted contact really is [E]
    impedance_scan_h: float = 0.0  # automatic scan interval, 0 = on demand only (1.4: both exist) [E/A]
    # True impedance rises after implant and settles: z = baseline x (1 + drift x (1 - exp(-days / tau))).
    # DBS settles near 1,000 Ω after about 6 months, Wong 2018 (1.4) [V]; the SCS figures are [E]. 0 = no drift.
    impedance_drift: float = 0.3  # fraction added once settled [E]
    impedance_drift_tau_days: float = 30.0  # time constant, days [E]
    impedance_drift_step_h: float = 24.0  # the true value moves in steps this far apart (breakpoints) [E]
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
    # MRI mode (1.8): Abbott refuses it while a lead looks nonfunctional [V Abbott MRI page]; how recent
    # the impedance check must be is not published [E]. Proclaim XR scans with stimulation off [V]; a
    # model that scans with it on sets mri_stim_allowed, up to the MRI-safe limits below [E].
    mri_impedance_max_age_min: float = 30.0
    mri_stim_allowed: bool = False
    mri_max_amplitude_ua: int = 5_000
    mri_max_pulse_width_us: int = 500
    mri_max_rate_hz: int = 1_200

    def __post_init__(self) -> None:
        """Normalise values read from JSON or a scenario file (lists, ints, dicts) and check them."""
        for f in fields(self):
            if isinstance(f.default, tuple):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        object.__setattr__(self, "amplitude_steps_ua", tuple(tuple(band) for band in self.amplitude_steps_ua))
        policy = str(self.density_policy).lower()  # "WARN" as a scenario's member name, "warn" as saved
        if policy not in {p.value for p in DensityPolicy}:
            raise ValueError(f"density_policy {policy!r}: valid: {', '.join(p.value for p in DensityPolicy)}")
        object.__setattr__(self, "density_policy", DensityPolicy(policy))
        kind = self.battery_kind
        if isinstance(kind, str) and kind.upper() not in BatteryKind.__members__:
            raise ValueError(f"battery_kind {kind!r}: valid: {', '.join(k.lower() for k in BatteryKind.__members__)}")
        object.__setattr__(
            self, "battery_kind", BatteryKind[kind.upper()] if isinstance(kind, str) else BatteryKind(kind)
        )
        if isinstance(self.primary, str | dict):  # a preset's name, or a scenario's partial table
            object.__setattr__(self, "primary", primary_cell(self.primary))
        if isinstance(self.rechargeable, dict):
            object.__setattr__(self, "rechargeable", RechargeableCellConfig(**self.rechargeable))
        if not 1 <= self.contacts <= 32:
            raise ValueError(f"contacts {self.contacts} outside 1..32 (the wire carries 32)")
        if not 1 <= self.max_areas <= 4:
            raise ValueError(f"max_areas {self.max_areas} outside 1..4 (the wire carries 4)")
        if not 1 <= self.max_programs <= MASKED_PROGRAMS:
            raise ValueError(f"max_programs {self.max_programs} outside 1..{MASKED_PROGRAMS} (the status mask's bits)")
        self._check_steps()
        if self.impedance_drift < 0 or self.impedance_drift_tau_days <= 0 or self.impedance_drift_step_h <= 0:
            raise ValueError("impedance_drift must be >= 0, its tau_days and step_h positive")
        if self.compliance_mv <= 0 or self.shannon_k_limit <= 0:
            raise ValueError("compliance_mv and shannon_k_limit must be positive")
        if self.efficiency <= 0 or self.k_phase <= 0:
            raise ValueError("efficiency and k_phase must be positive")
        if self.wake_j < 0:
            raise ValueError(f"wake_j {self.wake_j} J: a wake-up cannot give energy back")

    def _check_steps(self) -> None:
        bands = self.amplitude_steps_ua
        starts = [start for start, _ in bands]
        if not bands or any(len(band) != 2 for band in bands) or any(step <= 0 for _, step in bands):
            raise ValueError(f"amplitude_steps_ua {bands}: (from µA, step µA) pairs with positive steps")
        if starts != sorted(set(starts)) or starts[0] > self.amplitude_ua[0]:
            raise ValueError(f"amplitude_steps_ua {bands}: bands rise and the first covers {self.amplitude_ua[0]} µA")
        if self.pulse_width_step_us <= 0 or self.rate_step_hz <= 0:
            raise ValueError("pulse_width_step_us and rate_step_hz must be positive")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; ``ScsConfig(**d)`` reads it back."""
        data = asdict(self)
        data["battery_kind"] = int(self.battery_kind)
        return data


def primary_cell(choice: str | dict[str, Any]) -> PrimaryCellConfig:
    """The primary cell a scenario names: a preset (``"long_life_tonic"``) or a table of overrides of the
    default cell, or of the preset its ``preset`` key names; ``ValueError`` naming the presets otherwise."""
    table = {"preset": choice} if isinstance(choice, str) else dict(choice)
    name = table.pop("preset", None)
    if name is not None and name not in PRIMARY_CELLS:
        raise ValueError(f"primary cell preset {name!r}: valid: {', '.join(PRIMARY_CELLS)}")
    return replace(PRIMARY_CELLS[name] if name else SCS_PRIMARY, **table)


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
    """Charge density on the most loaded contact, µC/cm²/phase (charge = I · PW per contact).

    Rounded to 1e-9 so that an amplitude exactly at a limit (3600 µA at 500 µs on 0.06 cm²: 30.0)
    compares equal to it instead of a float's breadth above.
    """
    return round(amplitude_ua / contacts * pulse_width_us * 1e-6 / area_cm2, 9)


def shannon_k(amplitude_ua: float, pulse_width_us: float, contacts: int, area_cm2: float) -> float:
    """Shannon's k = log10 D + log10 Q on the most loaded contact (D µC/cm²/phase, Q µC/phase); -inf at 0 µA."""
    charge = amplitude_ua / contacts * pulse_width_us * 1e-6
    if charge <= 0:
        return -math.inf
    return round(math.log10(charge / area_cm2) + math.log10(charge), 9)  # rounded as charge_density is


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
def refuse(field_name: str, value: int, limit: int, reason: str) -> DeviceRejected:
    """OUT_OF_RANGE for a derived limit, with the reason spelled out."""
    return DeviceRejected(ErrorCode.OUT_OF_RANGE, f"{field_name} {value}: {reason}", field_name, value, limit)


def validate_program(message: StimProgramSet, config: ScsConfig) -> None:
    """Refuse the first broken limit of a program (OUT_OF_RANGE naming field, value and limit).

    Ranges, contacts, burst and cycling, current caps; ``stim_safety.validate_safety`` follows with
    the steps, the compliance voltage, Shannon and the charge-density policy.
    """
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
            raise refuse(f"{p}.{name}", highest, contacts - 1, f"contact out of range; contacts are 0-{contacts - 1}")
        if mask == 0:
            raise refuse(f"{p}.{name}", 0, 1, f"an area needs at least one {role}")
    both = area.anode_mask & area.cathode_mask
    if both:
        listed = [i for i in range(contacts) if both >> i & 1]
        raise refuse(f"{p}.cathode_mask", both, 0, f"contacts {listed} cannot be both anode and cathode")


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
            raise refuse(f"{p}.rate_hz", area.rate_hz, most, reason)
        pulse_rate = area.burst_rate_hz
    longest = int(1e6 // (PHASES * pulse_rate))
    if area.pulse_width_us > longest:
        reason = f"two {area.pulse_width_us} µs phases do not fit the pulse period at {pulse_rate} Hz (max {longest})"
        raise refuse(f"{p}.pulse_width_us", area.pulse_width_us, longest, reason)


def _validate_cycle(p: str, area: Area, c: ScsConfig) -> None:
    if area.cycle_on_s == 0:
        require(f"{p}.cycle_off_s", area.cycle_off_s, 0, 0, "s (cycling is off: cycle_on_s is 0)")
        return
    require(f"{p}.cycle_on_s", area.cycle_on_s, *c.cycle_s, "s")
    require(f"{p}.cycle_off_s", area.cycle_off_s, *c.cycle_s, "s")


def _validate_current(p: str, area: Area, c: ScsConfig) -> None:
    amp, n, f = area.amplitude_ua, split(area), f"{p}.amplitude_ua"
    if amp > c.area_cap_ua:
        raise refuse(f, amp, c.area_cap_ua, f"above the per-area current cap {c.area_cap_ua} µA")
    if amp > c.contact_cap_ua * n:
        reason = f"{amp / n:.0f} µA on one of {n} contact(s) is above the per-contact cap {c.contact_cap_ua} µA"
        raise refuse(f, amp, c.contact_cap_ua * n, reason)
