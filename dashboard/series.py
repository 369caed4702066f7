"""The numeric series the dashboard stores and plots, taken from a status snapshot.

One place decides which telemetry fields become history, under which names and in which display
units, so the link (which records), the store (which keeps) and the figures (which draw) agree.
Names are stable strings: ``battery_pct``, ``reservoir_ml``, ``amplitude_ma``,
``dose_<drug>_mg_day`` (per drug), ``impedance_<n>_ohm`` (per contact), ``tissue_power_uw``,
``rate_ml_day``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.messages import PumpStatus, ScsStatus

OPEN_OHM = 65535


@dataclass(frozen=True)
class SeriesInfo:
    """How a series is labelled and scaled for display."""

    label: str
    unit: str


SERIES: dict[str, SeriesInfo] = {
    "battery_pct": SeriesInfo("Battery", "%"),
    "reservoir_ml": SeriesInfo("Reservoir", "mL"),
    "rate_ml_day": SeriesInfo("Programmed rate", "mL/day"),
    "amplitude_ma": SeriesInfo("Amplitude (area 1)", "mA"),
    "tissue_power_uw": SeriesInfo("Power to tissue", "µW"),
    # the patient's own scores from their diary (SPEC 4.7), kept as series so they chart beside therapy
    "pain_nrs": SeriesInfo("Pain (diary)", "of 10"),
    "spasticity_mas": SeriesInfo("Spasticity (diary, Ashworth index)", "0-5"),
}
DIARY_SERIES = {1: "pain_nrs", 5: "spasticity_mas"}  # DiaryKind value -> series


def info(name: str) -> SeriesInfo:
    """Label and unit of a series, including the per-drug and per-contact families."""
    if name in SERIES:
        return SERIES[name]
    if name.startswith("dose_") and name.endswith("_mg_day"):
        return SeriesInfo(f"Daily dose, {name[5:-7].lower()}", "mg/day")
    if name.startswith("impedance_") and name.endswith("_ohm"):
        return SeriesInfo(f"Impedance, contact {name[10:-4]}", "Ω")
    raise KeyError(f"unknown series {name!r}")


def series_from_status(status: ScsStatus | PumpStatus) -> dict[str, float]:
    """Every stored series value of one snapshot, in display units."""
    values = {"battery_pct": status.battery_pct_x100 / 100.0}
    if isinstance(status, PumpStatus):
        values["reservoir_ml"] = status.reservoir_ul / 1000.0
        values["rate_ml_day"] = status.rate_ul_per_day / 1000.0
        for drug in status.drugs:
            values[f"dose_{drug.drug.name.lower()}_mg_day"] = drug.dose_ng_per_day / 1e6
    else:
        values["amplitude_ma"] = (status.areas[0].amplitude_ua / 1000.0) if status.areas and status.therapy_on else 0.0
        values["tissue_power_uw"] = float(status.tissue_power_uw)
        for contact, ohm in enumerate(status.impedance_ohm):
            if ohm != OPEN_OHM:
                values[f"impedance_{contact}_ohm"] = float(ohm)
    return values
