"""The pump's refill rules (docs/devices.md 2.6): the residual check and the drug-stability limit.

Owns two judgements a refill needs: whether the residual the nurse withdrew is a discrepancy
(off by more than the ``refill_discrepancy_ul`` rule, or outside the flow-accuracy band of what
was drained since the last fill), and how long the new contents stay stable in the reservoir,
which caps the next refill date. Pure functions of the config and counters; must not import
``pump.py`` (which imports this) nor anything of the dashboard.
"""

from __future__ import annotations

import math

from protocols.messages import Drug, DrugConcentration

from .pump_config import PumpConfig
from .pump_dosing import DAY_MS, UNITS_PER_UL

__all__ = ["flow_band_ul", "residual_flag", "stable_until_ms"]


def flow_band_ul(drained_units: int, cfg: PumpConfig) -> int:
    """Half-width of the band the true residual may lie in: the labelled accuracy of all drained since the fill."""
    return math.ceil(cfg.flow_accuracy * drained_units / UNITS_PER_UL)


def residual_flag(discrepancy_ul: int, drained_units: int, cfg: PumpConfig) -> str | None:
    """Why a residual is a discrepancy (None: it is not).

    Both rules apply: a residual off by more than ``refill_discrepancy_ul`` [V ASRA 2017], and one
    outside the flow-accuracy band, which for a short interval is the tighter of the two.
    """
    off, band = abs(discrepancy_ul), flow_band_ul(drained_units, cfg)
    if off > cfg.refill_discrepancy_ul:
        reason = f"residual off by {discrepancy_ul} µL, more than {cfg.refill_discrepancy_ul} µL"
    elif off > band:
        reason = f"residual off by {discrepancy_ul} µL, outside the ±{band} µL flow-accuracy band"
    else:
        return None
    # Drug left over is what an occluded or kinked catheter leaves: the pump itself cannot sense it.
    return reason + (" (more drug left than expected: check the catheter for occlusion)" if discrepancy_ul > 0 else "")


def stable_until_ms(fill_ms: int, drugs: tuple[DrugConcentration, ...], seen: set[Drug], cfg: PumpConfig) -> int:
    """When the shortest-lived drug of a fill stops being stable (0: no drug has a limit).

    A drug the pump has never held before gets its first-fill limit (ziconotide: 40 days in a new
    pump, 84 later [L Prialt labeling]).
    """
    limits = {limit.drug: limit for limit in cfg.drug_limits}
    days = []
    for d in drugs:
        limit = limits.get(d.drug)
        if limit is None:
            continue
        first = d.drug not in seen and limit.first_fill_stability_days > 0
        day_count = limit.first_fill_stability_days if first else limit.stability_days
        if day_count > 0:
            days.append(day_count)
    return fill_ms + round(min(days) * DAY_MS) if days else 0
