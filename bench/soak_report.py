"""The soak run's report (docs/security.md R24): the samples, the figures and a verdict per criterion.

``Sample`` is one row of the table (``print_table``, ``write_csv``); ``report`` prints the table,
the figures of the run and the ``Verdict`` of every R24 criterion (``resource_verdicts`` judges
RSS growth, descriptor and thread leaks) and returns the exit code.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from children import ProcSample
from soak_emulator import Emulator
from soak_gateway import Gateway
from soak_relay import Relay

RSS_GROWTH_LIMIT = 0.10


# --- samples and verdicts ------------------------------------------------------------------------
@dataclass
class Sample:
    """One row of the table: time, the emulator's process figures, the clients' counters summed."""

    t_s: float
    proc: ProcSample
    counters: Counter[str]


TABLE = (
    ("t s", lambda s: f"{s.t_s:.0f}"),
    ("RSS KiB", lambda s: f"{s.proc.rss_kib:,}"),
    ("fds", lambda s: str(s.proc.fds)),
    ("thr", lambda s: str(s.proc.threads)),
    ("CPU s", lambda s: f"{s.proc.cpu_s:.1f}"),
    ("polls", lambda s: f"{s.counters['polls_ok']:,}"),
    ("frames ok", lambda s: f"{s.counters['frames_ok']:,}"),
    ("CRC", lambda s: f"{s.counters['crc_errors']:,}"),
    ("malf", lambda s: f"{s.counters['malformed'] + s.counters['oversize']:,}"),
    ("MAC", lambda s: f"{s.counters['mac_errors']:,}"),
    ("replay", lambda s: f"{s.counters['replays']:,}"),
    ("timeouts", lambda s: f"{s.counters['timeouts']:,}"),
    ("retries", lambda s: f"{s.counters['retries']:,}"),
    ("reconn", lambda s: f"{s.counters['reconnects']:,}"),
    ("injected", lambda s: f"{s.counters['injected']:,}"),
)


def print_table(samples: list[Sample], max_rows: int) -> None:
    """The samples as a table, thinned evenly to ``max_rows`` (first and last kept)."""
    rows = samples
    if len(rows) > max_rows:
        step = (len(rows) - 1) / (max_rows - 1)
        rows = [samples[round(i * step)] for i in range(max_rows)]
    cells = [[head for head, _ in TABLE]] + [[fmt(s) for _, fmt in TABLE] for s in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE))]
    for row in cells:
        print("  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    if len(rows) < len(samples):
        print(f"  ({len(rows)} of {len(samples)} samples shown; --csv writes them all)")


def write_csv(path: Path, samples: list[Sample]) -> None:
    """Every sample, one line each."""
    keys = sorted({k for s in samples for k in s.counters})
    head = ["t_s", "rss_kib", "fds", "threads", "cpu_s", *keys]
    lines = [",".join(head)]
    for s in samples:
        values = [f"{s.t_s:.1f}", str(s.proc.rss_kib), str(s.proc.fds), str(s.proc.threads), f"{s.proc.cpu_s:.2f}"]
        lines.append(",".join(values + [str(s.counters[k]) for k in keys]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class Verdict:
    """One R24 criterion: its name, whether it passed, and the figures behind it."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        """``verdict <name>: PASS|FAIL (<detail>)``."""
        return f"verdict {self.name}: {'PASS' if self.passed else 'FAIL'} ({self.detail})"


def resource_verdicts(samples: list[Sample], warmup_s: float) -> list[Verdict]:
    """RSS growth after warm-up (median of the last quarter against the warm-up sample), fd and thread leaks."""
    after = [s for s in samples if s.t_s >= warmup_s]
    if len(after) < 4:
        why = f"only {len(after)} samples after the {warmup_s:g} s warm-up: run longer or sample more often"
        return [Verdict(n, False, why) for n in ("RSS growth < 10 % after warm-up", "no fd leak", "no thread leak")]
    base = after[0]
    tail = samples[-max(1, len(samples) // 4) :]
    rss_median = statistics.median(s.proc.rss_kib for s in tail)
    growth = rss_median / base.proc.rss_kib - 1.0
    fds_min, fds_max = min(s.proc.fds for s in tail), max(s.proc.fds for s in after)
    thr_min, thr_max = min(s.proc.threads for s in tail), max(s.proc.threads for s in after)
    # The minimum of the last quarter: a state save's short-lived file is not a leak, a descriptor kept open is.
    return [
        Verdict(
            "RSS growth < 10 % after warm-up",
            growth < RSS_GROWTH_LIMIT,
            f"{base.proc.rss_kib:,} KiB at {base.t_s:.0f} s, median of the last {len(tail)} samples "
            f"{rss_median:,.0f} KiB: {growth * 100:+.1f} %",
        ),
        Verdict(
            "no fd leak",
            fds_min <= base.proc.fds,
            f"{base.proc.fds} after warm-up, last quarter min {fds_min}, max after warm-up {fds_max}",
        ),
        Verdict(
            "no thread leak",
            thr_min <= base.proc.threads,
            f"{base.proc.threads} after warm-up, last quarter min {thr_min}, max after warm-up {thr_max}",
        ),
    ]


def report(
    args: argparse.Namespace,
    run_s: float,
    samples: list[Sample],
    gateways: list[Gateway],
    relays: list[Relay],
    emulator: Emulator,
    exit_code: int,
    alive_at_end: bool,
    died_at: float | None,
    hang: list[str],
    bound: float,
    own_start: ProcSample | None,
    own_end: ProcSample | None,
) -> int:
    """Print the table, the figures and the verdicts; return the exit code (0: every criterion passed)."""
    print("samples (emulator from /proc; client counters summed over both devices and every reconnect):")
    print_table(samples, args.max_rows)
    totals: Counter[str] = Counter()
    for gateway in gateways:
        totals.update(gateway.counters())
    relay_stats: Counter[str] = Counter()
    for relay in relays:
        relay_stats.update(relay.stats)
    refusals: Counter[str] = Counter()
    for gateway in gateways:
        refusals.update(gateway.refusals)
    polls = totals["polls_ok"] + totals["polls_failed"]
    first, last = (samples[0], samples[-1]) if samples else (None, None)
    print(f"duration: {run_s:.1f} s of load (+ end checks), {len(samples)} samples, warm-up {args.warmup:g} s")
    print(
        f"polls: {totals['polls_ok']:,} ok of {polls:,} ({100 * totals['polls_ok'] / max(polls, 1):.1f} %), "
        f"event pages {totals['pages_ok']:,} ok / {totals['pages_failed']:,} failed, "
        f"therapy toggles {totals['toggles']:,} ({totals['toggles_unknown']:,} unknown until read back, "
        f"{totals['toggles_refused']:,} refused), alarm acks {totals['acks_ok']:,} ok / "
        f"{totals['acks_refused']:,} refused"
    )
    print(
        f"client counters: requests {totals['requests']:,}, frames ok {totals['frames_ok']:,}, CRC errors "
        f"{totals['crc_errors']:,}, malformed {totals['malformed']:,}, oversize {totals['oversize']:,}, MAC errors "
        f"{totals['mac_errors']:,}, replays {totals['replays']:,}, sequence gaps {totals['seq_gaps']:,}, timeouts "
        f"{totals['timeouts']:,}, retries {totals['retries']:,}, rejected {totals['rejected']:,}, reopened "
        f"{totals['reopened']:,}; pushes {totals['pushes']:,}"
    )
    print(
        f"gateway: connects {totals['connects']:,}, reconnects {totals['reconnects']:,}, lockout waits "
        f"{totals['lockout_waits']:,}, longest call {max((g.max_call_s for g in gateways), default=0):.2f} s "
        f"(bound {bound:.1f} s); refusals by code: {dict(sorted(refusals.items())) or 'none'}"
    )
    notes = [n for g in gateways for n in g.notes]
    if totals["protocol_errors"]:
        print(f"other protocol errors: {totals['protocol_errors']:,}, first: {notes[0]}")
    print(
        f"relays host->device: {relay_stats['h2d_chunks']:,} chunks, {relay_stats['h2d_chunks_corrupted']:,} corrupted "
        f"({relay_stats['h2d_bytes_flipped']:,} bytes flipped, {relay_stats['h2d_bytes_dropped']:,} dropped, "
        f"{relay_stats['h2d_bytes_inserted']:,} inserted), {relay_stats['h2d_chunks_duplicated']:,} duplicated, "
        f"{relay_stats['h2d_chunks_held']:,} held back ({relay_stats['h2d_chunks_reordered']:,} swapped with the "
        f"next); device CRC hints seen {relay_stats['device_crc_hints']:,}; upstream reopens "
        f"{relay_stats['upstream_reopens']:,}; bytes lost to a full buffer "
        f"{relay_stats['h2d_bytes_lost'] + relay_stats['d2h_bytes_lost']:,}"
    )
    audits = {g.name_: g.audit() for g in gateways}
    print(
        f"bursts: replay {totals['replay_bursts']:,} ({totals['sent_replay']:,} frames), forgery "
        f"{totals['forgery_bursts']:,} ({totals['sent_mac']:,} under the session's id, {totals['sent_nosession']:,} "
        f"untagged or another session); attempts deferred near a disconnect "
        f"{totals['bursts_postponed_disconnect']:,}, after a retried read-back {totals['bursts_postponed_retry']:,}; "
        f"accepted "
        f"{totals['accepted_injected']}"
    )
    for name, audit in audits.items():
        print(
            f"event log {name}: AUTH_FAILURE {audit['auth_failures']} (forged {audit['mac_sent']}, "
            f"{audit['mac_confirmed']} with the link confirmed up), LOCKOUT {audit['lockouts']}, therapy entries "
            f"{audit['therapy_logged']} (the gateway's own changes {audit['transitions']}), programming entries "
            f"{audit['forbidden']}; entries #{audit['entries'][0] + 1}..#{audit['entries'][1]} read"
        )
    if first and last:
        print(
            f"emulator: RSS {first.proc.rss_kib:,} KiB at start, {last.proc.rss_kib:,} KiB at the end; fds "
            f"{first.proc.fds} -> {last.proc.fds}; threads {first.proc.threads} -> {last.proc.threads}; CPU "
            f"{last.proc.cpu_s:.1f} s; exit code {exit_code} after SIGTERM"
        )
    if own_start and own_end:
        print(
            f"soak process: RSS {own_start.rss_kib:,} -> {own_end.rss_kib:,} KiB, fds {own_start.fds} -> "
            f"{own_end.fds}, CPU {own_end.cpu_s:.1f} s"
        )

    verdicts: list[Verdict] = []
    problems = list(hang)
    if died_at is not None:
        problems.append(f"emulator exited at {died_at:.0f} s")
    if not alive_at_end:
        problems.append("emulator not running at the end")
    problems += [
        f"{g.name_} did not answer at the end (read-back, log, identify)" for g in gateways if not g.answered_at_end
    ]
    if exit_code != 0 or not any("stopped, state saved" in line for line in emulator.lines):
        problems.append(f"emulator exit code {exit_code} after SIGTERM, stdout tail {emulator.lines[-2:]}")
    if "Traceback" in emulator.stderr():
        problems.append(f"emulator logged a traceback: {emulator.stderr().strip().splitlines()[-1]!r}")
    problems += [f"{g.name_} gateway error: {g.error}" for g in gateways if g.error]
    problems += [f"relay error: {r.error}" for r in relays if r.error]
    longest = max((g.max_call_s for g in gateways), default=0.0)
    if longest > bound:
        problems.append(f"a client call took {longest:.2f} s, over the {bound:.1f} s bound")
    unexpected = [u for g in gateways for u in g.unexpected]
    if unexpected:
        problems.append(f"{len(unexpected)} errors outside the protocol's error tree, first: {unexpected[0]}")
    verdicts.append(
        Verdict(
            "no crash or hang",
            not problems,
            "; ".join(problems)
            or f"emulator alive throughout, answered at the end, exit 0 on SIGTERM; longest call {longest:.2f} s "
            f"<= {bound:.1f} s",
        )
    )
    verdicts += resource_verdicts(samples, args.warmup)
    noise_counted = totals["crc_errors"] + totals["malformed"] + totals["oversize"]
    mac_ok = all(a["mac_confirmed"] <= a["auth_failures"] <= a["mac_sent"] for a in audits.values())
    counted = noise_counted > 0 and relay_stats["device_crc_hints"] > 0 and totals["sent_mac"] > 0 and mac_ok
    verdicts.append(
        Verdict(
            "every corrupted frame counted",
            counted,
            ("no forgery burst fired; " if not totals["sent_mac"] else "")
            + f"client CRC/malformed/oversize {noise_counted:,}, device CRC hints {relay_stats['device_crc_hints']:,}; "
            + "; ".join(
                f"{n} AUTH_FAILURE {a['auth_failures']} for {a['mac_confirmed']}..{a['mac_sent']} forged"
                for n, a in audits.items()
            ),
        )
    )
    accepted = totals["accepted_injected"]
    audit_bad = [
        f"{n}: therapy entries {a['therapy_logged']} vs {a['transitions']} commanded, "
        f"programming entries {a['forbidden']}"
        for n, a in audits.items()
        if a["therapy_logged"] != a["transitions"] or a["forbidden"]
    ]
    violations = [v for g in gateways for v in g.violations]
    injected = totals["sent_replay"] + totals["sent_mac"] + totals["sent_nosession"]
    zero = accepted == 0 and not audit_bad and not violations and injected > 0
    verdicts.append(
        Verdict(
            "zero accepted forged/replayed/corrupted commands",
            zero,
            "; ".join([*audit_bad, *violations[:3]] + ([] if injected else ["no burst fired"]))
            or f"{injected:,} injected, 0 accepted; read-backs matched; the log holds only the gateway's own changes",
        )
    )
    for verdict in verdicts:
        print(verdict.line())
    failed = [v.name for v in verdicts if not v.passed]
    print(f"soak: {'PASS' if not failed else 'FAIL: ' + ', '.join(failed)}")
    return 0 if not failed else 1
