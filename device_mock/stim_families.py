"""Stimulator families: the published ranges, steps and charge-density rule of each maker's class.

``SCS_FAMILIES`` maps a family name to ``ScsConfig`` field values; ``family_overrides`` turns a
scenario's ``[config]`` table (or ``implant-mock --family``) into the fields of that family with
the table's own values on top. The emulated devices are classes, not products: a family gives the
ranges a programmer of that maker meets (docs/devices.md 1.2 and 1.8, tag after each), and every
field stays overridable. ``generic`` is ``ScsConfig``'s own defaults.

Imports only the standard library and ``stim_physics``'s enum; must not import ``stimulator``.
"""

from __future__ import annotations

from typing import Any

from .stim_physics import DensityPolicy

# Charge density: Boston's programmer warns at 30 µC/cm² and lets the clinician go on (1.8) [A];
# no other maker's rule is published, so the others refuse at the same limit [E].
SCS_FAMILIES: dict[str, dict[str, Any]] = {
    "generic": {},
    "boston": {
        "model_name": "EMU-BSC32",
        "contacts": 32,  # Spectra / WaveWriter (1.1) [V]
        "amplitude_ua": (0, 25_500),  # 0-25.5 mA per contact, total limits apply (1.2) [L]
        "pulse_width_us": (20, 1_000),  # (1.2) [L]
        "rate_hz": (2, 1_200),
        "hf_rate_hz": (2, 10_000),  # sub-perception up to 10 kHz on the WaveWriter class (1.2) [L]
        "contact_cap_ua": 12_700,  # per-contact and per-area interlocks, Vercise DBS (1.2) [A]
        "area_cap_ua": 20_000,
        "density_policy": DensityPolicy.WARN,
    },
    "abbott": {
        "model_name": "EMU-ABT16",
        "amplitude_ua": (0, 25_500),  # Abbott/SJM tonic IPGs 0-25.5 mA (1.2) [L]
        "pulse_width_us": (50, 1_000),  # 20/50-1000 µs (1.2) [L]
        "rate_hz": (2, 1_200),
        "density_policy": DensityPolicy.REFUSE,
    },
    "medtronic": {
        "model_name": "EMU-MDT16",
        "amplitude_ua": (0, 25_500),  # Intellis / RestoreSensor class, current mode (1.2) [L]
        "pulse_width_us": (60, 1_000),
        "rate_hz": (2, 1_200),
        "density_policy": DensityPolicy.REFUSE,
    },
    "nevro": {
        "model_name": "EMU-NVR16",
        "amplitude_ua": (0, 15_000),  # Senza: up to ~15 mA at HF (1.2) [L]
        "pulse_width_us": (20, 1_000),
        "rate_hz": (2, 1_200),
        "hf_rate_hz": (2, 10_000),  # 2-10,000 Hz (1.2) [L]
        "density_policy": DensityPolicy.REFUSE,
    },
    "axium-drg": {
        "model_name": "EMU-DRG16",
        "contacts": 16,  # four 4-contact leads [E]
        "amplitude_ua": (0, 6_000),  # 0-6000 µA, depending on measured impedance (1.2) [V]
        "pulse_width_us": (40, 720),  # step 10 µs (1.2) [V]
        "pulse_width_step_us": 10,
        "rate_hz": (4, 100),  # step 2 Hz (1.2) [V]
        "hf_rate_hz": (4, 100),  # no high-frequency therapy on a DRG stimulator [E]
        "rate_step_hz": 2,
        "amplitude_steps_ua": ((0, 25), (2_000, 50)),  # 25 µA below 2 mA, 50 µA from 2-6 mA (1.2) [V]
        "density_policy": DensityPolicy.REFUSE,
    },
}


def family_overrides(table: dict[str, Any]) -> dict[str, Any]:
    """``table``'s ``family`` expanded into its fields, the table's other values on top.

    ``ValueError`` names the families when the name is not one of them.
    """
    values = dict(table)
    name = values.pop("family", "generic")
    if name not in SCS_FAMILIES:
        raise ValueError(f"stimulator family {name!r}: valid: {', '.join(SCS_FAMILIES)}")
    return {**SCS_FAMILIES[name], "family": name, **values}
