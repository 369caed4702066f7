"""A device's page: gauges, status and projections, link quality, live charts, alarms and events."""

from __future__ import annotations

import threading

import plotly.graph_objects as go
from dash import ALL, Dash, Input, Output, Patch, State, dcc, html, no_update

from protocols.messages import DeviceKind, EventCode, PumpStatus, ScsStatus

from .. import figures, ids, paths
from ..deps import Deps
from ..series import info
from .common import CSS, alarm_label, day, kv, when

RANGES = {"5 min": 300_000, "1 hour": 3_600_000, "1 day": 86_400_000, "30 days": 30 * 86_400_000, "All": 0}
DEFAULT_RANGE = "All"  # device time may run thousands of times faster than the wall: show it all, downsampled
CHARTS = {
    DeviceKind.SCS: ("battery_pct", "amplitude_ma", "tissue_power_uw", "impedance_"),
    DeviceKind.PUMP: ("battery_pct", "reservoir_ml", "dose_", "rate_ml_day"),
}
GAUGE_IDS = ("gauge-battery", "gauge-second")


def _group_names(store, device: str, group: str) -> list[str]:
    """Series of a chart: one name, or every stored name of a family (``dose_``, ``impedance_``)."""
    if not group.endswith("_"):
        return [group]
    return sorted(n for n in store.series_names(device) if n.startswith(group))


def chart_figure(store, device: str, group: str, window_ms: int) -> tuple[go.Figure, dict[str, int]]:
    """A chart built from stored history (downsampled) and the last time drawn per series."""
    names = _group_names(store, device, group)
    first, last = store.time_range(device) or (0, 0)
    start = max(first, last - window_ms) if window_ms else first
    cursor, series = {}, []
    for name in names:
        times, values = store.series(device, name, start, last, max_points=2000)
        series.append((name, times, values))
        cursor[name] = int(times[-1]) if len(times) else start
    title = info(names[0]).label if len(names) == 1 else ("Daily dose" if group == "dose_" else "Impedance per contact")
    unit = info(names[0]).unit if names else ""
    fig = figures.time_chart(series, title, unit)
    return fig, cursor


def layout(deps: Deps, name: str) -> html.Div:
    """The page of device ``name``."""
    link = deps.link(name)
    snap = link.snapshot()
    kind = snap.identity.kind if snap.identity else DeviceKind.SCS
    groups = CHARTS[kind]
    charts, cursor = [], {}
    for group in groups:
        fig, cur = chart_figure(deps.store, name, group, RANGES[DEFAULT_RANGE])
        cursor[group] = cur
        charts.append(dcc.Graph(id={"type": ids.CHART, "series": group}, figure=fig, config={"displaylogo": False}))
    second = ("Reservoir", "mL") if kind == DeviceKind.PUMP else ("Amplitude", "mA")
    return html.Div(
        [
            dcc.Store(id=ids.DEVICE_NAME, data=name),
            dcc.Store(id=ids.CHART_CURSOR, data=cursor),
            dcc.Store(id=ids.ALARMS_SHOWN, data=None),
            html.H1(f"{name}", style={"fontSize": "1.3rem"}),
            html.Div(
                [
                    dcc.Graph(id=GAUGE_IDS[0], figure=figures.gauge("Battery", None, "%", 100, 25)),
                    dcc.Graph(id=GAUGE_IDS[1], figure=figures.gauge(second[0], None, second[1], 1)),
                    html.Div([html.H2("Status"), html.Div(id=ids.STATUS_TEXT)], className="panel"),
                    html.Div([html.H2("Projections"), html.Div(id=ids.PROJECTIONS)], className="panel"),
                    html.Div([html.H2("Link"), html.Div(id=ids.LINK_PANEL)], className="panel"),
                ],
                className="row",
                id=ids.GAUGES,
            ),
            html.Div([html.H2("Alarms"), html.Div(id=ids.ALARMS), html.Div(id="ack-result")], className="panel"),
            html.Div(
                [
                    html.H2("History"),
                    dcc.RadioItems(list(RANGES), DEFAULT_RANGE, id=ids.RANGE, inline=True),
                    html.Div(charts, id=ids.CHARTS),
                    html.A("Export series as CSV", href=paths.export_href(name, "series.csv"), id=ids.EXPORT),
                ],
                className="panel",
            ),
            html.Div(id=ids.PROGRAM_FORM),
            html.Div(
                [
                    html.H2("Event log"),
                    dcc.Input(id=ids.EVENT_FILTER, placeholder="filter: code or priority", debounce=True),
                    html.A(" Export CSV", href=paths.export_href(name, "events.csv")),
                    html.Div(id=ids.EVENTS),
                ],
                className="panel",
            ),
            html.Div([html.H2("Alarm history"), html.Div(id=ids.ALARM_HISTORY)], className="panel"),
        ]
    )


