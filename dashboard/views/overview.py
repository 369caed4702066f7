"""The fleet overview: one card per device, refreshed every tick."""

from __future__ import annotations

from dash import Dash, Input, Output, dcc, html

from protocols.messages import PumpStatus, ScsStatus

from .. import ids, paths
from ..deps import Deps
from .common import CSS, alarm_label, kv


def layout() -> html.Div:
    """The page: a grid the tick fills."""
    return html.Div(
        [html.H1("Devices", style={"fontSize": "1.3rem"}), html.Div(id=ids.OVERVIEW_CARDS, className="cards")]
    )


def card(snapshot) -> html.Div:
    """One device's card from its link snapshot."""
    status = snapshot.status
    identity = snapshot.identity
    pairs: list[tuple[str, object]] = [
        ("Kind", identity.kind.name if identity else "—"),
        ("Serial", identity.serial if identity else "—"),
        ("Link", html.Span(snapshot.state.name, className=f"state-{snapshot.state.name}")),
    ]
    if status is not None:
        pairs.append(("Battery", f"{status.battery_pct_x100 / 100:.1f} % ({status.battery_state.name})"))
        if isinstance(status, PumpStatus):
            pairs.append(("Reservoir", f"{status.reservoir_ul / 1000:.2f} of {status.capacity_ul / 1000:.0f} mL"))
        elif isinstance(status, ScsStatus):
            amp = status.areas[0].amplitude_ua / 1000 if status.areas else 0.0
            pairs.append(("Amplitude", f"{amp:.2f} mA ({'on' if status.therapy_on else 'off'})"))
    alarm = None
    if snapshot.technical_alarm:
        alarm = html.Div(f"Technical: {snapshot.technical_alarm}", className="alarm alarm-technical")
    elif status is not None and status.alarms:
        worst = status.alarms[0]
        alarm = html.Div(alarm_label(worst.code.name, worst.priority), className=f"alarm {CSS[worst.priority]}")
    body = [html.H3(dcc.Link(snapshot.name, href=paths.device_href(snapshot.name))), kv(pairs)]
    if alarm is not None:
        body.append(alarm)
    return html.Div(body, className="card", id=card_id(snapshot.name))


def card_id(name: str) -> str:
    """The element id of a device's card: ``card-`` and the name percent-encoded (an id holds no space)."""
    return f"card-{paths.segment(name)}"


def register(app: Dash, deps: Deps) -> None:
    """Wire the overview's tick."""

    @app.callback(Output(ids.OVERVIEW_CARDS, "children"), Input(ids.TICK, "n_intervals"))
    def refresh(_n: int) -> list[html.Div]:
        return [card(link.snapshot()) for link in deps.links.values()]
