"""Pure figure builders: data in, ``plotly.graph_objects.Figure`` out. No store, no link, no Dash.

Live charts are built once per view with the downsampled history; ticks then only extend them
(``extendData``), so nothing here runs per tick.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .series import info

CHART_HEIGHT = 230
GAUGE_HEIGHT = 190
MAX_LIVE_POINTS = 5000  # points a chart keeps while ticks extend it


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}, "x": 0.01},
        height=height,
        margin={"l": 50, "r": 15, "t": 35, "b": 30},
        paper_bgcolor="white",
        plot_bgcolor="white",
        uirevision="keep",  # keep the user's zoom when the data is extended
    )
    return fig


def points(times_ms: Sequence[int] | np.ndarray, values: Sequence[float] | np.ndarray) -> tuple[list[str], list[float]]:
    """Device times as ISO 8601 strings and values as floats, in plain lists.

    Plain lists, not numpy arrays: plotly would send those as base64 typed arrays, which
    Plotly.extendTraces (our live ticks) cannot append to.
    """
    x = np.datetime_as_string(np.asarray(times_ms, dtype="datetime64[ms]"), unit="ms").tolist()
    return x, np.asarray(values, dtype=float).tolist()


def time_chart(series: Sequence[tuple[str, Sequence[int], Sequence[float]]], title: str, unit: str) -> go.Figure:
    """A line chart with one trace per ``(name, times_ms, values)`` against device time."""
    fig = go.Figure()
    for name, times_ms, values in series:
        x, y = points(times_ms, values)
        # SVG, not WebGL: a chart holds at most a few thousand points, and WebGL is missing on many machines.
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=info(name).label))
    # Every series is a level that cannot be negative: the axis starts at 0, so a flat 0 (nothing
    # infused, therapy off) reads as 0 rather than floating in a -1..1 band.
    fig.update_yaxes(title_text=unit, gridcolor="#e8ecf0", rangemode="tozero")
    fig.update_xaxes(gridcolor="#e8ecf0")
    return _layout(fig, f"{title} ({unit})" if unit else title, CHART_HEIGHT)


def gauge(
    title: str, value: float | None, unit: str, maximum: float, threshold: float | None = None, low_is_bad: bool = True
) -> go.Figure:
    """A gauge with a red band below (or above) ``threshold``, which is also marked."""
    steps = []
    if threshold is not None:
        bad = [0, threshold] if low_is_bad else [threshold, maximum]
        steps.append({"range": bad, "color": "#f6c9c9"})
    indicator = go.Indicator(
        mode="gauge+number",
        value=value if value is not None else 0,
        number={"suffix": f" {unit}", "valueformat": ".1f"},
        gauge={
            "axis": {"range": [0, maximum]},
            "bar": {"color": "#17324d"},
            "steps": steps,
            "threshold": {"line": {"color": "#d0021b", "width": 3}, "value": threshold} if threshold else None,
        },
    )
    fig = _layout(go.Figure(indicator), title if value is not None else f"{title} (no data)", GAUGE_HEIGHT)
    fig.update_layout(margin={"l": 30, "r": 35, "t": 35, "b": 10})  # room for the axis end labels
    return fig