def status_panel(status: ScsStatus | PumpStatus | None) -> html.Div:
    """Key status fields."""
    if status is None:
        return html.Div("No status yet.")
    pairs: list[tuple[str, object]] = [
        ("Device time", when(status.time_ms)),
        ("Battery", f"{status.battery_pct_x100 / 100:.2f} % · {status.battery_mv} mV · {status.battery_state.name}"),
    ]
    if isinstance(status, PumpStatus):
        pairs += [
            ("Mode", f"{status.mode.name} · {'infusing' if status.infusing else 'not infusing'}"),
            ("Rate", f"{status.rate_ul_per_day / 1000:.3f} mL/day"),
            ("Reservoir", f"{status.reservoir_ul / 1000:.2f} mL (alarm at {status.alarm_volume_ul / 1000:.1f} mL)"),
            ("Drugs", ", ".join(f"{d.drug.name.lower()} {d.dose_ng_per_day / 1e6:.3g} mg/day" for d in status.drugs)),
            ("Motor", status.motor_state.name),
        ]
    else:
        area = status.areas[0] if status.areas else None
        pairs += [
            ("Therapy", "on" if status.therapy_on else "off"),
            ("Program", f"{status.active_program} · {len(status.areas)} area(s)"),
            (
                "Area 1",
                f"{area.amplitude_ua / 1000:.2f} mA · {area.pulse_width_us} µs · {area.rate_hz} Hz" if area else "—",
            ),
            ("Tissue power", f"{status.tissue_power_uw} µW"),
            ("Charging", f"yes ({status.coupling_pct} % coupling)" if status.charging else "no"),
        ]
    return kv(pairs)


def projections_panel(status: ScsStatus | PumpStatus | None) -> html.Div:
    """Projected dates (device time)."""
    if status is None:
        return html.Div("—")
    if isinstance(status, PumpStatus):
        band = f"{day(status.empty_earliest_ms)} – {day(status.empty_latest_ms)}"
        return kv(
            [
                ("Next refill", day(status.next_refill_ms)),
                ("Low-reservoir alarm", day(status.low_alarm_ms)),
                ("Empty", f"{day(status.empty_ms)} (band {band})"),
                ("Battery ERI", day(status.eri_ms)),
                ("End of service", day(status.eos_ms)),
            ]
        )
    return kv(
        [
            (
                "Recharge due in",
                f"{status.days_to_recharge_x100 / 100:.1f} days" if status.days_to_recharge_x100 else "—",
            ),
            ("Battery ERI", day(status.eri_ms)),
            ("End of service", day(status.eos_ms)),
            ("Capacity", f"{status.capacity_pct_x100 / 100:.1f} % of new"),
        ]
    )


