"""A device's event log and alarm history: pages read from the store, newest first, with filters.

Each list is a fixed-height page (``PAGE_SIZE`` rows) of the store's ``event_page``: filter by
event, priority and device-time dates, step to older or newer pages, or back to the newest. Pages
are keyed by sequence number, so events arriving while someone reads an older page never move it;
the newest page follows the device as it logs. A device page keeps its height however long the
device runs. Words come from ``dashboard.words``. Must not import the link or ``device_mock``.
"""

from __future__ import annotations

import datetime as dt

from dash import Dash, Input, Output, State, dcc, html

from protocols.messages import EventCode, Priority

from .. import ids
from ..deps import Deps
from ..store import EventPage, EventQuery
from ..words import enum_word, event_args, event_title
from .common import when
from .ticks import DEFAULT_TICK_S, paced, ticker

PAGE_SIZE = 20
MAX_STEPS = 10  # pager clicks acted on in one call; more were a held-down key, not pages wanted
# Who made each change (EventRecord.actor, SPEC 3.8), as the event log says it.
ACTOR_WORDS = {"DEVICE": "Device", "CLINICIAN": "Clinician", "PATIENT": "Patient"}
LISTS = {"events": "Event log", "alarms": "Alarm history"}
TICKS = {"events": ids.TICK_EVENTS, "alarms": ids.TICK_ALARMS}


def _id(which: str, part: str) -> str:
    return f"{which}-{part}"


def layout(which: str, tick_s: float = DEFAULT_TICK_S, export_href: str | None = None) -> html.Div:
    """The panel of one list (``events`` or ``alarms``): filters, pager, page, and its tick."""
    codes = [{"label": event_title(code), "value": int(code)} for code in sorted(EventCode, key=event_title)]
    priorities = [{"label": enum_word(p), "value": int(p)} for p in (Priority.HIGH, Priority.MEDIUM, Priority.LOW)]
    filters = html.Div(
        [
            dcc.Dropdown(codes, [], multi=True, placeholder="Every event", id=_id(which, "codes")),
            dcc.Dropdown(priorities, [], multi=True, placeholder="Every priority", id=_id(which, "priorities")),
            dcc.DatePickerRange(
                id=_id(which, "dates"),
                start_date_placeholder_text="From",
                end_date_placeholder_text="To",
                clearable=True,
            ),
        ],
        className="filters",
    )
    pager = html.Div(
        [
            html.Button("Newest", id=_id(which, "newest")),
            html.Button("Newer", id=_id(which, "newer")),
            html.Button("Older", id=_id(which, "older")),
            html.Span(id=_id(which, "info"), className="page-info"),
        ],
        className="pager",
    )
    head = [html.H2(LISTS[which])]
    if export_href:
        head.append(html.A("Export CSV", href=export_href, className="export"))
    return html.Div(
        [
            *head,
            filters,
            pager,
            dcc.Store(id=_id(which, "cursor"), data={"before": 0, "after": 0, "first": 0, "last": 0}),
            ticker(TICKS[which], tick_s),
            html.Div(id=_id(which, "rows"), className="page-rows"),
        ],
        className="panel",
        id=_id(which, "panel"),
    )


def day_bounds(start: str | None, end: str | None) -> tuple[int, int]:
    """Device-time ms bounds of a date range picked as ``YYYY-MM-DD`` (UTC days; 0: open)."""

    def ms(text: str | None, add_days: int) -> int:
        if not text:
            return 0
        day = dt.datetime.fromisoformat(text[:10]).replace(tzinfo=dt.UTC) + dt.timedelta(days=add_days)
        return int(day.timestamp() * 1000) - (1 if add_days else 0)

    return ms(start, 0), ms(end, 1)


def table(rows: list[dict]) -> html.Table:
    """A page of events: when, what, its details in words, who, and the alarm state if it is one."""
    head = html.Tr([html.Th(h) for h in ("#", "Device time (UTC)", "Event", "Details", "By", "Alarm")])
    body = []
    for row in rows:
        priority, state = enum_word(str(row["priority"])), enum_word(str(row["state"]))
        alarm = f"{priority} priority, {state.lower()}" if priority and state else priority or state
        by = ACTOR_WORDS.get(str(row.get("actor", "DEVICE")), enum_word(str(row.get("actor"))))
        cells = [
            row["seq"],
            when(row["time_ms"]),
            event_title(row["code"]),
            event_args(row["code"], row["arg0"], row["arg1"]),
            by,
            alarm,
        ]
        body.append(html.Tr([html.Td(str(c)) for c in cells]))
    if not body:
        body = [html.Tr(html.Td("No entry matches.", colSpan=6))]
    return html.Table([head, *body], className="log")


