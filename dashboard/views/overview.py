"""The fleet overview: counts per state on top, then a sortable, filterable, searchable, paged table.

Paging, sorting and filtering run on the server (``fleet_table``): each tick sends the counts and
one page of rows, however many devices there are. The worst alarms come first until the user
sorts by another column (a click on a heading; a second click reverses it). Filters: kind, worst
alarm class and link state; the search matches a name or a serial, in part, any case.
"""

from __future__ import annotations

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from .. import ids, paths
from ..deps import Deps
from ..words import LINK_WORDS
from . import fleet_table as ft
from .ticks import DEFAULT_TICK_S, paced, ticker

ALARM_CSS = {4: "alarm-high", 3: "alarm-medium", 2: "alarm-low", 1: "alarm-technical"}
DEFAULT_SORT = {"column": "alarm", "descending": True}


def _choice(id_: str, label: str, options: list[tuple[str, str]]) -> html.Label:
    return html.Label(
        [
            html.Span(label, className="k"),
            dcc.Dropdown(
                id=id_,
                options=[{"label": "All", "value": "all"}] + [{"label": t, "value": v} for v, t in options],
                value="all",
                clearable=False,
                searchable=False,
                className="fleet-choice",
            ),
        ],
        className="fleet-filter",
    )


def layout(deps: Deps | None = None) -> html.Div:
    """The page: counts, filters, table and pager, filled at once from ``deps`` (then by the tick)."""
    counts, table, pager = draw(deps, "", "all", "all", "all", DEFAULT_SORT, 0) if deps is not None else ([], [], "")
    return html.Div(
        [
            html.H1("Devices", style={"fontSize": "1.3rem"}),
            html.Div(counts, id=ids.OVERVIEW_COUNTS, className="fleet-counts"),
            html.Div(
                [
                    html.Label(
                        [
                            html.Span("Search", className="k"),
                            dcc.Input(
                                id=ids.OVERVIEW_SEARCH,
                                type="search",
                                placeholder="name or serial",
                                debounce=False,
                                value="",
                            ),
                        ],
                        className="fleet-filter",
                    ),
                    _choice(ids.OVERVIEW_KIND, "Kind", [(k, k) for k in ft.KIND_WORDS.values()]),
                    _choice(
                        ids.OVERVIEW_ALARM,
                        "Worst alarm",
                        [(ft.ALARM_WORDS[r], ft.ALARM_WORDS[r]) for r in (4, 3, 2, 1, 0)],
                    ),
                    _choice(ids.OVERVIEW_LINK, "Link", [(s, LINK_WORDS[s]) for s in ft.LINK_ORDER]),
                ],
                className="fleet-filters",
            ),
            dcc.Store(id=ids.OVERVIEW_SORT, data=DEFAULT_SORT),
            dcc.Store(id=ids.OVERVIEW_PAGE, data=0),
            ticker(ids.TICK_FLEET, deps.tick_s if deps is not None else DEFAULT_TICK_S),
            html.Table(table, id=ids.OVERVIEW_TABLE, className="log fleet"),
            html.Div(
                [
                    html.Button("Previous", id=ids.OVERVIEW_PREV, n_clicks=0),
                    html.Span(pager, id=ids.OVERVIEW_PAGE_TEXT, className="fleet-page"),
                    html.Button("Next", id=ids.OVERVIEW_NEXT, n_clicks=0),
                ],
                className="fleet-pager",
            ),
        ]
    )


def counts_bar(all_rows: list[ft.Row], shown: int) -> list:
    """The counts per alarm class and link state (over every device), and how many the filters keep."""
    counts = ft.counts(all_rows)
    items: list = [html.Span(f"{len(all_rows):,} devices", className="fleet-total")]
    for rank in (4, 3, 2, 1, 0):
        word = ft.ALARM_WORDS[rank]
        label = "No alarm" if rank == 0 else f"{word} alarm"
        css = f"fleet-count {ALARM_CSS.get(rank, 'alarm-none')}-count"
        items.append(html.Span(f"{label}: {counts['alarm'][word]:,}", id=f"count-{word.lower()}", className=css))
    for state in ft.LINK_ORDER:
        text = f"{LINK_WORDS[state]}: {counts['link'][state]:,}"
        items.append(html.Span(text, id=f"count-{state}", className=f"fleet-count state-{state.upper()}"))
    if shown != len(all_rows):
        items.append(html.Span(f"{shown:,} match the filters", id="count-shown", className="fleet-count"))
    return items


def heading(key: str, title: str, sort: dict) -> html.Th:
    """A column heading: a button that sorts by it, with an arrow on the sorted one."""
    arrow = ""
    if sort.get("column") == key:
        arrow = " ▼" if sort.get("descending") else " ▲"
    button = html.Button(title + arrow, id={"type": ids.OVERVIEW_SORT_BUTTON, "column": key}, className="fleet-sort")
    return html.Th(button)


