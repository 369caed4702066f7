"""The benchmarks still run: tiny sizes, exit 0, every figure line printed (speed itself is not judged here)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RATE = r"[\d,]+ polls/s, p50 [\d.]+ ms, p99 [\d.]+ ms"
IN_CI = os.environ.get("CI") == "true"


def run_bench(script: str, *args: str, timeout: float = 60.0) -> str:
    """Run ``bench/<script>`` with ``args``; assert it exits 0 and return what it printed."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def lines_matching(pattern: str, text: str) -> list[re.Match[str]]:
    return list(re.finditer(pattern, text, re.MULTILINE))


def test_sim_speed_prints_every_figure_and_the_two_modes_agree():
    out = run_bench("sim_speed.py", "--years", "0.1", "--repeat", "1")
    for name in ("scs-rechargeable", "scs-primary", "pump"):
        assert lines_matching(rf"^{name}: ", out), out
    assert len(lines_matching(r"^  \(a\) one advance_to.*: [\d,.]+ simulated years/s, \d+ events", out)) == 3, out
    assert len(lines_matching(r"^  \(b\) [\d,]+ ticks: [\d,.]+ simulated years/s .* µs per tick", out)) == 3, out
    diffs = lines_matching(r"^  \(a\) vs \(b\): max relative difference (\S+) .*event logs identical$", out)
    assert len(diffs) == 3, out
    assert all(float(m[1]) < 1e-9 for m in diffs), out  # closed form: any cut of time gives the same state


def test_poll_rate_ours_echo_floor_and_wire_time():
    out = run_bench("poll_rate.py", "--polls", "50", "--warmup", "10", "--baud-polls", "10", "--skip-modbus")
    ours = rf"^ours \(.*\): {RATE}; stats.last_rtt_s p50 [\d.]+ ms; request \d+ B, reply \d+ B, retries 0; CPU per poll"
    assert lines_matching(ours, out), out
    assert lines_matching(rf"^raw echo floor .*: {RATE}; CPU per poll: client", out), out
    rounds = r"\(median of \d+ interleaved rounds, [\d.]+-[\d.]+; pooled [\d.]+x\)"
    assert lines_matching(
        rf"^ratio ours / raw echo: [\d.]+x polls/s {rounds} \(target >= 0.5x: (met|MISSED)\)$", out
    ), out
    assert lines_matching(rf"^ours at --baud 115200 .*: {RATE}", out), out
    assert lines_matching(r"^wire time of one poll at 115200 bit/s: .* ratio p50 / wire [\d.]+x \(target <= 1.15x", out)


def _pymodbus_peer_missing() -> str:
    missing = [
        what
        for what, ok in (("socat", shutil.which("socat")), ("pymodbus", importlib.util.find_spec("pymodbus")))
        if not ok
    ]
    return " and ".join(missing)


@pytest.mark.skipif(
    bool(_pymodbus_peer_missing()) and not IN_CI,
    reason=f"{_pymodbus_peer_missing()} not installed, so the pymodbus peer of bench/poll_rate.py is not smoke-tested "
    "here; under CI=true this test runs (the .ci/run script installs socat) and fails instead of skipping",
)
def test_poll_rate_pymodbus_peer_over_socat():
    out = run_bench("poll_rate.py", "--polls", "50", "--warmup", "10", "--baud", "0")
    assert "FAILED" not in out, out
    assert lines_matching(rf"^pymodbus \S+ RTU .*: {RATE}; CPU per poll: client .* server .* socat", out), out
    assert lines_matching(rf"^raw echo over a socat pty pair .*: {RATE}", out), out
    rounds = r"\(median of \d+ interleaved rounds, [\d.]+-[\d.]+; pooled [\d.]+x\)"
    assert lines_matching(rf"^ratio ours / pymodbus: [\d.]+x polls/s {rounds} \(target >= 2x: (met|MISSED)\)$", out), (
        out
    )


def test_dashboard_tick_prints_ours_and_the_rebuild():
    out = run_bench("dashboard_tick.py", "--max-days", "1", "--ticks", "3", "--rebuilds", "1")
    rows = lines_matching(
        r"ours [\d.]+ ms / [\d,]+ B per tick; rebuild [\d.]+ ms / [\d,]+ B; rebuild / ours = \d+x", out
    )
    assert len(rows) == 2, out  # 1 hour and 1 day
    assert "slowest / fastest tick" in out


