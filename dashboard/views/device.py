"""A device's page: gauges, status and projections, link quality, live charts, alarms and events."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import plotly.graph_objects as go
from dash import ALL, Dash, Input, Output, Patch, State, dcc, html, no_update

from protocols.messages import Capability, DeviceKind, EventCode, Lifecycle, PumpStatus, ScsStatus

from .. import figures, ids, paths
from ..deps import Deps
from ..series import OPEN_OHM, info
from ..trial_data import months_relief, snapshot_view
from ..words import LINK_WORDS, enum_word, sentence
from . import event_log, programming
from .common import CSS, alarm_label, day, kv, when
from .ticks import paced, ticker

DAY_MS = 86_400_000
RANGES = {
    "5 min": 300_000,
    "1 hour": 3_600_000,
    "1 day": DAY_MS,
    "30 days": 30 * DAY_MS,
    "1 year": 365 * DAY_MS,
    "All": 0,
}
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
    # Natural order: contact 2 before contact 10, as on the lead.
    return sorted((n for n in store.series_names(device) if n.startswith(group)), key=_natural)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


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


def _trial_link(deps: Deps, snap: Any, name: str) -> list:
    """A link to the trial page when the device serves its patient's diary (SPEC 4.7), and once the
    system is implanted, the patient's relief at 3, 6 and 12 months against their baseline."""
    if snap.identity is None or not snap.identity.capabilities & Capability.DIARY:
        return []
    parts: list = [dcc.Link("Trial and diary", href=paths.trial_href(name), id="trial-link")]
    if getattr(snap.status, "lifecycle", None) in (Lifecycle.IMPLANTED, Lifecycle.EXPLANTED):
        view = snapshot_view(deps.store, name, snap, deps.trial_rule)
        months = months_relief(view, view.implant_ms)
        said = ", ".join(f"{m} months {round(100 * r)} %" for m, r in months.items()) or "no month reached yet"
        parts.append(html.P(f"Relief since the implant, against the baseline: {said}.", id="implant-relief"))
    return parts


def layout(deps: Deps, name: str) -> html.Div:
    """The page of device ``name``."""
    link = deps.link(name)
    snap = link.snapshot()
    kind = snap.identity.kind if snap.identity else DeviceKind.SCS
    groups = CHARTS[kind]
    if snap.identity is not None and snap.identity.capabilities & Capability.DIARY:
        groups = (*groups, "pain_nrs")  # the patient's pain beside the therapy, over months
    charts, cursor = [], {}
    for group in groups:
        fig, cur = chart_figure(deps.store, name, group, RANGES[DEFAULT_RANGE])
        cursor[group] = cur
        charts.append(dcc.Graph(id={"type": ids.CHART, "series": group}, figure=fig, config={"displaylogo": False}))
    second = ("Reservoir", "mL") if kind == DeviceKind.PUMP else ("Amplitude", "mA")
    gauges = figures.gauge("Battery", None, "%", 100, 25), figures.gauge(second[0], None, second[1], 1)
    # The page comes with what the device last said, so it shows data with its first answer;
    # the status tick only refreshes it.
    battery, gauge2, status, projections, link_text, alarms, shown, note = live_parts(snap, None, *gauges)
    return html.Div(
        [
            dcc.Store(id=ids.DEVICE_NAME, data=name),
            dcc.Store(id=ids.CHART_CURSOR, data=cursor),
            dcc.Store(id=ids.ALARMS_SHOWN, data=shown),
            *(ticker(t, deps.tick_s) for t in (ids.TICK_STATUS, ids.TICK_CHARTS, ids.TICK_SPEED)),
            html.H1(f"{name}", style={"fontSize": "1.3rem"}),
            *_trial_link(deps, snap, name),
            html.Div(
                [
                    dcc.Graph(id=GAUGE_IDS[0], figure=battery),
                    dcc.Graph(id=GAUGE_IDS[1], figure=gauge2),
                    html.Div([html.H2("Status"), html.Div(status, id=ids.STATUS_TEXT)], className="panel"),
                    html.Div([html.H2("Projections"), html.Div(projections, id=ids.PROJECTIONS)], className="panel"),
                    html.Div([html.H2("Link"), html.Div(link_text, id=ids.LINK_PANEL)], className="panel"),
                ],
                className="row",
                id=ids.GAUGES,
            ),
            html.Div(
                [html.H2("Alarms"), html.Div(alarms, id=ids.ALARMS), html.Div(id="ack-result")], className="panel"
            ),
            html.Div(
                [
                    html.H2("History"),
                    dcc.RadioItems(list(RANGES), DEFAULT_RANGE, id=ids.RANGE, inline=True),
                    html.P("Ranges are in device time (the device's own clock).", id=ids.RANGE_NOTE, className="note"),
                    dcc.Store(id=ids.SPEED_SAMPLE, data=None),
                    html.Div(charts, id=ids.CHARTS),
                    html.P(note, id=ids.IMPEDANCE_NOTE, className="alarm-note"),
                    html.A("Export series as CSV", href=paths.export_href(name, "series.csv"), id=ids.EXPORT),
                ],
                className="panel",
            ),
            html.Div(programming.layout(deps, name), id=ids.PROGRAM_FORM),
            event_log.layout("events", deps.tick_s, paths.export_href(name, "events.csv")),
            event_log.layout("alarms", deps.tick_s),
        ]
    )


