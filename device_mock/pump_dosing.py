"""The pump's numbers and dosing rules: the program, boluses, exact drain times, projections, limit checks.

Volumes are integers in *units* of 1/86,400,000 µL, so a rate of r µL/day drains exactly r units
per millisecond and a basal segment is a product of integers. A bolus of V µL over D ms has drained
``V * UNITS_PER_UL * (t - start) // D`` units at time t: the floors telescope, so the reservoir after
any cut of time into segments is the same integer. That is what makes a closed-form advance over
years and an advance in one-hour steps log the same events at the same millisecond.

Nothing here logs, keeps time or changes state: ``pump.py`` does. The tunables are in ``pump_config``,
the basal schedule (steps, periodic boluses, local time) in ``pump_schedule``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    MAX_DRUGS,
    BolusKind,
    DosingMode,
    Drug,
    DrugConcentration,
    PatientBolusSettings,
)

from .model import require
from .pump_config import DrugLimit, PumpConfig, drugs_from
from .pump_schedule import DAY_MS, MINUTE_MS, MINUTES_PER_DAY, Schedule

UNITS_PER_UL = DAY_MS  # so that 1 µL/day is 1 unit/ms
NO_PATIENT_BOLUS = PatientBolusSettings(False, 0, 0, 0, 0)


def ceil_div(a: int, b: int) -> int:
    """Integer ceiling of ``a / b`` for ``b > 0``."""
    return -(-a // b)


@dataclass(frozen=True)
class ActiveBolus:
    """A bolus running on top of the basal rate, ``volume_ul`` spread evenly over [start, end)."""

    kind: BolusKind
    volume_ul: int
    start_ms: int
    end_ms: int

    def drained_by(self, t_ms: int) -> int:
        """Units of this bolus pumped from its start up to ``t_ms``."""
        t = min(max(t_ms, self.start_ms), self.end_ms)
        return self.volume_ul * UNITS_PER_UL * (t - self.start_ms) // (self.end_ms - self.start_ms)


@dataclass
class Program:
    """What the clinician programmed and filled; only validated settings are ever stored here."""

    schedule: Schedule
    patient_bolus: PatientBolusSettings
    alarm_volume_ul: int
    drugs: tuple[DrugConcentration, ...]
    therapy_on: bool = True

    def worst_daily_ul(self) -> int:
        """Daily volume with every allowed patient bolus taken, µL."""
        ptm = self.patient_bolus
        return self.schedule.daily_ul() + ptm.dose_ul * ptm.max_per_day

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Program:
        """Rebuild from ``asdict`` output."""
        schedule, ptm = Schedule.from_dict(data["schedule"]), PatientBolusSettings(**data["patient_bolus"])
        return cls(schedule, ptm, data["alarm_volume_ul"], drugs_from(data["drugs"]), data["therapy_on"])


def drained(rate: int, bolus: ActiveBolus | None, t0: int, t1: int) -> int:
    """Units pumped in [t0, t1] at basal ``rate`` (constant over the span) plus the bolus."""
    units = rate * (t1 - t0)
    if bolus is not None:
        units += bolus.drained_by(t1) - bolus.drained_by(t0)
    return units


def settle(reached: Callable[[int], bool], guess: int, lo: int, hi: int) -> int:
    """Smallest t in (lo, hi] with ``reached(t)`` (monotone, true at hi), searching from a close ``guess``."""
    t = min(max(guess, lo + 1), hi)
    while t < hi and not reached(t):
        t += 1
    while t > lo + 1 and reached(t - 1):
        t -= 1
    return t


def first_reaching(value_at: Callable[[int], float], target: float, t0: int, t1: int) -> int | None:
    """First ms in (t0, t1] at which ``value_at`` reaches ``target``, or None if it does not get there.

    ``value_at`` must be non-decreasing and linear over the span up to rounding: the linear guess is
    then within a ms or two, and ``settle`` makes it exact against the function itself, so the answer
    does not depend on where the span starts.
    """
    v0, v1 = value_at(t0), value_at(t1)
    if v0 >= target or v1 < target:
        return None
    guess = t0 + math.ceil((target - v0) / (v1 - v0) * (t1 - t0))
    return settle(lambda t: value_at(t) >= target, guess, t0, t1)


def reach_in_segment(rate: int, bolus: ActiveBolus | None, t0: int, t1: int, need: int) -> int | None:
    """First time in (t0, t1] by which ``need`` units have been pumped at constant rates, else None."""
    return first_reaching(lambda t: drained(rate, bolus, t0, t), need, t0, t1)


def time_to_drain(schedule: Schedule, bolus: ActiveBolus | None, t0: int, need: int, extra_rate: int = 0) -> int | None:
    """Device time at which ``need`` more units will have been pumped from ``t0`` if nothing changes.

    ``extra_rate`` (units/ms) adds a constant flow, e.g. the patient boluses a refill date must allow for.
    """
    t = t0
    daily = schedule.daily_units() + extra_rate * DAY_MS
    while need > 0:
        active = bolus if bolus is not None and t < bolus.end_ms else None
        if active is None:
            if daily == 0:
                return None
            # The program repeats daily, so whole days drain ``daily`` wherever they start.
            days = (need - 1) // daily
            t, need = t + days * DAY_MS, need - days * daily
        edges = [e for e in (schedule.next_edge(t), active and active.end_ms) if e]
        rate = schedule.rate_at(t) + extra_rate
        if not edges:
            return t + ceil_div(need, rate)
        end = min(edges)
        hit = reach_in_segment(rate, active, t, end, need)
        if hit is not None:
            return hit
        need -= drained(rate, active, t, end)
        t = end
    return t


class Projections(NamedTuple):
    """Reservoir dates of docs/devices.md 2.6, ms since epoch (0 = does not apply).

    A named tuple rather than a dataclass: every status poll builds one, and a tuple is cheaper to build.
    """

    low_alarm_ms: int
    empty_ms: int
    empty_earliest_ms: int
    empty_latest_ms: int
    next_refill_ms: int


def project(
    program: Program, bolus: ActiveBolus | None, now: int, fill_ul: int, since_refill: int, cfg: PumpConfig
) -> Projections:
    """Reservoir dates of a pump that keeps pumping as programmed, from ``now`` on."""
    schedule = program.schedule
    # Asked on every status poll. With no bolus running and no flex edge, one rate holds from now on, and
    # the whole days plus the rest that ``time_to_drain`` would walk come to one division, exactly.
    steady = (bolus is None or now >= bolus.end_ms) and schedule.next_edge(now) is None
    basal = schedule.rate_at(now)

    def when(need: int, extra_rate: int = 0) -> int:
        if need <= 0:
            return now
        if steady:
            rate = basal + extra_rate
            return now + ceil_div(need, rate) if rate else 0
        return time_to_drain(schedule, bolus, now, need, extra_rate) or 0

    fill = fill_ul * UNITS_PER_UL
    reservoir = fill - since_refill
    low_need = reservoir - program.alarm_volume_ul * UNITS_PER_UL
    # The refill-threshold rule; Prometra-style, every allowed patient bolus is taken [V docs/devices.md 2.6].
    threshold_ul = cfg.refill_threshold_ul or program.alarm_volume_ul
    ptm = program.patient_bolus
    extra = ptm.dose_ul * ptm.max_per_day if cfg.refill_threshold_all_boluses else 0
    worst_low = when(reservoir - threshold_ul * UNITS_PER_UL, extra)
    # The accuracy band applies to all drained since the fill: the true residual may already differ.
    band = cfg.flow_accuracy
    return Projections(
        low_alarm_ms=when(low_need),
        empty_ms=when(reservoir),
        empty_earliest_ms=when(int(fill / (1 + band)) - since_refill),
        empty_latest_ms=when(int(fill / (1 - band)) - since_refill),
        next_refill_ms=max(now, worst_low - round(cfg.next_refill_margin_days * DAY_MS)),
    )


def patient_bolus_wait(starts: list[int], now: int, ptm: PatientBolusSettings) -> tuple[int, int]:
    """Why and how long the next patient bolus must wait: (0, 0) allowed, (1, ms) lockout, (2, ms) daily maximum."""
    recent = [t for t in starts if t + DAY_MS > now]
    lockout_wait = recent[-1] + ptm.lockout_min * MINUTE_MS - now if recent else 0
    daily_wait = recent[-ptm.max_per_day] + DAY_MS - now if len(recent) >= ptm.max_per_day else 0
    if max(lockout_wait, daily_wait) <= 0:
        return 0, 0
    return (2, daily_wait) if daily_wait >= lockout_wait else (1, lockout_wait)


def draw_flow_error(seed: int, refill_no: int, mean: float, sd: float, limit: float) -> float:
    """The fractional flow error of one fill: normal, clipped to the accuracy band, reproducible by seed."""
    # Seeded from a string so the draw depends on nothing but (seed, refill_no); not for security.
    rng = random.Random(f"pump-flow:{seed}:{refill_no}")
    return max(-limit, min(limit, rng.gauss(mean, sd)))


def min_duration_min(volume_ul: int, max_rate_ul_per_day: int) -> int:
    """Shortest bolus duration the pump's top rate allows for ``volume_ul``."""
    return max(1, ceil_div(max(volume_ul, 0) * MINUTES_PER_DAY, max_rate_ul_per_day))