def link_panel(snap) -> html.Div:
    """Link quality."""
    c = snap.counters
    return kv(
        [
            ("State", html.Span(snap.state.name, className=f"state-{snap.state.name}")),
            ("Last data", f"{snap.age_s:.1f} s ago" if snap.age_s is not None else "—"),
            ("Round trip", f"{snap.rtt_ms:.1f} ms" if snap.rtt_ms is not None else "—"),
            ("CRC / MAC errors", f"{c.get('crc_errors', 0)} / {c.get('mac_errors', 0)}"),
            ("Retries / timeouts", f"{c.get('retries', 0)} / {c.get('timeouts', 0)}"),
            ("Reconnects", snap.reconnects),
        ]
    )


def alarm_signature(snap) -> list:
    """What the alarm list shows, as JSON: the list is redrawn only when this changes, because a
    redraw replaces the acknowledge buttons and a click landing on a replaced button is lost."""
    status = snap.status
    alarms = [[int(a.code), int(a.priority), int(a.state)] for a in (status.alarms if status is not None else ())]
    return [snap.technical_alarm or "", alarms]


def alarm_list(snap) -> list:
    """Active alarms, highest priority first, each with an acknowledge button; technical alarm on top."""
    items = []
    if snap.technical_alarm:
        items.append(html.Div(f"Technical alarm: {snap.technical_alarm}", className="alarm alarm-technical"))
    status = snap.status
    for alarm in status.alarms if status is not None else ():
        acked = alarm.state.name == "ACKNOWLEDGED"
        css = f"alarm {CSS[alarm.priority]}" + (" alarm-acknowledged" if acked else "")
        button = html.Button(
            "Acknowledged" if acked else "Acknowledge",
            id={"type": ids.ACK, "code": int(alarm.code)},
            disabled=acked,
        )
        items.append(html.Div([html.Span(alarm_label(alarm.code.name, alarm.priority)), button], className=css))
    return items or [html.Div("No active alarm.")]


# Who made each change (EventRecord.actor, SPEC 3.8), as the event log says it.
ACTOR_WORDS = {"DEVICE": "Device", "CLINICIAN": "Clinician", "PATIENT": "Patient"}


def event_rows(rows: list[dict], text: str) -> html.Table:
    """The event log as a table, filtered by a code or priority substring."""
    text = (text or "").strip().upper()
    head = html.Tr([html.Th(h) for h in ("#", "Device time", "Event", "By", "Priority", "State", "Args")])
    body = []
    for row in rows:
        code = EventCode(row["code"]).name if isinstance(row["code"], int) else str(row["code"])
        priority, state = str(row["priority"]), str(row["state"])
        if text and text not in code and text not in priority:
            continue
        by = ACTOR_WORDS.get(str(row.get("actor", "DEVICE")), str(row.get("actor")))
        cells = [row["seq"], when(row["time_ms"]), code, by, priority, state, f"{row['arg0']}, {row['arg1']}"]
        body.append(html.Tr([html.Td(str(c)) for c in cells]))
    return html.Table([head, *body], className="log")


