"""The pump's basal program: stopped, a constant rate, or a flex day of steps and periodic boluses.

A flex day runs on the schedule's local time (``utc_offset_min`` east of UTC) and repeats daily.
It is held as one table of piecewise-constant rates over the local day: every step, plus each
periodic bolus on top of the step it falls in. A periodic bolus of V µL over D min adds
V x 1440 / D µL/day (= units/ms, see ``pump_dosing``) while it runs, so it must be a whole number
and the day's volume stays an exact integer of units; ``validate_schedule`` refuses any other.

Pure: nothing here logs, keeps time or changes state. Must not import ``pump.py`` or its parts.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import MAX_FLEX_STEPS, MAX_PERIODIC_BOLUSES, DosingMode, DosingSet, FlexStep, PeriodicBolus

from .model import require
from .pump_config import PumpConfig

__all__ = ["UTC_OFFSET_MIN", "Schedule", "validate_schedule"]

DAY_MS = 86_400_000
MINUTE_MS = 60_000
MINUTES_PER_DAY = 1_440
# Civil time zones lie between UTC-12:00 and UTC+14:00 [V: IANA tz database, Etc/GMT+12 and Pacific/Kiritimati].
UTC_OFFSET_MIN = (-720, 840)


@dataclass(frozen=True)
class Schedule:
    """The basal program. Flex steps and periodic boluses are in minutes of the local day."""

    mode: DosingMode
    rate_ul_per_day: int = 0
    steps: tuple[FlexStep, ...] = ()
    boluses: tuple[PeriodicBolus, ...] = ()
    utc_offset_min: int = 0

    @cached_property
    def _table(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(starts, rates) of the flex day in local ms, merged where the rate does not change.

        A local time before ``starts[0]`` runs at ``rates[-1]`` (the day wraps), so a rate that
        runs on across midnight has no edge there.
        """
        step_starts = [s.start_min * MINUTE_MS for s in self.steps]
        windows = [(b.start_min * MINUTE_MS, b.duration_min * MINUTE_MS, _bolus_rate(b)) for b in self.boluses]
        cuts = {0, *step_starts}
        for start, length, _ in windows:
            cuts |= {start, (start + length) % DAY_MS}
        starts, rates = [], []
        for t in sorted(cuts):
            index = bisect.bisect_right(step_starts, t) - 1  # -1: the last step of the day before
            rate = self.steps[index].rate_ul_per_day
            rate += sum(r for start, length, r in windows if (t - start) % DAY_MS < length)
            if not rates or rates[-1] != rate:
                starts.append(t)
                rates.append(rate)
        if len(rates) > 1 and rates[0] == rates[-1]:  # midnight is no edge
            starts, rates = starts[1:], rates[1:]
        return tuple(starts), tuple(rates)

    def _local(self, t_ms: int) -> int:
        return t_ms + self.utc_offset_min * MINUTE_MS

    def rate_at(self, t_ms: int) -> int:
        """Programmed basal rate at device time ``t_ms`` (UTC), µL/day (= units/ms)."""
        if self.mode is DosingMode.CONTINUOUS:
            return self.rate_ul_per_day
        if self.mode is DosingMode.FLEX:
            return self.local_rate(self._local(t_ms))
        return 0

    def local_rate(self, local_ms: int) -> int:
        """The flex day's rate at ``local_ms`` of its local time (any day)."""
        starts, rates = self._table
        return rates[bisect.bisect_right(starts, local_ms % DAY_MS) - 1]

    def next_edge(self, t_ms: int) -> int | None:
        """First device time after ``t_ms`` at which the basal rate changes (None: never)."""
        if self.mode is not DosingMode.FLEX:
            return None
        starts, _ = self._table
        if len(starts) < 2:
            return None
        local = self._local(t_ms)
        day_start = local - local % DAY_MS
        index = bisect.bisect_right(starts, local - day_start)
        edge = day_start + starts[index] if index < len(starts) else day_start + DAY_MS + starts[0]
        return edge - self.utc_offset_min * MINUTE_MS

    def daily_units(self) -> int:
        """Units the basal program drains in any 24 h."""
        return self._daily_units

    def daily_ul(self) -> int:
        """µL the basal program drains in any 24 h, rounded up."""
        return -(-self._daily_units // DAY_MS)

    @cached_property
    def _daily_units(self) -> int:  # a schedule is immutable; projections ask for this several times a poll
        if self.mode is not DosingMode.FLEX:
            return self.rate_at(0) * DAY_MS
        starts, rates = self._table
        ends = (*starts[1:], starts[0] + DAY_MS)
        return sum(rate * (end - start) for rate, start, end in zip(rates, starts, ends, strict=True))

    def local_minute(self, t_ms: int) -> int:
        """The minute of the schedule's local day at device time ``t_ms``."""
        return self._local(t_ms) % DAY_MS // MINUTE_MS

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        """Rebuild from ``asdict`` output (a state saved before periodic boluses and time zones has neither)."""
        steps = tuple(FlexStep(**step) for step in data["steps"])
        boluses = tuple(PeriodicBolus(**b) for b in data.get("boluses", ()))
        return cls(DosingMode(data["mode"]), data["rate_ul_per_day"], steps, boluses, data.get("utc_offset_min", 0))


def _bolus_rate(bolus: PeriodicBolus) -> int:
    """µL/day (units/ms) while a periodic bolus runs; exact, as ``validate_schedule`` made sure."""
    return bolus.volume_ul * MINUTES_PER_DAY // bolus.duration_min


def validate_schedule(message: DosingSet, cfg: PumpConfig) -> Schedule:
    """The basal program of a ``DosingSet``; fields the mode does not use are not kept."""
    require("mode", int(message.mode), min(DosingMode), max(DosingMode), "")
    mode = DosingMode(message.mode)
    require("utc_offset_min", message.utc_offset_min, *UTC_OFFSET_MIN, "min")
    offset = message.utc_offset_min
    if mode is DosingMode.CONTINUOUS:
        require("rate_ul_per_day", message.rate_ul_per_day, cfg.min_rate_ul_per_day, cfg.max_rate_ul_per_day, "µL/day")
        require("periodic_boluses", len(message.periodic_boluses), 0, 0, "(FLEX mode only)")
        return Schedule(mode, message.rate_ul_per_day, utc_offset_min=offset)
    if mode is DosingMode.FLEX:
        require("steps", len(message.steps), 1, MAX_FLEX_STEPS, "steps")
        previous = -1
        for i, step in enumerate(message.steps):
            require(f"steps[{i}].start_min", step.start_min, previous + 1, MINUTES_PER_DAY - 1, "min")
            rate = step.rate_ul_per_day
            require(f"steps[{i}].rate_ul_per_day", rate, cfg.min_rate_ul_per_day, cfg.max_rate_ul_per_day, "µL/day")
            previous = step.start_min
        steps = tuple(FlexStep(s.start_min, s.rate_ul_per_day) for s in message.steps)
        boluses = _validate_periodic(message.periodic_boluses, cfg)
        schedule = Schedule(mode, 0, steps, boluses, offset)
        _require_within_bolus_rate(schedule, cfg)
        return schedule
    return Schedule(DosingMode.STOPPED, utc_offset_min=offset)


def _validate_periodic(boluses: tuple[PeriodicBolus, ...], cfg: PumpConfig) -> tuple[PeriodicBolus, ...]:
    """Each periodic bolus in range, exact, and clear of the one before it (the day wraps)."""
    require("periodic_boluses", len(boluses), 0, MAX_PERIODIC_BOLUSES, "boluses")
    free_from = -1  # the first minute the previous bolus leaves free
    for i, b in enumerate(boluses):
        p = f"periodic_boluses[{i}]"
        require(f"{p}.start_min", b.start_min, max(0, free_from), MINUTES_PER_DAY - 1, "min")
        require(f"{p}.volume_ul", b.volume_ul, 1, cfg.max_bolus_ul, "µL")
        require(f"{p}.duration_min", b.duration_min, 1, MINUTES_PER_DAY, "min")
        if b.volume_ul * MINUTES_PER_DAY % b.duration_min:
            shorter, longer = _exact_durations(b.volume_ul, b.duration_min)
            why = (
                f"{b.volume_ul} µL over {b.duration_min} min is not a whole µL/day rate; "
                f"the nearest durations that are: {shorter} or {longer} min"
            )
            raise DeviceRejected(ErrorCode.OUT_OF_RANGE, why, f"{p}.duration_min", b.duration_min, longer)
        free_from = b.start_min + b.duration_min
    if boluses and free_from - MINUTES_PER_DAY > boluses[0].start_min:
        last = len(boluses) - 1
        why = "the last periodic bolus runs past midnight into the first one"
        most = MINUTES_PER_DAY + boluses[0].start_min - boluses[last].start_min
        raise DeviceRejected(
            ErrorCode.OUT_OF_RANGE, why, f"periodic_boluses[{last}].duration_min", boluses[last].duration_min, most
        )
    return tuple(PeriodicBolus(b.start_min, b.volume_ul, b.duration_min) for b in boluses)


def _exact_durations(volume_ul: int, duration_min: int) -> tuple[int, int]:
    """The nearest durations below and above ``duration_min`` at which ``volume_ul`` is a whole µL/day rate."""
    exact = [d for d in range(1, MINUTES_PER_DAY + 1) if volume_ul * MINUTES_PER_DAY % d == 0]
    shorter = max((d for d in exact if d < duration_min), default=exact[0])
    longer = min((d for d in exact if d > duration_min), default=exact[-1])
    return shorter, longer


def _require_within_bolus_rate(schedule: Schedule, cfg: PumpConfig) -> None:
    """A periodic bolus on top of the steps it spans may not pass the pump's bolus rate."""
    top = cfg.max_bolus_rate_ul_per_day
    step_starts = [s.start_min * MINUTE_MS for s in schedule.steps]
    for i, b in enumerate(schedule.boluses):
        start, length, own = b.start_min * MINUTE_MS, b.duration_min * MINUTE_MS, _bolus_rate(b)
        points = [start, *(t for t in step_starts if (t - start) % DAY_MS < length)]
        inside = [schedule.local_rate(t) for t in points]
        if max(inside, default=0) > top:
            step_rate = max(inside) - own
            shortest = -(-b.volume_ul * MINUTES_PER_DAY // max(1, top - step_rate))
            why = (
                f"{b.volume_ul} µL over {b.duration_min} min on top of a step of {step_rate} µL/day "
                f"passes the pump's {top} µL/day"
            )
            field = f"periodic_boluses[{i}].duration_min"
            raise DeviceRejected(ErrorCode.OUT_OF_RANGE, why, field, b.duration_min, shortest)
