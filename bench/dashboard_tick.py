"""Dashboard tick cost: server time and payload of one live-chart tick, by history length.

For 1 hour, 1 day and 30 days of 1 Hz history of one series in a real SQLite store, measures in the
same run:
- ours: the tick the dashboard runs (``views.device.extend_charts``: the points after the chart's
  cursor, sent as ``extendData``), serialised as Dash would send it;
- the common pattern: each tick reads the whole series and rebuilds the figure
  (``plotly`` ``Figure`` from every point, ``to_json``), as many dashboards do.
Prints median times, payload bytes and the ratio. Run: ``python bench/dashboard_tick.py``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.utils import PlotlyJSONEncoder

from dashboard.store import open_store
from dashboard.views.device import extend_charts
from protocols.messages import BatteryKind, BatteryState, ScsStatus

HISTORIES = {"1 hour": 3_600, "1 day": 86_400, "30 days": 30 * 86_400}
DEVICE = "scs-1"
T0 = 1_767_225_600_000


def status_at(t_ms: int, pct_x100: int) -> ScsStatus:
    battery = (BatteryKind.RECHARGEABLE, BatteryState.OK, pct_x100, 3900, False, 0, 10000)
    return ScsStatus(t_ms, False, 0, (), 0, *battery, 0, 0, 0, 0, 0, (), (), 0, 0, False)


def fill(store, seconds: int) -> int:
    """``seconds`` of 1 Hz battery history, backfilled in batches; returns the last time."""
    times = T0 + np.arange(seconds, dtype=np.int64) * 1000
    values = 100.0 - (np.arange(seconds) % 5000) / 100.0
    store.add_series(DEVICE, "battery_pct", times.tolist(), values.tolist())
    store.flush()
    return int(times[-1])


def ours(store, last_ms: int, ticks: int) -> tuple[float, int]:
    times, sizes = [], []
    cursor = {"battery_pct": {"battery_pct": last_ms}}
    for i in range(ticks):
        store.add_status(DEVICE, status_at(last_ms + (i + 1) * 1000, 5000), 0.0)
        store.flush()
        start = time.perf_counter()
        out, cursor = extend_charts(store, DEVICE, cursor, ["battery_pct"])
        body = json.dumps({"response": out}, cls=PlotlyJSONEncoder)
        times.append(time.perf_counter() - start)
        sizes.append(len(body))
    return statistics.median(times), int(statistics.median(sizes))


def rebuild(store, last_ms: int, ticks: int) -> tuple[float, int]:
    times, sizes = [], []
    for _ in range(max(1, ticks)):
        start = time.perf_counter()
        t, v = store.series(DEVICE, "battery_pct", 0, last_ms + 10**9, max_points=10**9)
        fig = go.Figure(go.Scatter(x=np.asarray(t, dtype="datetime64[ms]"), y=v, mode="lines"))
        body = fig.to_json()
        times.append(time.perf_counter() - start)
        sizes.append(len(body))
    return statistics.median(times), int(statistics.median(sizes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=20, help="ticks measured per history length (default 20)")
    parser.add_argument("--rebuilds", type=int, default=3, help="rebuilds measured per history length (default 3)")
    parser.add_argument("--max-days", type=float, default=30, help="longest history, days (default 30)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, seconds in HISTORIES.items():
            if seconds > args.max_days * 86_400:
                continue
            with open_store(f"sqlite:///{Path(tmp) / f'{seconds}.db'}") as store:
                started = time.perf_counter()
                last = fill(store, seconds)
                fill_s = time.perf_counter() - started
                tick_s, tick_bytes = ours(store, last, args.ticks)
                full_s, full_bytes = rebuild(store, last, args.rebuilds)
            rows.append((label, seconds, tick_s, tick_bytes, full_s, full_bytes))
            print(
                f"{label:>8} ({seconds:,} points, filled in {fill_s:.1f} s): "
                f"ours {tick_s * 1e3:.2f} ms / {tick_bytes:,} B per tick; "
                f"rebuild {full_s * 1e3:.1f} ms / {full_bytes:,} B; rebuild / ours = {full_s / tick_s:.0f}x time",
                flush=True,
            )
    if len(rows) > 1:
        flat = max(r[2] for r in rows) / min(r[2] for r in rows)
        print(f"ours: slowest / fastest tick across history lengths = {flat:.2f} (flat means ~1)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