def register(app: Dash, deps: Deps) -> None:
    """Wire the device page's tick, range switch and event filter.

    Each callback looks its device up first: a name no link serves (a forged request) raises
    ``UnknownDevice``, which the app answers with 404 and a message, never a traceback.
    """
    busy: dict[str, threading.Lock] = {}

    @app.callback(
        Output(GAUGE_IDS[0], "figure"),
        Output(GAUGE_IDS[1], "figure"),
        Output(ids.STATUS_TEXT, "children"),
        Output(ids.PROJECTIONS, "children"),
        Output(ids.LINK_PANEL, "children"),
        Output(ids.ALARMS, "children"),
        Output(ids.ALARMS_SHOWN, "data"),
        Input(ids.TICK, "n_intervals"),
        State(ids.DEVICE_NAME, "data"),
        State(ids.ALARMS_SHOWN, "data"),
    )
    def refresh(_n: int, name: str, shown: list | None):
        snap = deps.link(name).snapshot()
        status = snap.status
        battery, second = Patch(), Patch()
        if status is not None:
            battery["data"][0]["value"] = status.battery_pct_x100 / 100
            battery["layout"]["title"]["text"] = "Battery"
            second["layout"]["title"]["text"] = "Reservoir" if isinstance(status, PumpStatus) else "Amplitude"
            if isinstance(status, PumpStatus):
                second["data"][0]["value"] = status.reservoir_ul / 1000
                second["data"][0]["gauge"]["axis"]["range"] = [0, status.capacity_ul / 1000]
                second["data"][0]["gauge"]["threshold"] = {
                    "line": {"color": "#d0021b", "width": 3},
                    "value": status.alarm_volume_ul / 1000,
                }
            else:
                amp = status.areas[0].amplitude_ua / 1000 if status.areas and status.therapy_on else 0.0
                second["data"][0]["value"] = amp
                second["data"][0]["gauge"]["axis"]["range"] = [0, max(10.0, status.patient_amp_max_ua / 1000)]
        signature = alarm_signature(snap)
        alarms = no_update if signature == shown else alarm_list(snap)
        panels = status_panel(status), projections_panel(status), link_panel(snap)
        return battery, second, *panels, alarms, signature

    @app.callback(
        Output({"type": ids.CHART, "series": ALL}, "extendData"),
        Output(ids.CHART_CURSOR, "data"),
        Input(ids.TICK, "n_intervals"),
        State(ids.DEVICE_NAME, "data"),
        State(ids.CHART_CURSOR, "data"),
        State({"type": ids.CHART, "series": ALL}, "id"),
    )
    def extend(_n: int, name: str, cursor: dict, chart_ids: list[dict]):
        deps.link(name)  # UnknownDevice (404) for a name no link serves
        lock = busy.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):  # a slow tick is still running: skip, never pile up
            return [no_update] * len(chart_ids), no_update
        try:
            return extend_charts(deps.store, name, cursor, [c["series"] for c in chart_ids])
        finally:
            lock.release()

    @app.callback(
        Output({"type": ids.CHART, "series": ALL}, "figure"),
        Output(ids.CHART_CURSOR, "data", allow_duplicate=True),
        Input(ids.RANGE, "value"),
        State(ids.DEVICE_NAME, "data"),
        State({"type": ids.CHART, "series": ALL}, "id"),
        prevent_initial_call=True,
    )
    def change_range(label: str, name: str, chart_ids: list[dict]):
        deps.link(name)
        figs, cursor = [], {}
        for chart in chart_ids:
            fig, cursor[chart["series"]] = chart_figure(deps.store, name, chart["series"], RANGES.get(label, 0))
            figs.append(fig)
        return figs, cursor

    @app.callback(
        Output(ids.EVENTS, "children"),
        Output(ids.ALARM_HISTORY, "children"),
        Input(ids.TICK, "n_intervals"),
        Input(ids.EVENT_FILTER, "value"),
        State(ids.DEVICE_NAME, "data"),
    )
    def events(_n: int, text: str, name: str):
        deps.link(name)
        rows = deps.store.events(name, limit=200, newest_first=True)
        history = deps.store.alarm_history(name, 50)
        return event_rows(rows, text), event_rows(history, "")


def extend_charts(store, name: str, cursor: dict, groups: list[str]) -> tuple[list, dict]:
    """extendData for each chart (new points only) and the moved cursors; cost independent of history length."""
    out = []
    for group in groups:
        seen = cursor.setdefault(group, {})
        names = list(seen) or _group_names(store, name, group)
        xs, ys, traces = [], [], []
        for index, series in enumerate(names):
            times, values = store.series_after(name, series, seen.get(series, 0))
            if len(times):
                x, y = figures.points(times, values)
                xs.append(x)
                ys.append(y)
                traces.append(index)
                seen[series] = int(times[-1])
        out.append(({"x": xs, "y": ys}, traces, figures.MAX_LIVE_POINTS) if traces else no_update)
    return out, cursor