def table_row(r: ft.Row) -> html.Tr:
    """One device's row."""
    alarm = html.Span(r.alarm, className=f"fleet-alarm {ALARM_CSS[r.alarm_rank]}") if r.alarm else ""
    more = f" (+{r.alarms - 1})" if r.alarms > 1 else ""
    return html.Tr(
        [
            html.Td(dcc.Link(r.name, href=paths.device_href(r.name))),
            html.Td(r.kind),
            html.Td(r.serial or "—"),
            html.Td(([alarm, more] if more else alarm) if alarm else "—"),
            html.Td(html.Span(LINK_WORDS.get(r.link, r.link), className=f"state-{r.link.upper()}")),
            html.Td("—" if r.battery_pct is None else f"{r.battery_pct:.1f} %"),
            html.Td(r.therapy or "—"),
            html.Td(ft.since(r.age_s)),
        ],
        id=row_id(r.name),
    )


def row_id(name: str) -> str:
    """The element id of a device's row: ``row-`` and the name percent-encoded (an id holds no space)."""
    return f"row-{paths.segment(name)}"


def register(app: Dash, deps: Deps) -> None:
    """Wire the overview: the tick and every control redraw the counts, the page of rows and the pager."""

    @app.callback(
        Output(ids.OVERVIEW_COUNTS, "children"),
        Output(ids.OVERVIEW_TABLE, "children"),
        Output(ids.OVERVIEW_PAGE_TEXT, "children"),
        Input(ids.TICK_FLEET, "n_intervals"),
        Input(ids.OVERVIEW_SEARCH, "value"),
        Input(ids.OVERVIEW_KIND, "value"),
        Input(ids.OVERVIEW_ALARM, "value"),
        Input(ids.OVERVIEW_LINK, "value"),
        Input(ids.OVERVIEW_SORT, "data"),
        Input(ids.OVERVIEW_PAGE, "data"),
        prevent_initial_call=True,  # the layout comes filled: data with the page, one round trip less
        running=paced(ids.TICK_FLEET),
    )
    def refresh(_n, search, kind, alarm, link, sort, page):
        return draw(deps, search, kind, alarm, link, sort, page)

    @app.callback(
        Output(ids.OVERVIEW_SORT, "data"),
        Input({"type": ids.OVERVIEW_SORT_BUTTON, "column": ALL}, "n_clicks"),
        State(ids.OVERVIEW_SORT, "data"),
        prevent_initial_call=True,
    )
    def sort_by(clicks, sort):
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not any(clicks) or trigger.get("column") not in ft.SORT_KEYS:
            raise PreventUpdate
        column = trigger["column"]
        sort = sort if isinstance(sort, dict) else DEFAULT_SORT
        if sort.get("column") == column:
            return {"column": column, "descending": not sort.get("descending")}
        return {"column": column, "descending": column == "alarm"}  # the worst first; names A to Z

    @app.callback(
        Output(ids.OVERVIEW_PAGE, "data"),
        Input(ids.OVERVIEW_PREV, "n_clicks"),
        Input(ids.OVERVIEW_NEXT, "n_clicks"),
        Input(ids.OVERVIEW_SEARCH, "value"),
        Input(ids.OVERVIEW_KIND, "value"),
        Input(ids.OVERVIEW_ALARM, "value"),
        Input(ids.OVERVIEW_LINK, "value"),
        Input(ids.OVERVIEW_SORT, "data"),
        State(ids.OVERVIEW_PAGE, "data"),
        prevent_initial_call=True,
    )
    def turn(_prev, _next, search, kind, alarm, link, _sort, page):
        page = _int(page)
        if ctx.triggered_id == ids.OVERVIEW_NEXT:
            kept = len(_kept(_rows(deps), search, kind, alarm, link))
            return min(page + 1, max(0, -(-kept // ft.PAGE_SIZE) - 1))
        if ctx.triggered_id == ids.OVERVIEW_PREV:
            return max(0, page - 1)
        return 0  # a new filter or sort starts at the first page


def draw(deps: Deps, search: object, kind: object, alarm: object, link: object, sort: object, page: object):
    """The counts, the table (head and one page of rows) and the pager text for these controls."""
    sort = sort if isinstance(sort, dict) and sort.get("column") in ft.SORT_KEYS else DEFAULT_SORT
    rows = _rows(deps)
    kept = _kept(rows, search, kind, alarm, link)
    shown, at, pages = ft.page_of(ft.ordered(kept, sort["column"], bool(sort.get("descending"))), _int(page))
    head = html.Thead(html.Tr([heading(key, title, sort) for key, title in ft.COLUMNS]))
    body = html.Tbody([table_row(r) for r in shown] or [html.Tr(html.Td("No device matches.", colSpan=8))])
    first = at * ft.PAGE_SIZE + 1 if kept else 0
    text = f"Page {at + 1} of {pages} (devices {first:,}-{at * ft.PAGE_SIZE + len(shown):,} of {len(kept):,})"
    return counts_bar(rows, len(kept)), [head, body], text


def _rows(deps: Deps) -> list[ft.Row]:
    return [ft.row(link.snapshot()) for link in deps.links.values()]


def _kept(rows: list[ft.Row], search: object, kind: object, alarm: object, link: object) -> list[ft.Row]:
    """The rows the filters let through (values from the browser: anything, so made text)."""
    texts = [str(v) if isinstance(v, str) else "" for v in (search, kind, alarm, link)]
    return [r for r in rows if ft.matches(r, *texts)]


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
