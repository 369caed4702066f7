"""The ticks that keep live parts of a page current, each paced by the callback it drives.

Dash keeps one call of a callback at a time: a call still out when its input changes again is
dropped, and only the newest one's answer is used. Driven by a fixed interval, a callback whose
round trip takes longer than the interval (a busy server, a slow link) never shows anything
(plotly/dash#1769). So each live callback has its own ``dcc.Interval``, which the callback turns
off while it runs (Dash's ``running``): its next call comes one interval after its last answer,
however slow the server is, and the calls of one callback never pile up on the server.

Dash turns the tick back on when an answer comes, whatever its status, but not when none comes
(the server restarting, a dropped connection). A watchdog in the browser, on a tick of its own,
turns a tick back on that has stayed off for the same call longer than ``STUCK_S``.
Must not import the link, the store or ``device_mock``.
"""

from __future__ import annotations

from dash import ClientsideFunction, Dash, Input, Output, State, dcc

from .. import ids

DEFAULT_TICK_S = 1.0
WATCHDOG = "tick-watchdog"
WATCHDOG_LIMIT = "tick-watchdog-limit"
WATCHDOG_S = 2.0  # how often the watchdog looks [E]
STUCK_S = 10.0  # a call with no answer after this long is taken as lost [E]: no user waits this long


def ticker(tick_id: str, tick_s: float = DEFAULT_TICK_S) -> dcc.Interval:
    """The interval of one live callback: put it in the layout next to what the callback draws."""
    return dcc.Interval(id=tick_id, interval=int(tick_s * 1000))


def paced(tick_id: str) -> list[tuple[Output, bool, bool]]:
    """The ``running`` argument of the callback ``tick_id`` drives: its tick is off while it runs."""
    return [(Output(tick_id, "disabled"), True, False)]


def watchdog() -> list:
    """The watchdog's own interval (never turned off) and its limit, for the page shell."""
    limit = dcc.Store(id=WATCHDOG_LIMIT, data=STUCK_S * 1000)
    return [dcc.Interval(id=WATCHDOG, interval=int(WATCHDOG_S * 1000)), limit]


def register(app: Dash) -> None:
    """One browser-side watchdog callback per live tick (``assets/ticks.js``).

    A page holds some of the ticks; the watchdog's callback of an absent one never runs.
    """
    for tick_id in ids.LIVE_TICKS:
        app.clientside_callback(
            ClientsideFunction("ticks", "watch"),
            Output(tick_id, "disabled"),
            Input(WATCHDOG, "n_intervals"),
            State(tick_id, "disabled"),
            State(tick_id, "n_intervals"),
            State(tick_id, "id"),
            State(WATCHDOG_LIMIT, "data"),
            prevent_initial_call=True,
        )
