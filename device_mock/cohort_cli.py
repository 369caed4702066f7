"""implant-cohort: run N seeded virtual patients through a trial (and years after), in process.

Prints the responder rate, the conversion rate and the mean relief (NRS-computed and as the
patients report it) with 95 % intervals beside the configured and published figures; with
``--years``, relief at 3, 6, 12 and 24 months after the implant. ``--json`` prints the figures as
one document, ``--csv`` one row per patient. A progress bar goes to standard error when it is a
terminal (or with ``--progress``). A scenario's ``[patient]`` table sets any ``PatientConfig`` field.

Imports the ``patients`` package and ``faults`` (for the scenario file); no ports, no servers.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from .faults import Scenario, ScenarioError
from .patients.cohort import MONTHS, WAVEFORMS, CohortOptions, CohortResult, run_cohort
from .patients.config import PatientConfig, patient_config

# Published figures printed beside the cohort's (docs/patients.md).
CONVERSION_SOURCE = "44 % of first trials converted within 3 months (Neuromodulation 2015, PubMed 24930992)"
RELIEF_SOURCE = "NRS-computed 54 % vs reported 59 % (Reg Anesth Pain Med 2021;46(4):293)"


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    p = argparse.ArgumentParser(prog="implant-cohort", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="patients (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="cohort seed (default 1)")
    p.add_argument("--kind", choices=("scs", "pump"), default="scs", help="SCS trial or intrathecal test dose")
    p.add_argument("--trial-days", type=float, default=7.0, help="SCS trial length, days (default 7; 3-8 typical)")
    p.add_argument("--baseline-days", type=float, default=7.0, help="baseline diary before the trial, days")
    p.add_argument("--years", type=float, default=0.0, help="years to follow each implanted patient (default 0)")
    p.add_argument("--waveform", choices=sorted(WAVEFORMS), default="tonic", help="SCS trial waveform")
    p.add_argument("--scenario", help="a scenario file whose [patient] table sets PatientConfig fields")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the figures as JSON")
    out.add_argument("--csv", action="store_true", help="one CSV row per patient")
    p.add_argument("--progress", action="store_true", help="a progress bar on standard error even when not a terminal")
    return p


def bar(stream: TextIO) -> Callable[[int, int], None]:
    """A progress bar on ``stream``, redrawn at each whole percent."""
    shown = {"pct": -1}

    def draw(done: int, total: int) -> None:
        pct = done * 100 // total
        if pct == shown["pct"]:
            return
        shown["pct"] = pct
        filled = pct // 4
        stream.write(f"\r[{'#' * filled}{'.' * (25 - filled)}] {done:,}/{total:,} patients")
        if done == total:
            stream.write("\n")
        stream.flush()

    return draw


def _pct(figure: dict[str, float]) -> str:
    return f"{100 * figure['value']:5.1f} %  (95 % CI {100 * figure['low']:.1f}-{100 * figure['high']:.1f})"


def text(result: CohortResult, summary: dict[str, Any], elapsed_s: float) -> str:
    """The figures as a person reads them."""
    o = result.options
    what = f"{o.trial_days:g}-day SCS trials ({o.waveform})" if o.kind == "scs" else "intrathecal test doses"
    configured = summary["configured"]
    lines = [
        f"implant-cohort: {summary['patients']:,} patients, seed {o.seed}, {what}",
        f"responder rate          {_pct(summary['responder_rate'])}   "
        f"configured {100 * configured['responder_rate']:.1f} %",
        f"conversion to implant   {_pct(summary['conversion_rate'])}   configured "
        f"{100 * configured['conversion_rate']:.1f} %; {CONVERSION_SOURCE}",
        f"mean relief, NRS        {_pct(summary['mean_relief'])}",
        f"mean relief, reported   {_pct(summary['mean_reported_relief'])}   published: {RELIEF_SOURCE}",
        f"reported vs NRS > 15 points  {100 * summary['flagged_share']['value']:.1f} % of patients",
    ]
    if o.kind == "pump":
        lines.append("  (intrathecal figures are the model's own: no published rate anchors them)")
    for month, figures in summary.get("after_implant", {}).items():
        lines.append(
            f"{int(month):2d} months after implant  relief {_pct(figures['mean_relief'])}, "
            f">= 50 %: {100 * figures['responders']['value']:.1f} %"
        )
    lines.append(f"ran in {elapsed_s:.2f} s")
    return "\n".join(lines)


def write_csv(result: CohortResult, stream: TextIO) -> None:
    """One row per patient."""
    writer = csv.writer(stream, lineterminator="\n")
    months = [f"relief_{m}m" for m in MONTHS]
    head = ["patient", "indication", "responder", "implanted", "relief", "reported_relief", "flagged"]
    writer.writerow([*head, "medication_stable", "intolerable", "test_dose_mg", *months, "reasons"])
    for o in result.outcomes:
        c = o.call
        reported = "" if c.reported is None else round(c.reported, 4)
        row = [o.index, o.indication.name.lower(), int(c.responder), int(o.implanted), round(c.relief, 4), reported]
        row += [int(c.flagged), int(c.medication_stable), int(c.intolerable), o.dose_mg]
        row += ["" if m not in o.relief_at else round(o.relief_at[m], 4) for m in MONTHS]
        writer.writerow([*row, "; ".join(c.reasons)])


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``implant-cohort``."""
    args = build_parser().parse_args(argv)
    try:
        config = PatientConfig()
        if args.scenario:
            config = patient_config(Scenario.load(args.scenario).patient)
        options = CohortOptions(
            args.n, args.seed, args.kind, args.trial_days, args.baseline_days, args.years, args.waveform
        )
    except (ScenarioError, ValueError, TypeError) as exc:
        print(f"implant-cohort: {exc}", file=sys.stderr)
        return 2
    progress = bar(sys.stderr) if args.progress or sys.stderr.isatty() else None
    started = time.perf_counter()
    result = run_cohort(options, config, progress)
    elapsed = time.perf_counter() - started
    summary = result.summary(config)
    if args.json:
        print(json.dumps({"options": vars(options), **summary, "elapsed_s": round(elapsed, 3)}, indent=2))
    elif args.csv:
        write_csv(result, sys.stdout)
    else:
        print(text(result, summary, elapsed))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
