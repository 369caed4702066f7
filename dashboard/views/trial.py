"""The trial page of a device whose patient keeps a diary (``/trial/<device>``).

Shows the baseline and the trial's figures (pain before and during, relief from the diary and as the
patient reports it, a difference over 15 points flagged, analgesic use, the responder call with
its reasons), the diary's scores over time with therapy on the same axis, the diary itself, and the
report (HTML and PDF, ``dashboard.trial_routes``). A clinician records the decision (implant, do not
implant, extend the trial: audited; the first two also move the device's lifecycle) and types diary
scores; a viewer sees those controls disabled, saying why. An implanted patient's relief at 3, 6
and 12 months shows when the diary reaches them.

Every change goes through ``DeviceLink.submit`` or the audit log after ``require_role(CLINICIAN)``
on the server. Must not import ``device_mock``.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from protocols.messages import DiaryAdd, DiaryKind, Lifecycle, LifecycleSet

from .. import ids, paths
from ..auth import PermissionDenied, Role, current_user, require_role
from ..deps import Deps, UnknownDevice
from ..trial_data import DECISION_ACTION, TrialView, entry_words, months_relief, snapshot_view, stage_words
from ..trial_report import DECISIONS
from ..words import DIARY_SOURCE_WORDS, DIARY_WORDS, when
from .results import render_result
from .ticks import paced, ticker

TICK = ids.TICK_TRIAL
FIGURES, PLOT, DIARY = "trial-figures", "trial-plot", "trial-diary"
DECIDE_OUT, ADD_OUT = "trial-decision-result", "trial-add-result"
ADD_KIND, ADD_VALUE, ADD_BUTTON = "trial-add-kind", "trial-add-value", "trial-add"
SHOWN_ENTRIES = 40  # newest diary entries listed; the report and the CSV hold every one
FLAGGED = "trial-flagged"
# What each decision does to the device: None records it only (SPEC 4.7).
DECISION_STAGE = {"Implant": Lifecycle.IMPLANTED, "Do not implant": Lifecycle.TRIAL_ENDED, "Extend the trial": None}


def _decision_id(decision: str) -> str:
    return "trial-decide-" + decision.lower().replace(" ", "-")


def view_of(deps: Deps, name: str) -> TrialView:
    """The trial of ``name`` as the store holds it."""
    return snapshot_view(deps.store, name, deps.link(name).snapshot(), deps.trial_rule)


def _pct(share: float | None) -> str:
    return "not reported" if share is None else f"{round(100 * share)} %"


def figures(view: TrialView) -> html.Table:
    """The trial's figures and the call, in words."""
    call, score = view.call, ("Ashworth grade (index 0-5)" if view.spasticity else "Pain (0-10)")
    rows: list[tuple[str, Any]] = [
        ("Stage", stage_words(view.lifecycle)),
        ("Baseline from", when(view.baseline_from_ms)),
        ("Trial", f"{when(view.trial_from_ms)} to {when(view.trial_to_ms)}{'' if view.ended else ' (running)'}"),
    ]
    if call is None:
        rows.append(("Call", "Not yet: the diary has no scores on both sides of the trial's start"))
    else:
        rows += [
            (f"{score}, baseline mean", f"{call.baseline:.1f}"),
            (f"{score}, during the trial", f"{call.during:.1f}"),
            ("Relief from the diary", _pct(call.relief)),
            ("Relief the patient reports", _pct(call.reported)),
        ]
        if call.flagged:
            rows.append(("Difference", html.Span("over 15 points: ask the patient", id=FLAGGED, className="flag")))
        rows.append(("Analgesics", "stable or reduced" if call.medication_stable else "rose during the trial"))
        verdict = "Responder" if call.responder else "Not a responder"
        why = "" if call.responder else ": " + "; ".join(call.reasons)
        rows.append(("Call", f"{verdict} (at least {round(100 * view.rule.threshold)} % relief){why}"))
    for month, relief in months_relief(view, view.implant_ms).items():
        rows.append((f"Relief {month} months after the implant", _pct(relief)))
    decision = view.decision
    rows.append(
        (
            "Decision",
            f"{decision['decision']}, by {decision['user']}, {when(decision['time_ms'])}"
            if decision
            else "Not yet recorded",
        )
    )
    return html.Table([html.Tr([html.Th(k), html.Td(v)]) for k, v in rows], className="figures")