def status_panel(status: ScsStatus | PumpStatus | None) -> html.Div:
    """Key status fields, in words and the units of the forms."""
    if status is None:
        return html.Div("No status yet.")
    battery = (
        f"{status.battery_pct_x100 / 100:.2f} % · {status.battery_mv / 1000:.2f} V · {enum_word(status.battery_state)}"
    )
    pairs: list[tuple[str, object]] = [("Device time", f"{when(status.time_ms)} UTC"), ("Battery", battery)]
    if isinstance(status, PumpStatus):
        drugs = [
            f"{enum_word(d.drug).lower()} {d.conc_ng_per_ml / 1e6:g} mg/mL, {d.dose_ng_per_day / 1e6:.3g} mg/day"
            + (f" + boluses {d.bolus_ng_24h / 1e6:.3g} mg" if d.bolus_ng_24h else "")
            for d in status.drugs
        ]
        pairs += [
            ("Mode", f"{enum_word(status.mode)} · {'infusing' if status.infusing else 'not infusing'}"),
            ("Rate now", f"{status.rate_ul_per_day / 1000:.3f} mL/day"),
            ("Reservoir", f"{status.reservoir_ul / 1000:.2f} mL (alarm at {status.alarm_volume_ul / 1000:.1f} mL)"),
            ("Drugs (24 h)", "; ".join(drugs) or "none"),
            ("Motor", enum_word(status.motor_state)),
        ]
    else:
        area = status.areas[0] if status.areas else None
        pairs += [
            ("Therapy", "on" if status.therapy_on else "off"),
            ("Program", f"{status.active_program} · {len(status.areas)} area(s)" if status.active_program else "none"),
            (
                "Area 1",
                f"{area.amplitude_ua / 1000:.2f} mA · {area.pulse_width_us} µs · {area.rate_hz} Hz" if area else "—",
            ),
            ("Power to tissue", f"{status.tissue_power_uw} µW"),
            ("Charging", f"yes ({status.coupling_pct} % coupling)" if status.charging else "no"),
        ]
    return kv(pairs)


def _day_or(time_ms: int, otherwise: str) -> str:
    return day(time_ms) if time_ms else otherwise