def test_codec_bench_prints_both_paths():
    out = run_bench("codec.py", "--mb", "0.2", "--seconds", "0.2")
    assert "frames/s" in out and "verified frames/s" in out


SOAK_VERDICTS = (
    "no crash or hang",
    "RSS growth < 10 % after warm-up",
    "no fd leak",
    "no thread leak",
    "every corrupted frame counted",
    "zero accepted forged/replayed/corrupted commands",
)


@pytest.mark.timeout(200)
def test_soak_short_run_passes_every_r24_criterion():
    # 27 s of R24 noise, two disconnects and bursts every 1.5 s per device; about 30 s in all.
    args = ("--minutes", "0.45", "--warmup", "5", "--sample-every", "1", "--disconnect-every", "12")
    args += ("--burst-every", "1.5", "--toggle-every", "2", "--ack-every", "4", "--max-rows", "5")
    out = run_bench("soak.py", *args, timeout=180)  # generous: a loaded 2-core machine stretches the end checks
    for name in SOAK_VERDICTS:
        assert lines_matching(rf"^verdict {re.escape(name)}: PASS \(", out), out
    assert lines_matching(r"^soak: PASS$", out), out
    assert lines_matching(r"^bursts: replay \d+ \(\d+ frames\), forgery \d+ .*; accepted 0$", out), out
    assert lines_matching(r"^emulator: RSS [\d,]+ KiB at start, .* threads 1 -> 1; .* exit code 0 after SIGTERM$", out)
    assert lines_matching(r"^client counters: requests [\d,]+, frames ok [\d,]+, CRC errors [\d,]+, ", out), out


@pytest.mark.timeout(200)
def test_bolus_restarts_bench_counts_every_bolus_once():
    out = run_bench("bolus_restarts.py", "--boluses", "4", "--kill-every", "2", timeout=180)
    assert lines_matching(r"^boluses requested: 4 \(2 with the reply lost and a kill -9 before the retry\)$", out), out
    assert lines_matching(r"^applied: 4, applied twice: 0$", out), out
    assert lines_matching(r"^  reported failed but applied: 0; reported applied but not applied: 0$", out), out
    assert lines_matching(r"^verdict: PASS$", out), out


def test_clock_step_bench_prints_the_step_its_peer_and_the_refusal():
    out = run_bench("clock_step.py")
    assert len(lines_matching(r"^\S.*: one ClockSet of 366 days: [\d.]+ ms, \d+ events, state \d+ KiB$", out)) == 2, out
    assert len(lines_matching(r"^  peer, the same 366 days one day per tick: .* = [\d.]+x$", out)) == 2, out
    assert lines_matching(r"^one millisecond more: OUT_OF_RANGE time_ms limit \d+ ", out), out


@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists() and not IN_CI,
    reason="/usr/bin/chromium not installed, so bench/dashboard_pages.py cannot load pages here; "
    "under CI=true (.ci/run installs it) this test runs and fails instead of skipping",
)
@pytest.mark.timeout(300)
def test_dashboard_pages_prints_the_resources_and_each_page_with_the_targets():
    out = run_bench("dashboard_pages.py", "--sizes", "1", "--sample-s", "1", "--warm-s", "2", timeout=240)
    assert lines_matching(
        r"^    1 devices: dashboard threads \d+, CPU \d+ % of a core, RSS \d+ MiB; all online after [\d.]+ s; "
        r"status age p50 [\d.]+ s, p95 [\d.]+ s at --poll 1; emulator CPU \d+ %$",
        out,
    ), out
    pages = lines_matching(
        r"^    1 devices: (overview|stimulator page) +cold load to data +\d+ ms \(page clock +\d+ ms\), +[\d,]+ B "
        r"\(targets <= 1000 ms, <= 1,500,000 B: (met|MISSED), judged on the first figure\)$",
        out,
    )
    assert [m[1] for m in pages] == ["overview", "stimulator page"], out


def test_cohort_bench_prints_the_time_the_rates_and_the_peer():
    out = run_bench("cohort.py", "--n", "40", "--years", "0.3")
    figures = lines_matching(r"^[\d,]+ patients, (trial only|[\d.]+ years after implant): [\d.]+ s wall .* of it$", out)
    assert len(figures) == 2, out
    assert len(lines_matching(r"^  responder rate [\d.]+ % \(configured 55\.0 %\), conversion", out)) == 2, out
    assert (
        len(lines_matching(r"^  peer, a bare random\.gauss loop over [\d,]+ scores: [\d.]+ s; .*x that floor$", out))
        == 2
    )
