"""Dashboard pages at 1, 100 and 1,000 devices: cold load time to data and bytes, and the cost of the links.

For each fleet size N, in one run: starts ``implant-mock --fleet N`` and ``implant-dashboard --fleet``
on its manifest (127.0.0.1, free ports, everything in a temporary folder), waits until every device
has a status in the store, then measures
- the dashboard process with no browser open: threads, CPU % (over ``--sample-s``), RSS, and how old
  each device's latest status is (p50 / p95: polls keeping up give about half the poll interval);
- the emulator's CPU % over the same window (it shares the machine);
- in Chromium (Playwright, a fresh context per page, so a cold cache, with the login cookie): the
  time until the page shows data (the overview's first row; a device page's status text) as the
  driver sees it, from the call that starts the navigation, which the targets judge; the same by
  the page's own clock, from navigation start to the first frame drawn with the data (what the
  page itself costs, without the browser's start of a navigation); and the bytes transferred
  (encoded, as on the wire), for the overview, a stimulator page and a pump page.
Prints one table with the targets: data within 1 s, at most 1.5 MB transferred.
Run: ``python bench/dashboard_pages.py`` (``--sizes 1`` for a quick look).
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
TARGET_S, TARGET_BYTES = 1.0, 1_500_000
CLK_TCK = os.sysconf("SC_CLK_TCK")
# What "shows data" means on each page: an element (CSS) holding a text.
PAGES = {
    "overview": ("", "#overview-table tbody tr[id^=row-]", ""),
    "stimulator page": ("device/scs-1", "#device-status", "Therapy"),
    "pump page": ("device/pump-1", "#device-status", "Reservoir"),
}
# In the page: the time (ms after navigation start, the page's own clock) of the first frame
# drawn after the data is there.
SHOWN_AT = """([css, text]) => {
  const look = () => {
    const el = document.querySelector(css);
    if (el && el.textContent.includes(text) && window.__shownAt === undefined) {
      window.__shownAt = null;
      requestAnimationFrame(() => { window.__shownAt = performance.now(); });
    }
  };
  new MutationObserver(look).observe(document, {subtree: true, childList: true, characterData: true});
}"""


@dataclass
class Proc:
    """A child process and the lines it printed."""

    popen: subprocess.Popen
    lines: list[str]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def start(args: list[str], ready: re.Pattern[str], timeout_s: float) -> tuple[Proc, re.Match[str]]:
    """Start ``python -m args...``; read its output until ``ready`` matches a line (then keep draining)."""
    popen = subprocess.Popen(
        [sys.executable, "-m", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    proc = Proc(popen, [])
    deadline = time.monotonic() + timeout_s
    assert popen.stdout is not None
    while time.monotonic() < deadline:
        line = popen.stdout.readline()
        if not line:
            break
        proc.lines.append(line.rstrip())
        match = ready.search(line)
        if match:
            threading.Thread(target=lambda: proc.lines.extend(popen.stdout), daemon=True).start()
            return proc, match
    proc.stop()
    raise SystemExit(f"dashboard_pages: {args[0]} did not start: {proc.lines[-5:]}")


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def statuses(db: Path) -> list[float]:
    """``received_at_s`` of every device's latest status in the store."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return [row[0] for row in conn.execute("SELECT received_at_s FROM latest")]
    except sqlite3.Error:
        return []


