"""Small rendering helpers shared by the pages (pure: values in, components out)."""

from __future__ import annotations

import datetime as dt

from dash import html
from dash.development.base_component import Component

from protocols.messages import Priority

MARKERS = {Priority.HIGH: "***", Priority.MEDIUM: "**", Priority.LOW: "*", Priority.NONE: ""}
CSS = {Priority.HIGH: "alarm-high", Priority.MEDIUM: "alarm-medium", Priority.LOW: "alarm-low"}


def when(time_ms: int) -> str:
    """Device time as ISO 8601 UTC to the second; em dash when unknown."""
    if not time_ms:
        return "—"
    return dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def day(time_ms: int) -> str:
    """Device date; em dash when unknown."""
    return when(time_ms)[:10] if time_ms else "—"


def kv(pairs: list[tuple[str, object]]) -> html.Div:
    """A two-column list of labels and values."""
    cells = []
    for label, value in pairs:
        shown = value if isinstance(value, Component) else str(value)
        cells += [html.Span(label, className="k"), html.Span(shown, className="v")]
    return html.Div(cells, className="kv")


def alarm_label(code_name: str, priority: Priority) -> str:
    """An alarm's text with its priority marker (IEC 60601-1-8 text markers)."""
    return f"{MARKERS.get(priority, '')} {code_name.replace('_', ' ').title()}".strip()
