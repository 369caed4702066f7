"""Small rendering helpers shared by the pages (pure: values in, components out)."""

from __future__ import annotations

from dash import html
from dash.development.base_component import Component

from protocols.messages import Priority

from ..words import device_time, event_title

MARKERS = {Priority.HIGH: "***", Priority.MEDIUM: "**", Priority.LOW: "*", Priority.NONE: ""}
LOADING_AFTER_MS = 300  # a wait longer than this shows a loading indication (issue 10 item 5)
CSS = {Priority.HIGH: "alarm-high", Priority.MEDIUM: "alarm-medium", Priority.LOW: "alarm-low"}


def when(time_ms: int) -> str:
    """Device time as a UTC date and time to the second; em dash when unknown."""
    return device_time(time_ms) or "—"


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


def alarm_label(code: object, priority: Priority) -> str:
    """An alarm's words (``code``: an EventCode or its name) with its priority marker (IEC 60601-1-8 text markers)."""
    return f"{MARKERS.get(priority, '')} {event_title(code)}".strip()