def measure_page(browser, url: str, cookies: list, path: str, css: str, text: str) -> tuple[float, float, int]:
    """Cold load of ``url + path``: seconds until ``css`` shows ``text`` as the test driver sees it
    (from the call that starts the navigation), the same by the page's own clock (from navigation
    start to the first frame drawn with it), and bytes on the wire."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.add_cookies(cookies)
    page = context.new_page()
    page.add_init_script(f"({SHOWN_AT})({[css, text]!r})")
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    transferred = [0]
    cdp.on("Network.loadingFinished", lambda e: transferred.__setitem__(0, transferred[0] + e["encodedDataLength"]))
    started = time.perf_counter()
    page.goto(url + path)
    page.wait_for_selector(f"{css} >> text={text}" if text else css, timeout=30_000)
    elapsed = time.perf_counter() - started
    page.wait_for_function("() => typeof window.__shownAt === 'number'", timeout=30_000)
    shown_ms = page.evaluate("window.__shownAt")
    page.wait_for_load_state("networkidle")  # the bytes of everything the page asked for
    context.close()
    return elapsed, shown_ms / 1000, transferred[0]


def run_size(n: int, args: argparse.Namespace, browser, work: Path) -> list[str]:
    """Every figure for a fleet of ``n``: the resource line and one line per page."""
    state, db = work / f"state-{n}", work / f"history-{n}.db"
    mock, found = start(
        ["device_mock.cli", "--fleet", str(n), "--state", str(state), "--seed", "1"],
        re.compile(r"manifest (\S+)\. Ctrl-C"),
        timeout_s=300,
    )
    dash = None
    try:
        dash, served = start(
            ["dashboard.cli", "--fleet", found.group(1), "--db", f"sqlite:///{db}",
             "--users", str(work / f"users-{n}.json"), "--http-port", "0", "--poll", str(args.poll)],
            re.compile(r"(http://127\.0\.0\.1:\d+/)"),
            timeout_s=120,
        )  # fmt: skip
        logins = dict(re.findall(r"login (\S+) / (\S+)", "\n".join(dash.lines)))
        url, pid = served.group(1), dash.popen.pid
        began = time.monotonic()
        while len(statuses(db)) < n:
            if time.monotonic() - began > args.ready_s:
                raise SystemExit(
                    f"dashboard_pages: only {len(statuses(db))} of {n} devices online after {args.ready_s} s"
                )
            time.sleep(0.5)
        online_s = time.monotonic() - began
        # Past the first event-log backfill, and the one-off best compression of the bundles.
        time.sleep(max(args.warm_s, min(args.settle_s, 2 + n / 50)))
        ticks, mock_ticks, t0 = cpu_ticks(pid), cpu_ticks(mock.popen.pid), time.monotonic()
        time.sleep(args.sample_s)
        cpu = (cpu_ticks(pid) - ticks) / CLK_TCK / (time.monotonic() - t0) * 100
        mock_cpu = (cpu_ticks(mock.popen.pid) - mock_ticks) / CLK_TCK / (time.monotonic() - t0) * 100
        now = time.time()
        ages = sorted(now - t for t in statuses(db))
        p95 = ages[min(len(ages) - 1, int(len(ages) * 0.95))]
        lines = [
            f"{n:>5} devices: dashboard threads {proc_status(pid, 'Threads')}, CPU {cpu:.0f} % of a core, "
            f"RSS {proc_status(pid, 'VmRSS') / 1024:.0f} MiB; all online after {online_s:.1f} s; status age "
            f"p50 {statistics.median(ages):.2f} s, p95 {p95:.2f} s at --poll {args.poll:g}; "
            f"emulator CPU {mock_cpu:.0f} %"
        ]
        cookies = login(browser, url, logins["viewer"])
        for name, (path, css, text) in PAGES.items():
            if path.startswith("device/pump") and n < 2:
                lines.append(f"{n:>5} devices: {name:<15} (a fleet of 1 is one stimulator)")
                continue
            elapsed, shown_s, size = measure_page(browser, url, cookies, path, css, text)
            verdict = "met" if elapsed <= TARGET_S and size <= TARGET_BYTES else "MISSED"
            lines.append(
                f"{n:>5} devices: {name:<15} cold load to data {elapsed * 1000:6.0f} ms (page clock "
                f"{shown_s * 1000:5.0f} ms), {size:>10,} B (targets <= {TARGET_S * 1000:.0f} ms, "
                f"<= {TARGET_BYTES:,} B: {verdict}, judged on the first figure)"
            )
        return lines
    finally:
        if dash is not None:
            dash.stop()
        mock.stop()


def login(browser, url: str, password: str) -> list:
    """Log in as the viewer in a throwaway context; return its cookies (the session)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.fill("input[name=username]", "viewer")
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_selector(PAGES["overview"][1], timeout=30_000)
    cookies = context.cookies()
    context.close()
    return cookies


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,100,1000", help="fleet sizes, comma-separated (default 1,100,1000)")
    p.add_argument("--poll", type=float, default=1.0, help="the dashboard's --poll, s (default 1)")
    p.add_argument("--sample-s", type=float, default=10.0, help="CPU sampling window, s (default 10)")
    p.add_argument("--settle-s", type=float, default=20.0, help="longest wait after all are online, s (default 20)")
    p.add_argument(
        "--warm-s", type=float, default=15.0, help="shortest wait after all are online: bundles compressed (15 s)"
    )
    p.add_argument("--ready-s", type=float, default=240.0, help="longest wait for every device online, s")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if not Path(CHROMIUM).exists():
        print(f"dashboard_pages: {CHROMIUM} not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    print(f"dashboard pages: {', '.join(map(str, sizes))} devices; {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="dashboard-pages-") as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for n in sizes:
                for line in run_size(n, args, browser, Path(tmp)):
                    print(line, flush=True)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
