"""Dose safety of the pump: each drug's 24-hour cap over the basal dose and every bolus, and
ziconotide's titration steps (a fill's concentrations are judged in ``pump_dosing.validate_drugs``).

The 24-hour check is prospective, as a clinician programmer's is: the programmed basal volume for a
whole day plus every bolus started in the last 24 hours plus the one asked for, each at the
concentration it was given with, must stay within each drug's cap. Clinician, priming, bridge and
patient boluses all count. Ziconotide's daily dose may rise by at most one step, and not again
before the minimum interval; it may fall at any time.

Pure functions of the config and the pump's records; must not import ``pump.py`` (which imports
this) nor anything of the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import Drug, DrugConcentration

from .pump_config import DrugLimit, PumpConfig
from .pump_dosing import DAY_MS

__all__ = ["check_bolus_cap", "check_ziconotide_change", "daily_ng", "given_rows", "recent"]


# A bolus's drug as the pump records it: one row [start_ms, drug value, ng] per drug it carried
# (plain lists, so the saved state stays JSON as it is).
GivenRow = list[int]


def given_rows(start_ms: int, volume_ul: int, drugs: tuple[DrugConcentration, ...]) -> list[GivenRow]:
    """The rows recording a bolus of ``volume_ul`` from a reservoir holding ``drugs``."""
    return [[start_ms, int(d.drug), daily_ng(d.conc_ng_per_ml, volume_ul)] for d in drugs]


def recent(rows: list[GivenRow], now_ms: int) -> list[GivenRow]:
    """The rows of boluses started within the 24 hours before ``now_ms``."""
    return [row for row in rows if row[0] + DAY_MS > now_ms]


def daily_ng(conc_ng_per_ml: int, daily_ul: int) -> int:
    """ng per day of a drug at ``conc_ng_per_ml`` and ``daily_ul`` µL/day."""
    return conc_ng_per_ml * daily_ul // 1000


def _limits(cfg: PumpConfig) -> dict[Drug, DrugLimit]:
    return {limit.drug: limit for limit in cfg.drug_limits}


def check_bolus_cap(
    volume_ul: int,
    drugs: tuple[DrugConcentration, ...],
    basal_ul_per_day: int,
    given: list[GivenRow],
    cfg: PumpConfig,
) -> None:
    """Refuse a bolus that would take any drug past its 24-hour cap (OUT_OF_RANGE on ``volume_ul``,
    with the largest volume still allowed as the limit)."""
    limits = _limits(cfg)
    for d in drugs:
        limit = limits.get(d.drug)
        if limit is None or not limit.max_dose_ng_per_day or d.conc_ng_per_ml <= 0:
            continue
        taken = daily_ng(d.conc_ng_per_ml, basal_ul_per_day) + sum(ng for _, drug, ng in given if drug == d.drug)
        asked = daily_ng(d.conc_ng_per_ml, volume_ul)
        cap = limit.max_dose_ng_per_day
        if taken + asked > cap:
            room_ul = max(0, (cap - taken) * 1000 // d.conc_ng_per_ml)
            raise DeviceRejected(
                ErrorCode.OUT_OF_RANGE,
                f"a {volume_ul} µL bolus brings {d.drug.name.lower()} to {(taken + asked) / 1e6:.3f} mg in 24 h "
                f"(basal and boluses), above its cap of {cap / 1e6:.3f} mg/day",
                "volume_ul",
                volume_ul,
                room_ul,
            )


def check_ziconotide_change(
    old_ng_per_day: int,
    new_ng_per_day: int,
    last_increase_ms: int,
    now_ms: int,
    field: str,
    value: int,
    limit_of: Callable[[int], int],
    cfg: PumpConfig,
) -> bool:
    """Refuse a ziconotide increase above one step or too soon after the last; True if it is an increase.

    ``field`` and ``value`` name what was asked; ``limit_of`` turns a daily dose (ng/day) into that
    field's value, so the refusal gives the largest value one step allows.
    """
    rise = new_ng_per_day - old_ng_per_day
    if rise <= 0:
        return False
    step = cfg.ziconotide_step_ng_per_day
    if rise > step:
        raise DeviceRejected(
            ErrorCode.OUT_OF_RANGE,
            f"ziconotide would rise by {rise / 1000:.2f} µg/day to {new_ng_per_day / 1000:.2f} µg/day; "
            f"it may rise by at most {step / 1000:.2f} µg/day at a time",
            field,
            value,
            limit_of(old_ng_per_day + step),
        )
    interval_ms = round(cfg.ziconotide_min_interval_h * 3_600_000)
    wait = last_increase_ms + interval_ms - now_ms if last_increase_ms else 0
    if wait > 0:
        raise DeviceRejected(
            ErrorCode.STATE_CONFLICT,
            f"ziconotide was raised {(now_ms - last_increase_ms) / 3_600_000:.1f} h ago; the next rise is "
            f"allowed {cfg.ziconotide_min_interval_h:g} h after the last",
            field,
            value,
            retry_after_ms=min(wait, 0xFFFF_FFFF),
        )
    return True