def page_info(page: EventPage) -> str:
    """How much of what matches the page shows: "20 of 312 matching, newest first"."""
    if not page.rows:
        return "No entry" if not page.total else f"No entry here; {page.total:,} match in all"
    return f"{len(page.rows)} of {page.total:,} matching, newest first"


def register(app: Dash, deps: Deps) -> None:
    """Wire both lists: each reads its page on every tick, filter change and pager click."""
    for which in LISTS:
        _register(app, deps, which)


def _register(app: Dash, deps: Deps, which: str) -> None:
    @app.callback(
        Output(_id(which, "rows"), "children"),
        Output(_id(which, "info"), "children"),
        Output(_id(which, "cursor"), "data"),
        Output(_id(which, "older"), "disabled"),
        Output(_id(which, "newer"), "disabled"),
        Input(TICKS[which], "n_intervals"),
        Input(_id(which, "codes"), "value"),
        Input(_id(which, "priorities"), "value"),
        Input(_id(which, "dates"), "start_date"),
        Input(_id(which, "dates"), "end_date"),
        Input(_id(which, "newest"), "n_clicks"),
        Input(_id(which, "older"), "n_clicks"),
        Input(_id(which, "newer"), "n_clicks"),
        State(ids.DEVICE_NAME, "data"),
        State(_id(which, "cursor"), "data"),
        running=paced(TICKS[which]),
    )
    def show(_tick, codes, priorities, start, end, newest, older, newer, name, cursor):
        deps.link(name)  # UnknownDevice (404) for a name no link serves
        cursor = dict(cursor or {})
        start_ms, end_ms = day_bounds(start, end)

        def read(before: int, after: int) -> EventPage:
            return deps.store.event_page(
                EventQuery(
                    name,
                    codes=tuple(int(c) for c in codes or () if isinstance(c, int)),
                    priorities=tuple(int(p) for p in priorities or () if isinstance(p, int)),
                    start_ms=start_ms,
                    end_ms=end_ms,
                    before_seq=before,
                    after_seq=after,
                    alarms_only=which == "alarms",
                    limit=PAGE_SIZE,
                )
            )

        # Clicks and filters are read from their values against the ones this list last acted on,
        # not from the trigger: Dash drops a call still running when the same callback is asked
        # again, so a click that lands while a tick's call is out would otherwise be lost to the
        # next tick's call, which reads the tick as its trigger and this store as it was.
        clicks = {"newest": newest or 0, "older": older or 0, "newer": newer or 0}
        seen = cursor.get("seen") or {}
        filters = [codes or [], priorities or [], start, end]
        if clicks["newest"] > seen.get("newest", 0) or filters != cursor.get("filters"):
            cursor.update(before=0, after=0)  # a filter or "Newest": back to the newest page
        steps = (clicks["older"] - seen.get("older", 0)) - (clicks["newer"] - seen.get("newer", 0))
        for step in range(min(abs(steps), MAX_STEPS)):
            if step:  # a further click before the last one's page came back: step on from that page
                moved = read(int(cursor.get("before") or 0), int(cursor.get("after") or 0))
                if not moved.rows or not (moved.has_older if steps > 0 else moved.has_newer):
                    break  # the end of the list: the button would have been disabled there
                cursor.update(first=moved.rows[0]["seq"], last=moved.rows[-1]["seq"])
            if steps > 0 and cursor.get("last"):
                cursor.update(before=cursor["last"], after=0)
            elif steps < 0 and cursor.get("first"):
                cursor.update(before=0, after=cursor["first"])
        cursor.update(seen=clicks, filters=filters)
        page = read(int(cursor.get("before") or 0), int(cursor.get("after") or 0))
        if not page.has_newer:  # reached the newest page: follow the device from here
            cursor.update(before=0, after=0)
        elif page.rows:  # keep this page where it is while new entries arrive
            cursor.update(before=page.rows[0]["seq"] + 1, after=0)
        cursor.update(first=page.rows[0]["seq"] if page.rows else 0, last=page.rows[-1]["seq"] if page.rows else 0)
        return table(page.rows), page_info(page), cursor, not page.has_older, not page.has_newer
