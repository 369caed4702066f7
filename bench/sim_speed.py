"""Simulation speed: simulated years per wall second of each device model, in one call and in server ticks.

For each device kind (an SCS on a rechargeable cell with a tonic program, an SCS on a primary cell
with microdosed BurstDR, a pump at 0.5 mL/day refilled every month by this benchmark) the model runs
for ``--years`` of device time (a) with a single ``advance_to`` (for the pump: one per refill
interval, since the refills are commands) and (b) in the steps the live server takes: one
``advance_to`` per tick of ``--tick-ms`` wall ms at ``--speed`` device seconds per wall second
(50 ms at 1,000,000x: 13.9 device hours a step). It prints simulated years per wall second of each,
the events logged, the cost of one tick, and the largest relative difference between (a) and (b)
over the battery energy, the reservoir at every refill and the other end-state figures (it should be
about 0: the models integrate in closed form between breakpoints). Run: ``python bench/sim_speed.py``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from device_mock.battery import YEAR_S
from device_mock.pump import Pump, PumpConfig
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.messages import Area, BatteryKind, Refill, StimProgramSet, TherapySet, Waveform

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
YEAR_MS = YEAR_S * 1000.0
DAY_MS = 86_400_000

# Bipolar (anode contact 0, cathode contact 1) areas; docs/devices.md 1.5 worked examples.
TONIC = Area(0b01, 0b10, 3_000, 200, 60, Waveform.TONIC, 0, 0, 0, 0)  # 3 mA, 200 µs, 60 Hz, continuous
MICRODOSED_BURST = Area(0b01, 0b10, 600, 1_000, 40, Waveform.BURST, 5, 500, 30, 90)  # BurstDR, 30 s on / 90 s off


@dataclass
class Run:
    """One simulated span: wall time, model calls, and what it ended with."""

    seconds: float
    calls: int
    events: int
    figures: dict[str, float] = field(default_factory=dict)
    log: list[tuple[int, ...]] = field(default_factory=list)
    end: str = ""


@dataclass
class Case:
    """A device set-up: how to build it, and whether the bench drives refills."""

    name: str
    description: str
    build: Callable[[int], Stimulator | Pump]
    refill_ms: int = 0  # > 0: a refill every this many device ms (pump)


def build_scs(kind: BatteryKind, area: Area, patient_max_ua: int) -> Callable[[int], Stimulator]:
    def build(seed: int) -> Stimulator:
        stim = Stimulator(ScsConfig(battery_kind=kind), T0, seed)
        stim.apply(StimProgramSet(1, True, (area,), patient_max_ua, 2))
        stim.apply(TherapySet(True))
        return stim

    return build


def build_pump(rate_ul_per_day: int) -> Callable[[int], Pump]:
    def build(seed: int) -> Pump:
        return Pump(PumpConfig(initial_rate_ul_per_day=rate_ul_per_day), T0, seed)

    return build


def refill(pump: Pump) -> float:
    """A monthly refill: withdraw what is really left, fill to capacity; returns the estimated reservoir before."""
    before = float(pump.status().reservoir_ul)
    config = pump.config
    withdrawn = min(config.capacity_ul, round(pump.true_reservoir_ul))
    pump.apply(Refill(withdrawn, config.capacity_ul, config.initial_drugs, True, True, False))
    return before


def simulate(case: Case, seed: int, end_ms: int, step_ms: int | None) -> Run:
    """Run ``case`` from T0 to ``end_ms``: one ``advance_to`` per stretch (``step_ms`` None) or per step."""
    model = case.build(seed)
    stops = list(range(T0 + case.refill_ms, end_ms, case.refill_ms)) if case.refill_ms else []
    stops.append(end_ms)
    reservoirs: list[float] = []
    calls = 0
    start = time.perf_counter()
    now = T0
    for stop in stops:
        if step_ms is None:
            model.advance_to(stop)
            calls += 1
        else:
            while now < stop:
                now = min(stop, now + step_ms)
                model.advance_to(now)
                calls += 1
        now = stop
        if isinstance(model, Pump) and stop != end_ms:
            reservoirs.append(refill(model))
    seconds = time.perf_counter() - start
    return Run(seconds, calls, model.events.last_seq, *observe(model, reservoirs))


def observe(model: Stimulator | Pump, reservoirs: list[float]) -> tuple[dict[str, float], list[tuple[int, ...]], str]:
    """The end-state figures (public API: ``to_state``, ``status``), the full event log, and a summary."""
    state: dict[str, Any] = model.to_state()
    status = model.status()
    figures = {
        "battery_pct_x100": float(status.battery_pct_x100),
        "battery_mv": float(status.battery_mv),
        "eri_ms": float(status.eri_ms),
        "eos_ms": float(status.eos_ms),
    }
    if isinstance(model, Stimulator):
        figures.update(battery_energy_j=state["battery_energy_j"], tissue_energy_j=state["tissue_energy_j"])
        figures.update({f"cell.{k}": float(v) for k, v in state["cell"].items() if isinstance(v, int | float)})
    else:
        totals = state["totals"]
        figures.update(
            pumped_units=float(totals["pumped"]),
            powered_ms=float(totals["powered_ms"]),
            delivered_ul=totals["delivered_ul"],
            reservoir_ul=float(status.reservoir_ul),
        )
        figures.update({f"reservoir_before_refill_{i}": ul for i, ul in enumerate(reservoirs)})
    log = [
        (e.seq, e.time_ms, int(e.code), int(e.priority), int(e.state), e.arg0, e.arg1)
        for e in model.events.read(1, model.events.last_seq)
    ]
    end = f"end battery {status.battery_state.name}"
    if status.battery_state.name in ("EOS", "FAILED") and status.eos_ms:
        end += f" (EOS at year {(status.eos_ms - T0) / YEAR_MS:.2f})"
    if isinstance(model, Pump):
        end += f", {len(reservoirs)} refills, {state['totals']['delivered_ul'] / 1000:,.0f} mL delivered"
    return figures, log, end


def best_of(repeat: int, run: Callable[[], Run]) -> Run:
    """The fastest of ``repeat`` runs (their results are identical: the models are deterministic)."""
    return min((run() for _ in range(repeat)), key=lambda r: r.seconds)


def max_rel_diff(a: dict[str, float], b: dict[str, float]) -> tuple[float, str]:
    """Largest |a - b| / max(|a|, |b|) over the figures both have, and which figure it is."""
    worst, name = 0.0, "-"
    for key in sorted(a.keys() | b.keys()):
        if key not in a or key not in b:
            return math.inf, f"{key} (missing in one run)"
        scale = max(abs(a[key]), abs(b[key]))
        diff = abs(a[key] - b[key]) / scale if scale else 0.0
        if diff > worst or name == "-":
            worst, name = max(worst, diff), key
    return worst, name


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--years", type=float, default=20.0, help="simulated span per run, years (default 20)")
    p.add_argument("--tick-ms", type=float, default=50.0, help="server tick for mode (b), wall ms (default 50)")
    p.add_argument(
        "--speed",
        type=float,
        default=1_000_000.0,
        help="device seconds per wall second for mode (b) (default 1,000,000)",
    )
    p.add_argument("--repeat", type=int, default=5, help="runs per measurement, the fastest reported (default 5)")
    p.add_argument("--pump-rate", type=int, default=500, help="pump basal rate, µL/day (default 500)")
    p.add_argument("--refill-days", type=float, default=30.0, help="pump refill interval, days (default 30)")
    p.add_argument("--seed", type=int, default=1, help="model seed (default 1)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.years <= 0 or args.tick_ms <= 0 or args.speed <= 0 or args.repeat < 1 or args.refill_days <= 0:
        raise SystemExit("sim_speed: --years, --tick-ms, --speed, --refill-days must be > 0 and --repeat >= 1")
    end_ms = T0 + round(args.years * YEAR_MS)
    step_ms = max(1, round(args.tick_ms * args.speed))
    tonic = f"tonic {TONIC.amplitude_ua / 1000:g} mA / {TONIC.pulse_width_us} µs / {TONIC.rate_hz} Hz"
    cases = [
        Case(
            "scs-rechargeable",
            f"{tonic}, auto-recharge at 25 %",
            build_scs(BatteryKind.RECHARGEABLE, TONIC, 4_000),
        ),
        Case(
            "scs-primary",
            "microdosed BurstDR 0.6 mA / 1000 µs / 40 Hz x 5 at 500 Hz, 30 s on / 90 s off",
            build_scs(BatteryKind.PRIMARY, MICRODOSED_BURST, 1_000),
        ),
        Case(
            "pump",
            f"{args.pump_rate / 1000:g} mL/day continuous, refilled to capacity every {args.refill_days:g} days",
            build_pump(args.pump_rate),
            refill_ms=round(args.refill_days * DAY_MS),
        ),
    ]
    print(
        f"sim_speed: {args.years:g} simulated years per run, fastest of {args.repeat}; "
        f"(b) ticks of {args.tick_ms:g} ms at {args.speed:,.0f}x = {step_ms / 3_600_000:.2f} device hours each"
    )
    for case in cases:
        a = best_of(args.repeat, lambda case=case: simulate(case, args.seed, end_ms, None))
        b = best_of(args.repeat, lambda case=case: simulate(case, args.seed, end_ms, step_ms))
        ya, yb = args.years / a.seconds, args.years / b.seconds
        tick_us = b.seconds / b.calls * 1e6
        share = tick_us / (args.tick_ms * 1000) * 100
        one_call = "one advance_to" if not case.refill_ms else f"one advance_to per refill ({a.calls} calls)"
        print(f"{case.name}: {case.description}")
        print(f"  (a) {one_call}: {ya:,.1f} simulated years/s, {a.events} events, {a.end}")
        print(
            f"  (b) {b.calls:,} ticks: {yb:,.1f} simulated years/s ({yb / ya:.2f}x (a)), {b.events} events, "
            f"{tick_us:.1f} µs per tick = {share:.4f} % of a {args.tick_ms:g} ms tick"
        )
        diff, worst = max_rel_diff(a.figures, b.figures)
        same_log = "identical" if a.log == b.log else "DIFFERENT"
        print(
            f"  (a) vs (b): max relative difference {diff:.3g} over {len(a.figures)} figures "
            f"(worst: {worst}), event logs {same_log}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