# --- limit checks: each raises DeviceRejected and returns what may be stored --------------------
def validate_patient_bolus(settings: PatientBolusSettings, cfg: PumpConfig) -> PatientBolusSettings:
    """Patient-bolus (PTM) settings; disabled settings are stored as all zero."""
    if not settings.enabled:
        return NO_PATIENT_BOLUS
    dose = settings.dose_ul
    require("patient_bolus.dose_ul", dose, cfg.min_ptm_dose_ul, cfg.max_ptm_dose_ul, "µL")
    shortest = min_duration_min(dose, cfg.max_bolus_rate_ul_per_day)
    require("patient_bolus.duration_min", settings.duration_min, shortest, cfg.max_ptm_duration_min, "min")
    require("patient_bolus.lockout_min", settings.lockout_min, cfg.min_ptm_lockout_min, cfg.max_ptm_lockout_min, "min")
    require("patient_bolus.max_per_day", settings.max_per_day, 1, cfg.max_ptm_per_day, "boluses")
    return PatientBolusSettings(True, dose, settings.duration_min, settings.lockout_min, settings.max_per_day)


def max_daily_ul(drugs: tuple[DrugConcentration, ...], cfg: PumpConfig) -> int | None:
    """Largest daily volume the drugs' daily-dose caps allow (None: no drug has a cap)."""
    caps = {limit.drug: limit.max_dose_ng_per_day for limit in cfg.drug_limits}
    allowed = [cap * 1000 // d.conc_ng_per_ml for d in drugs if (cap := caps.get(d.drug)) and d.conc_ng_per_ml > 0]
    return min(allowed) if allowed else None


def check_daily_dose(
    schedule: Schedule, ptm: PatientBolusSettings, drugs: tuple[DrugConcentration, ...], cfg: PumpConfig
) -> None:
    """Refuse a program whose daily dose, with every allowed patient bolus, breaks a drug's cap."""
    limit = max_daily_ul(drugs, cfg)
    if limit is None:
        return
    basal = schedule.daily_units()
    if schedule.mode is DosingMode.CONTINUOUS:
        require("rate_ul_per_day", schedule.rate_ul_per_day, 0, limit, "µL/day")
    elif schedule.mode is DosingMode.FLEX:
        require("steps", ceil_div(basal, UNITS_PER_UL), 0, limit, "µL/day")
    if ptm.enabled:
        allowed = (limit * UNITS_PER_UL - basal) // (ptm.dose_ul * UNITS_PER_UL)
        require("patient_bolus.max_per_day", ptm.max_per_day, 1, allowed, "boluses")


def validate_drugs(
    drugs: tuple[DrugConcentration, ...], daily_ul: int, cfg: PumpConfig
) -> tuple[DrugConcentration, ...]:
    """New reservoir contents: known drugs, each once, within its concentration cap and daily-dose cap,
    and above an advised strength only at a labelled product's."""
    require("drugs", len(drugs), 1, MAX_DRUGS, "drugs")
    limits = {limit.drug: limit for limit in cfg.drug_limits}
    seen: set[int] = set()
    for i, item in enumerate(drugs):
        name = f"drugs[{i}].drug"
        require(name, int(item.drug), min(Drug), max(Drug), "")
        if int(item.drug) in seen:
            raise DeviceRejected(ErrorCode.OUT_OF_RANGE, f"{name} {Drug(item.drug).name} listed twice", name, item.drug)
        seen.add(int(item.drug))
        limit = limits.get(Drug(item.drug))
        highest = limit.max_conc_ng_per_ml if limit else 0
        if limit and limit.max_dose_ng_per_day and daily_ul > 0:
            highest = min(highest, limit.max_dose_ng_per_day * 1000 // daily_ul)
        require(f"drugs[{i}].conc_ng_per_ml", item.conc_ng_per_ml, 1, highest, "ng/mL")
        check_concentration(i, item, limit)
    return tuple(DrugConcentration(Drug(d.drug), d.conc_ng_per_ml) for d in drugs)


def check_concentration(index: int, item: DrugConcentration, limit: DrugLimit | None) -> None:
    """A concentration above the advised ceiling is accepted only as a labelled product's exact strength."""
    if limit is None or not limit.advised_conc_ng_per_ml:
        return
    if item.conc_ng_per_ml <= limit.advised_conc_ng_per_ml or item.conc_ng_per_ml in limit.labelled_conc_ng_per_ml:
        return
    labelled = ", ".join(f"{c / 1e6:g} mg/mL" for c in limit.labelled_conc_ng_per_ml) or "none"
    field = f"drugs[{index}].conc_ng_per_ml"
    raise DeviceRejected(
        ErrorCode.OUT_OF_RANGE,
        f"{item.drug.name.lower()} {item.conc_ng_per_ml / 1e6:g} mg/mL is above the advised "
        f"{limit.advised_conc_ng_per_ml / 1e6:g} mg/mL; only a labelled product may be stronger ({labelled})",
        field,
        item.conc_ng_per_ml,
        limit.advised_conc_ng_per_ml,
    )


def validate_bolus_size(volume_ul: int, duration_min: int, cfg: PumpConfig, priming: bool = False) -> None:
    """Volume and duration of a clinician, bridge or priming bolus; the duration bounds the rate.

    A priming bolus may run at the pump's high flow, every other bolus at most at the bolus rate.
    """
    require("volume_ul", volume_ul, 1, cfg.max_bolus_ul, "µL")
    top_rate = cfg.max_priming_rate_ul_per_day if priming else cfg.max_bolus_rate_ul_per_day
    shortest = min_duration_min(volume_ul, top_rate)
    require("duration_min", duration_min, shortest, cfg.max_bolus_duration_min, "min")


def patient_bolus_size(volume_ul: int, duration_min: int, ptm: PatientBolusSettings) -> tuple[int, int]:
    """A patient bolus is the programmed one: each field must be 0 (use the setting) or equal to it."""
    for name, asked, programmed in (
        ("volume_ul", volume_ul, ptm.dose_ul),
        ("duration_min", duration_min, ptm.duration_min),
    ):
        if asked not in (0, programmed):
            raise DeviceRejected(
                ErrorCode.OUT_OF_RANGE,
                f"{name} {asked} differs from the programmed {programmed}",
                name,
                asked,
                programmed,
            )
    return ptm.dose_ul, ptm.duration_min
