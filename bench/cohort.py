"""Cohort speed: ``implant-cohort --n N --seed 1 --json`` end to end, against its 30 s budget.

Runs the real command (a fresh interpreter, so imports count) for ``--n`` patients, prints its wall
time, the diary entries written per second, the rates it found and the budget's ratio, and beside
it a peer measured in the same run: a bare loop drawing the same number of scores with
``random.gauss`` and rounding them, the floor of any per-entry Python model. With ``--years`` the
same for the long-term course. Run: ``python bench/cohort.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time

BUDGET_S = 30.0  # issue 11: 1,000 patients in under 30 s on a 2-core machine


def command(n: int, years: float) -> tuple[float, dict]:
    """Wall time and JSON of one ``implant-cohort`` run."""
    argv = [sys.executable, "-m", "device_mock.cohort_cli", "--n", str(n), "--seed", "1", "--json"]
    if years:
        argv += ["--years", str(years)]
    started = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - started, json.loads(out)


def peer(entries: int) -> float:
    """Seconds for a bare loop to draw and round ``entries`` noisy scores."""
    rng = random.Random(1)
    started = time.perf_counter()
    kept = [min(10, max(0, round(7.0 + rng.gauss(0.0, 1.0)))) for _ in range(entries)]
    assert len(kept) == entries
    return time.perf_counter() - started


def main() -> int:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--years", type=float, default=2.0, help="also time the long-term course (0: skip)")
    args = parser.parse_args()
    for years in (0.0, args.years) if args.years else (0.0,):
        wall, figures = command(args.n, years)
        entries = figures["diary_entries"]
        floor = peer(entries)
        rate, conversion = figures["responder_rate"]["value"], figures["conversion_rate"]["value"]
        label = f"{args.n:,} patients" + (f", {years:g} years after implant" if years else ", trial only")
        print(
            f"{label}: {wall:.2f} s wall ({figures['elapsed_s']:.2f} s in the model), {entries:,} diary entries, "
            f"{entries / figures['elapsed_s']:,.0f} entries/s; budget {BUDGET_S:.0f} s: {wall / BUDGET_S:.3f}x of it"
        )
        print(
            f"  responder rate {100 * rate:.1f} % (configured {100 * figures['configured']['responder_rate']:.1f} %), "
            f"conversion {100 * conversion:.1f} % (configured {100 * figures['configured']['conversion_rate']:.1f} %)"
        )
        print(
            f"  peer, a bare random.gauss loop over {entries:,} scores: {floor:.3f} s; "
            f"the model takes {figures['elapsed_s'] / floor:.1f}x that floor"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
