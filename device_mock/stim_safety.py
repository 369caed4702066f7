"""The stimulator's safety rules beyond the plain ranges of ``stim_physics``.

Owns: the amplitude, pulse-width and rate steps of the device model; the output compliance voltage
against the area's last measured load; Shannon's k; and the charge-density policy (refuse, or warn
and take the clinician's explicit ``density_override``). See docs/devices.md 1.2, 1.4 and 1.8 and
SPEC 4.4.

Pure functions over a program, the config and the measured impedances; ``stimulator.py`` calls
``validate_safety`` after ``stim_physics.validate_program`` and the flagged-contact check. Imports
``protocols`` and ``stim_physics`` only; never ``stimulator`` nor anything of the dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import Area, StimProgramSet

from .stim_physics import (
    DensityPolicy,
    ScsConfig,
    charge_density,
    load_ohm,
    refuse,
    shannon_k,
    split,
)

__all__ = [
    "lower_step",
    "max_amplitude_for_shannon",
    "most_for_density",
    "upper_step",
    "validate_safety",
]

Bands = tuple[tuple[int, int], ...]  # (from, step) pairs, rising


# --- steps ---------------------------------------------------------------------------------------
def _band(value: int, bands: Bands) -> tuple[int, int]:
    """The (from, step) band ``value`` falls in (the first one below its start)."""
    chosen = bands[0]
    for band in bands:
        if band[0] <= value:
            chosen = band
    return chosen


def lower_step(value: int, bands: Bands) -> int:
    """The largest value on the steps at or below ``value``."""
    start, step = _band(value, bands)
    if value <= start:
        return start
    return start + (value - start) // step * step


def upper_step(value: int, bands: Bands) -> int:
    """The smallest value on the steps at or above ``value`` (a band's start is always on them)."""
    low = lower_step(value, bands)
    if low == value:
        return value
    up = low + _band(value, bands)[1]
    return min([up, *(start for start, _ in bands if value < start < up)])


def _check_step(field_name: str, value: int, bands: Bands, high: int, unit: str) -> None:
    """OFF_STEP naming both neighbours, ``limit`` the nearer one (the lower one on a tie)."""
    low = lower_step(value, bands)
    if low == value:
        return
    up = upper_step(value, bands)
    if up > high:
        nearest, listed = low, f"{low} {unit}"
    else:
        nearest, listed = (low if value - low <= up - value else up), f"{low} or {up} {unit}"
    step = _band(value, bands)[1]
    reason = f"{field_name} {value} {unit} is between steps of {step} {unit}: nearest valid {listed}"
    raise DeviceRejected(ErrorCode.OFF_STEP, reason, field_name, value, nearest)


def _check_steps(p: str, area: Area, c: ScsConfig) -> None:
    _check_step(f"{p}.amplitude_ua", area.amplitude_ua, c.amplitude_steps_ua, c.amplitude_ua[1], "µA")
    _check_step(f"{p}.pulse_width_us", area.pulse_width_us, ((0, c.pulse_width_step_us),), c.pulse_width_us[1], "µs")
    _check_step(f"{p}.rate_hz", area.rate_hz, ((0, c.rate_step_hz),), max(c.rate_hz[1], c.hf_rate_hz[1]), "Hz")


# --- compliance voltage --------------------------------------------------------------------------
def _volts(millivolts: float) -> str:
    return f"{millivolts / 1000:.1f}".removesuffix(".0")


def _check_compliance(p: str, area: Area, measured_ohm: Sequence[float], c: ScsConfig) -> None:
    """The current source needs amplitude x load volts; beyond ``compliance_mv`` it cannot drive it."""
    z = load_ohm(area, measured_ohm)
    if math.isinf(z) or z <= 0:  # an open contact: the flagged-contact check refuses it first
        return
    needed_mv = area.amplitude_ua * z / 1000  # µA x Ω = µV
    if needed_mv <= c.compliance_mv:
        return
    most = int(c.compliance_mv * 1000 / z) + 1
    while most * z / 1000 > c.compliance_mv:
        most -= 1  # from one above: float rounding may put the boundary either side
    most = lower_step(most, c.amplitude_steps_ua)
    reason = (
        f"{area.amplitude_ua / 1000:g} mA into {z:,.0f} Ω needs {_volts(needed_mv)} V; "
        f"the stimulator can drive at most {_volts(c.compliance_mv)} V: at most {most} µA"
    )
    raise refuse(f"{p}.amplitude_ua", area.amplitude_ua, most, reason)


# --- Shannon -------------------------------------------------------------------------------------
def max_amplitude_for_shannon(pulse_width_us: int, contacts: int, c: ScsConfig) -> int:
    """Largest amplitude on the steps, µA, whose k stays under ``shannon_k_limit`` at this width and split.

    k = log D + log Q = log(Q² / A), so Q stays under sqrt(10^k_limit · A) µC a phase on one contact.
    """
    charge_uc = math.sqrt(10**c.shannon_k_limit * c.contact_area_cm2)
    most = int(charge_uc * contacts / (pulse_width_us * 1e-6)) + 1
    while most > 0 and shannon_k(most, pulse_width_us, contacts, c.contact_area_cm2) >= c.shannon_k_limit:
        most -= 1  # k must stay strictly under the limit
    return lower_step(most, c.amplitude_steps_ua)


def _check_shannon(p: str, area: Area, c: ScsConfig) -> None:
    n = split(area)
    k = shannon_k(area.amplitude_ua, area.pulse_width_us, n, c.contact_area_cm2)
    if k < c.shannon_k_limit:
        return
    most = max_amplitude_for_shannon(area.pulse_width_us, n, c)
    reason = (
        f"Shannon k {k:.2f} reaches the {c.shannon_k_limit:g} damage limit, whatever the override; "
        f"at most {most} µA at {area.pulse_width_us} µs"
    )
    raise refuse(f"{p}.amplitude_ua", area.amplitude_ua, most, reason)


# --- charge-density policy -----------------------------------------------------------------------
def most_for_density(pulse_width_us: int, contacts: int, c: ScsConfig) -> int:
    """Largest amplitude on the steps, µA, within ``charge_density_limit`` at this width and split."""
    most = int(c.charge_density_limit * c.contact_area_cm2 * 1e6 * contacts / pulse_width_us) + 1
    while charge_density(most, pulse_width_us, contacts, c.contact_area_cm2) > c.charge_density_limit:
        most -= 1  # from one above: float rounding may put the boundary either side
    return lower_step(most, c.amplitude_steps_ua)


def _check_density(message: StimProgramSet, c: ScsConfig) -> float:
    """Refuse an area over the limit (REFUSE, or WARN without an override); the highest overridden density."""
    worst = 0.0
    for i, area in enumerate(message.areas):
        n = split(area)
        density = charge_density(area.amplitude_ua, area.pulse_width_us, n, c.contact_area_cm2)
        if density <= c.charge_density_limit:
            continue
        field_name, most = f"areas[{i}].amplitude_ua", most_for_density(area.pulse_width_us, n, c)
        over = f"{density:.1f} µC/cm²/phase is above the {c.charge_density_limit:g} µC/cm²/phase limit"
        if c.density_policy is DensityPolicy.REFUSE:
            reason = f"{over}; at most {most} µA at {area.pulse_width_us} µs"
            raise refuse(field_name, area.amplitude_ua, most, reason)
        if not message.density_override:
            need = f"needs an explicit override (density_override), else {most} µA"
            reason = f"{field_name} {area.amplitude_ua}: {over}; {need}"
            raise DeviceRejected(ErrorCode.OVERRIDE_REQUIRED, reason, field_name, area.amplitude_ua, most)
        worst = max(worst, density)
    return worst


def validate_safety(message: StimProgramSet, config: ScsConfig, measured_ohm: Sequence[float]) -> float:
    """Refuse the first safety rule a program breaks; return the highest density an override let through.

    The hard rules come first for every area (steps, compliance at the measured load, Shannon), so a
    clinician is never asked for an override that could not help; then the charge-density policy.
    0.0 means no area is above ``charge_density_limit``.
    """
    areas = [(f"areas[{i}]", area) for i, area in enumerate(message.areas)]
    for p, area in areas:
        _check_steps(p, area, config)
    for p, area in areas:
        _check_compliance(p, area, measured_ohm, config)
    for p, area in areas:
        _check_shannon(p, area, config)
    return _check_density(message, config)
