"""The Dash app factory: ``create_app(deps, users, ...)`` builds the app and registers every callback.

No module-level app, no globals: the device links and the store arrive in ``Deps``; each page
module registers its own callbacks on the app it is given. Login and the web-security checks are
installed on the Flask server before anything else.
"""

from __future__ import annotations

import io
import secrets
from pathlib import Path

from dash import Dash, Input, Output, dcc, html
from flask import Response, abort, request

from protocols.messages import Priority

from . import ids
from .auth import UserDB, current_user, install_auth, logout_form
from .deps import Deps
from .views import device, overview, programming
from .views.common import CSS, alarm_label

ASSETS = Path(__file__).with_name("assets")


def shell(tick_s: float) -> html.Div:
    """The frame around every page: top bar with the alarm banner, the page, the tick."""
    return html.Div(
        [
            dcc.Location(id=ids.URL),
            html.Div(
                [
                    dcc.Link("implant-telemetry", href="/"),
                    html.Div(id=ids.BANNER, className="banner banner-none"),
                    html.Div(className="spacer"),
                    html.Span(id=ids.USER_BOX),
                    logout_form(),
                ],
                className="topbar",
            ),
            html.Div(id=ids.PAGE, className="content"),
            dcc.Interval(id=ids.TICK, interval=int(tick_s * 1000)),
        ]
    )


def banner(deps: Deps) -> tuple[list, str]:
    """The highest-priority active alarm across devices (technical alarms count as high)."""
    worst: tuple[int, str, str] | None = None
    for name, link in deps.links.items():
        snap = link.snapshot()
        if snap.technical_alarm:
            candidate = (int(Priority.HIGH) + 1, f"{name}: {snap.technical_alarm}", "alarm-technical")
        elif snap.status is not None and snap.status.alarms:
            top = snap.status.alarms[0]
            candidate = (int(top.priority), f"{name}: {alarm_label(top.code.name, top.priority)}", CSS[top.priority])
        else:
            continue
        if worst is None or candidate[0] > worst[0]:
            worst = candidate
    if worst is None:
        return [], "banner banner-none"
    return [worst[1]], f"banner {worst[2]}"


def create_app(
    deps: Deps,
    users: UserDB,
    *,
    secret_key: bytes | None = None,
    allowed_hosts: set[str] | None = None,
    fresh_login_s: int = 600,
    tls: bool = False,
) -> Dash:
    """Build the dashboard app around ``deps``; login required on every page and callback."""
    app = Dash(
        __name__,
        title="implant-telemetry",
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,  # pages create their components when shown
        update_title=None,
    )
    app.layout = lambda: shell(deps.tick_s)  # a function: the log-out form carries a per-session token
    install_auth(
        app,
        users,
        secret_key=secret_key or secrets.token_bytes(32),
        fresh_login_s=fresh_login_s,
        allowed_hosts=allowed_hosts or {"127.0.0.1", "localhost"},
        tls=tls,
    )
    _register_exports(app, deps)

    @app.callback(Output(ids.PAGE, "children"), Input(ids.URL, "pathname"))
    def route(path: str | None):
        path = path or "/"
        if path.startswith("/device/"):
            name = path.removeprefix("/device/")
            if name in deps.links:
                return device.layout(deps, name)
            return html.Div(f"No device named {name!r}.")
        return overview.layout()

    @app.callback(
        Output(ids.BANNER, "children"),
        Output(ids.BANNER, "className"),
        Output(ids.USER_BOX, "children"),
        Input(ids.TICK, "n_intervals"),
    )
    def top(_n: int):
        children, css = banner(deps)
        user = current_user()
        return children, css, f"{user.username} ({user.role.value})" if user else ""

    overview.register(app, deps)
    device.register(app, deps)
    programming.register(app, deps)
    return app


def _register_exports(app: Dash, deps: Deps) -> None:
    server = app.server

    def csv_response(write, filename: str) -> Response:
        buffer = io.StringIO()
        write(buffer)
        return Response(
            buffer.getvalue(),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @server.get("/export/<name>/series.csv")
    def export_series(name: str) -> Response:
        if name not in deps.links:
            abort(404)
        names = request.args.get("names")
        wanted = names.split(",") if names else deps.store.series_names(name)
        first, last = deps.store.time_range(name) or (0, 0)
        start = int(request.args.get("start_ms", first))
        end = int(request.args.get("end_ms", last))
        return csv_response(
            lambda out: deps.store.export_series_csv(name, wanted, start, end, out), f"{name}-series.csv"
        )

    @server.get("/export/<name>/events.csv")
    def export_events(name: str) -> Response:
        if name not in deps.links:
            abort(404)
        return csv_response(lambda out: deps.store.export_events_csv(name, out), f"{name}-events.csv")

    @server.get("/export/audit.csv")
    def export_audit() -> Response:
        return csv_response(deps.store.export_audit_csv, "audit.csv")