def plot(view: TrialView) -> go.Figure:
    """Scores over time, with the baseline mean, the responder line, therapy bands and analgesics."""
    kind = view.score_kind
    times = [e.time_ms for e in view.diary if e.kind is kind]
    values = [e.value for e in view.diary if e.kind is kind]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=times, y=values, mode="lines+markers", name=DIARY_WORDS[kind][0]))
    pills = [(e.time_ms, e.value) for e in view.diary if e.kind is DiaryKind.MEDICATION]
    if pills:
        fig.add_trace(
            go.Scatter(x=[t for t, _ in pills], y=[v for _, v in pills], name="Analgesics, mg/day", yaxis="y2")
        )
    for start, end, label in view.therapy:
        fig.add_vrect(x0=start, x1=end, fillcolor="#2a9d8f", opacity=0.12, line_width=0, annotation_text=label)
    if view.call is not None:
        fig.add_hline(y=view.call.baseline, line_dash="dash", annotation_text="baseline mean")
        goal = view.call.baseline * (1 - view.rule.threshold)
        fig.add_hline(y=goal, line_dash="dot", annotation_text=f"{round(100 * view.rule.threshold)} % relief")
    fig.add_vline(x=view.trial_from_ms, line_dash="dot", annotation_text="trial start")
    top = 5 if view.spasticity else 10
    fig.update_layout(
        height=320,
        margin={"l": 50, "r": 50, "t": 20, "b": 40},
        xaxis={"type": "date", "title": "device time (UTC)"},
        yaxis={"range": [0, top + 0.5], "title": DIARY_WORDS[kind][0]},
        yaxis2={"overlaying": "y", "side": "right", "title": "mg/day", "rangemode": "tozero", "showgrid": False},
        legend={"orientation": "h"},
    )
    return fig


def diary_table(view: TrialView) -> html.Table:
    """The newest entries, newest first, in words."""
    head = html.Tr([html.Th(h) for h in ("#", "Device time (UTC)", "Score", "Value", "Written by")])
    body = []
    for entry in sorted(view.diary, key=lambda e: e.seq, reverse=True)[:SHOWN_ENTRIES]:
        label, value = entry_words(entry)
        cells = (entry.seq, when(entry.time_ms), label, value, DIARY_SOURCE_WORDS[entry.source])
        body.append(html.Tr([html.Td(str(c)) for c in cells]))
    if not body:
        body = [html.Tr(html.Td("No diary entry yet.", colSpan=5))]
    return html.Table([head, *body], className="log")