def projections_panel(status: ScsStatus | PumpStatus | None) -> html.Div:
    """Projected dates (device time), said in words where a date does not apply."""
    if status is None:
        return html.Div("—")
    if isinstance(status, PumpStatus):
        if status.reservoir_ul == 0:
            empty = f"empty since {day(status.empty_ms)}" if status.empty_ms else "empty"
        elif not status.empty_ms:
            empty = "not while the pump is stopped"
        else:
            empty = (
                f"{day(status.empty_ms)} (between {day(status.empty_earliest_ms)} and {day(status.empty_latest_ms)})"
            )
        return kv(
            [
                ("Next refill", _day_or(status.next_refill_ms, "not while the pump is stopped")),
                ("Low-reservoir alarm", _day_or(status.low_alarm_ms, "not while the pump is stopped")),
                ("Empty", empty),
                ("Replacement advised", _day_or(status.replacement_ms, "not projected")),
                ("Battery ERI", _day_or(status.eri_ms, "not projected")),
                ("End of service", _day_or(status.eos_ms, "not projected")),
            ]
        )
    return kv(
        [
            (
                "Recharge due in",
                f"{status.days_to_recharge_x100 / 100:.1f} days" if status.days_to_recharge_x100 else "—",
            ),
            ("Battery ERI", _day_or(status.eri_ms, "not projected")),
            ("End of service", _day_or(status.eos_ms, "not projected")),
            ("Capacity", f"{status.capacity_pct_x100 / 100:.1f} % of new"),
        ]
    )


def link_panel(snap) -> html.Div:
    """Link quality."""
    c, state = snap.counters, snap.state.name
    return kv(
        [
            ("State", html.Span(LINK_WORDS[snap.state.value], className=f"state-{state}")),
            ("Last data", f"{snap.age_s:.1f} s ago" if snap.age_s is not None else "—"),
            ("Round trip", f"{snap.rtt_ms:.1f} ms" if snap.rtt_ms is not None else "—"),
            ("CRC / MAC errors", f"{c.get('crc_errors', 0)} / {c.get('mac_errors', 0)}"),
            ("Retries / timeouts", f"{c.get('retries', 0)} / {c.get('timeouts', 0)}"),
            ("Reconnects", snap.reconnects),
        ]
    )


def impedance_note(status) -> str:
    """What the last impedance check found wrong, said under the impedance chart (the chart draws no
    point for an open contact, so its line stops where the lead broke)."""
    if not isinstance(status, ScsStatus):
        return ""
    opened = [str(n) for n, ohm in enumerate(status.impedance_ohm) if ohm == OPEN_OHM]  # SPEC: 65535 = open
    parts = [f"contact {', '.join(opened)} read{'s' if len(opened) == 1 else ''} open"] if opened else []
    if any(a.code == EventCode.LEAD_SHORT for a in status.alarms):  # the device judges a short, by its own limit
        parts.append("a contact reads shorted (see the alarm)")
    return ("Last impedance check: " + "; ".join(parts) + ".") if parts else ""


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
        items.append(html.Div(technical_text(snap), className="alarm alarm-technical"))
    status = snap.status
    for alarm in status.alarms if status is not None else ():
        acked = alarm.state.name == "ACKNOWLEDGED"
        css = f"alarm {CSS[alarm.priority]}" + (" alarm-acknowledged" if acked else "")
        button = html.Button(
            "Acknowledged" if acked else "Acknowledge",
            id={"type": ids.ACK, "code": int(alarm.code)},
            disabled=acked,
        )
        items.append(html.Div([html.Span(alarm_label(alarm.code, alarm.priority)), button], className=css))
    return items or [html.Div("No active alarm.")]


def technical_text(snap) -> str:
    """A technical alarm (the link, not the device) as a sentence."""
    return f"Technical alarm: {sentence(snap.technical_alarm)}"


def set_gauges(battery, second, status: ScsStatus | PumpStatus | None) -> None:
    """Put ``status`` on the two gauges: figures, or Patches of them (the same paths either way)."""
    if status is None:
        return
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