def layout(deps: Deps, name: str) -> html.Div:
    """The trial page of ``name``."""
    view = view_of(deps, name)
    user = current_user()
    clinician = user is not None and user.role is Role.CLINICIAN
    why = None if clinician else "Only a clinician records decisions and types scores."
    kinds = [{"label": DIARY_WORDS[k][0], "value": int(k)} for k in DiaryKind]
    decide = [
        html.Button(d, id=_decision_id(d), n_clicks=0, disabled=not clinician, title=why or "") for d in DECISIONS
    ]
    return html.Div(
        [
            dcc.Store(id="trial-device", data=name),
            ticker(TICK, deps.tick_s * 5),
            html.H1(f"Trial: {name}", style={"fontSize": "1.3rem"}),
            dcc.Link("Device page", href=paths.device_href(name)),
            " · ",
            html.A("Report (HTML)", href=paths.trial_report_href(name, "html"), id="trial-report-html"),
            " · ",
            html.A("Report (PDF)", href=paths.trial_report_href(name, "pdf"), id="trial-report-pdf"),
            " · ",
            html.A("Diary as CSV", href=paths.export_href(name, "diary.csv"), id="trial-diary-csv"),
            html.Div([html.H2("Figures"), html.Div(figures(view), id=FIGURES)], className="panel"),
            dcc.Graph(id=PLOT, figure=plot(view), config={"displaylogo": False}),
            html.Div(
                [html.H2("Decision"), *decide, html.Div(why or "", className="why"), html.Div(id=DECIDE_OUT)],
                className="panel",
            ),
            html.Div(
                [
                    html.H2("Type a diary score"),
                    dcc.Dropdown(kinds, int(view.score_kind), id=ADD_KIND, clearable=False, disabled=not clinician),
                    dcc.Input(id=ADD_VALUE, type="number", min=0, step=1, disabled=not clinician),
                    html.Button("Add", id=ADD_BUTTON, n_clicks=0, disabled=not clinician, title=why or ""),
                    html.Div(id=ADD_OUT),
                ],
                className="panel",
            ),
            html.Div([html.H2("Diary"), html.Div(diary_table(view), id=DIARY)], className="panel"),
        ]
    )


def register(app: Dash, deps: Deps) -> None:
    """The trial page's callbacks."""

    @app.callback(
        Output(FIGURES, "children"),
        Output(PLOT, "figure"),
        Output(DIARY, "children"),
        Input(TICK, "n_intervals"),
        Input(DECIDE_OUT, "children"),
        Input(ADD_OUT, "children"),
        State("trial-device", "data"),
        prevent_initial_call=True,
        running=paced(TICK),
    )
    def refresh(_n: int, _decided: Any, _added: Any, name: str):
        view = view_of(deps, name)
        return figures(view), plot(view), diary_table(view)

    @app.callback(
        Output(DECIDE_OUT, "children"),
        *(Input(_decision_id(d), "n_clicks") for d in DECISIONS),
        State("trial-device", "data"),
        prevent_initial_call=True,
    )
    def decide(*args: Any):
        name = args[-1]
        chosen = next((d for d in DECISIONS if ctx.triggered_id == _decision_id(d)), None)
        if chosen is None:
            return no_update
        try:
            user = require_role(Role.CLINICIAN)
            link = deps.link(name)
        except (PermissionDenied, UnknownDevice) as exc:
            return html.Div(str(exc), className="result-refused")
        stage = DECISION_STAGE[chosen]
        before = {"stage": stage_words(view_of(deps, name).lifecycle)}  # read before the command moves it
        result = None
        if stage is not None:
            result = link.submit(LifecycleSet(stage), user.username, user.role.value)
            if not result.ok:
                return render_result(result)
        after = {"decision": chosen}
        deps.store.add_audit(user.username, user.role.value, name, DECISION_ACTION, before, after, "recorded", None)
        note = html.Div(f"Decision recorded: {chosen}.", className="result-ok", id="trial-decided")
        return [note, render_result(result)] if result is not None else note

    @app.callback(
        Output(ADD_OUT, "children"),
        Input(ADD_BUTTON, "n_clicks"),
        State(ADD_KIND, "value"),
        State(ADD_VALUE, "value"),
        State("trial-device", "data"),
        prevent_initial_call=True,
    )
    def add(_n: int, kind: int, value: Any, name: str):
        try:
            user = require_role(Role.CLINICIAN)
            link = deps.link(name)
        except (PermissionDenied, UnknownDevice) as exc:
            return html.Div(str(exc), className="result-refused")
        if not isinstance(value, int | float) or value != int(value):
            return html.Div("Not sent: the value is a whole number.", className="result-refused")
        try:
            diary_kind = DiaryKind(kind)
        except ValueError:
            return html.Div("Not sent: choose what the score is.", className="result-refused")
        return render_result(link.submit(DiaryAdd(diary_kind, int(value), 0), user.username, user.role.value))