def live_parts(snap, shown: list | None, battery, second) -> tuple:
    """What the status tick draws, from a link snapshot: the gauges (``battery`` and ``second``, set
    in place), the status, projections and link panels, the alarm list (``no_update`` while it still
    matches ``shown``) and its signature, and the impedance note."""
    set_gauges(battery, second, snap.status)
    signature = alarm_signature(snap)
    alarms = no_update if signature == shown else alarm_list(snap)
    panels = status_panel(snap.status), projections_panel(snap.status), link_panel(snap)
    return battery, second, *panels, alarms, signature, impedance_note(snap.status)


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
        Output(ids.IMPEDANCE_NOTE, "children"),
        Input(ids.TICK_STATUS, "n_intervals"),
        State(ids.DEVICE_NAME, "data"),
        State(ids.ALARMS_SHOWN, "data"),
        running=paced(ids.TICK_STATUS),
        prevent_initial_call=True,  # the layout comes with them
    )
    def refresh(_n: int, name: str, shown: list | None):
        battery, second = Patch(), Patch()
        return live_parts(deps.link(name).snapshot(), shown, battery, second)

    @app.callback(
        Output({"type": ids.CHART, "series": ALL}, "extendData"),
        Output({"type": ids.CHART, "series": ALL}, "figure", allow_duplicate=True),
        Output(ids.CHART_CURSOR, "data"),
        Input(ids.TICK_CHARTS, "n_intervals"),
        State(ids.DEVICE_NAME, "data"),
        State(ids.CHART_CURSOR, "data"),
        State(ids.RANGE, "value"),
        State({"type": ids.CHART, "series": ALL}, "id"),
        prevent_initial_call=True,
        running=paced(ids.TICK_CHARTS),
    )
    def extend(_n: int, name: str, cursor: dict, label: str, chart_ids: list[dict]):
        deps.link(name)  # UnknownDevice (404) for a name no link serves
        groups = [c["series"] for c in chart_ids]
        lock = busy.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):  # a slow tick is still running: skip, never pile up
            return [no_update] * len(groups), [no_update] * len(groups), no_update
        try:
            cursor = dict(cursor or {})
            figs = []
            for group in groups:  # a family that gained a series (a drug, a contact) is drawn afresh
                known = sorted(cursor.get(group, {}), key=_natural)
                if group.endswith("_") and _group_names(deps.store, name, group) != known:
                    fig, cursor[group] = chart_figure(deps.store, name, group, RANGES.get(label, 0))
                    figs.append(fig)
                else:
                    figs.append(no_update)
            stale = [g for g, f in zip(groups, figs, strict=True) if f is not no_update]
            data, cursor = extend_charts(deps.store, name, cursor, groups)
            data = [no_update if g in stale else d for g, d in zip(groups, data, strict=True)]
            return data, figs, cursor
        finally:
            lock.release()

    @app.callback(
        Output(ids.RANGE_NOTE, "children"),
        Output(ids.SPEED_SAMPLE, "data"),
        Input(ids.TICK_SPEED, "n_intervals"),
        State(ids.DEVICE_NAME, "data"),
        State(ids.SPEED_SAMPLE, "data"),
        running=paced(ids.TICK_SPEED),
    )
    def speed(_n: int, name: str, sample: dict | None):
        status = deps.link(name).snapshot().status
        if status is None:
            return no_update, no_update
        now = {"wall": time.monotonic(), "device": status.time_ms}
        if not isinstance(sample, dict) or status.time_ms < sample.get("device", 0):  # first tick, or a clock set
            return no_update, now
        elapsed = now["wall"] - sample["wall"]
        if elapsed < 2:  # too short to judge
            return no_update, sample
        return speed_note(status.time_ms - sample["device"], elapsed), now if elapsed > 30 else sample

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


def speed_note(device_ms: float, wall_s: float) -> str:
    """What the ranges mean at the speed the device's clock runs against the wall clock."""
    if wall_s <= 0 or device_ms <= 0:
        return "Ranges are in device time (the device's own clock)."
    ratio = device_ms / 1000 / wall_s
    if ratio < 1.5:
        return "Ranges are in device time, which runs at real time here."
    day_s = 86_400 / ratio
    per_day = f"{day_s:.1f} s" if day_s < 120 else f"{day_s / 60:.0f} min"
    return (
        f"Ranges are in device time, which runs about {ratio:,.0f} times faster than real time here: "
        f"a device day passes in {per_day}."
    )


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
