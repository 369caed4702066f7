"""The Dash app factory: ``create_app(deps, users, ...)`` builds the app and registers every callback.

No module-level app, no globals: the device links and the store arrive in ``Deps``; each page
module registers its own callbacks on the app it is given. Login and the web-security checks are
installed on the Flask server before anything else, with their events (log-ins, failed and
throttled attempts, refusals) written to the store's audit log. Must not import ``device_mock``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dash import Dash, Input, Output, dcc, html
from flask import Response, jsonify

from protocols.messages import Priority

from . import compression, exports, ids, paths, trial_routes
from .auth import DEFAULT_IDLE_S, AuthEvent, UserDB, current_user, install_auth, logout_form
from .deps import Deps, UnknownDevice
from .throttle import LoginThrottle
from .views import audit, device, event_log, overview, programming, ticks, trial
from .views.common import CSS, LOADING_AFTER_MS, alarm_label
from .words import sentence

ASSETS = Path(__file__).with_name("assets")
AUTH_OK = frozenset({"login_ok", "logout"})  # every other auth event is a refusal

log = logging.getLogger(__name__)


def shell(tick_s: float) -> html.Div:
    """The frame around every page: top bar with the alarm banner, the page, the tick."""
    return html.Div(
        [
            dcc.Location(id=ids.URL),
            html.Div(
                [
                    dcc.Link("implant-telemetry", href="/"),
                    html.Div(id=ids.BANNER, className="banner banner-none"),
                    dcc.Link("Audit log", href=paths.AUDIT_PATH, className="nav", id="nav-audit"),
                    html.Div(className="spacer"),
                    html.Span(id=ids.USER_BOX),
                    logout_form(),
                ],
                className="topbar",
            ),
            # A page that takes longer than 300 ms to build shows a spinner until it is there.
            dcc.Loading(
                html.Div(id=ids.PAGE, className="content"),
                delay_show=LOADING_AFTER_MS,
                target_components={ids.PAGE: "children"},
                overlay_style={"visibility": "visible", "opacity": 0.5},
            ),
            ticks.ticker(ids.TICK_BANNER, tick_s),
            *ticks.watchdog(),
        ]
    )


def banner(deps: Deps) -> tuple[list, str]:
    """The highest-priority active alarm across devices (technical alarms count as high), linking to its device."""
    worst: tuple[int, str, str, str] | None = None
    for name, link in deps.links.items():
        snap = link.snapshot()
        if snap.technical_alarm:
            candidate = (int(Priority.HIGH) + 1, f"{name}: {sentence(snap.technical_alarm)}", "alarm-technical", name)
        elif snap.status is not None and snap.status.alarms:
            top = snap.status.alarms[0]
            text = f"{name}: {alarm_label(top.code, top.priority)}"
            candidate = (int(top.priority), text, CSS[top.priority], name)
        else:
            continue
        if worst is None or candidate[0] > worst[0]:
            worst = candidate
    if worst is None:
        return [], "banner banner-none"
    return [dcc.Link(worst[1], href=paths.device_href(worst[3]), id="banner-link")], f"banner {worst[2]}"


def create_app(
    deps: Deps,
    users: UserDB,
    *,
    secret_key: bytes | None = None,
    allowed_hosts: set[str] | None = None,
    fresh_login_s: int = 600,
    idle_timeout_s: float = DEFAULT_IDLE_S,
    tls: bool = False,
    login_throttle: LoginThrottle | None = None,
    sessions: Any = None,
) -> Dash:
    """Build the dashboard app around ``deps``; login required on every page and callback.

    ``login_throttle`` limits log-in attempts (default: ``LoginThrottle()`` with its documented
    thresholds); auth events go to ``deps.store``'s audit log.
    """
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
        idle_timeout_s=idle_timeout_s,
        allowed_hosts=allowed_hosts or {"127.0.0.1", "localhost"},
        tls=tls,
        audit=audit_to_store(deps.store),
        throttle=login_throttle,
        sessions=sessions,
    )
    # Compressed responses (brotli or gzip, as the browser accepts): Dash's bundles and Plotly are
    # mostly JavaScript text, about a quarter of their size compressed (bench/dashboard_pages.py).
    compression.install(app.server)
    exports.register(app.server, deps)
    trial_routes.register(app.server, deps)
    app.server.register_error_handler(UnknownDevice, _unknown_device_response)

    @app.callback(Output(ids.PAGE, "children"), Input(ids.URL, "pathname"))
    def route(path: str | None):
        if path == paths.AUDIT_PATH:
            return audit.layout(deps)
        trial_of = paths.trial_from_pathname(path)
        if trial_of is not None:
            return (
                trial.layout(deps, trial_of)
                if trial_of in deps.links
                else html.Div(f"No device named {trial_of!r}.", id="unknown-device")
            )
        name = paths.device_from_pathname(path)
        if name is None:
            return overview.layout(deps)
        if name in deps.links:
            return device.layout(deps, name)
        return html.Div(f"No device named {name!r}.", id="unknown-device")

    @app.callback(
        Output(ids.BANNER, "children"),
        Output(ids.BANNER, "className"),
        Output(ids.USER_BOX, "children"),
        Input(ids.TICK_BANNER, "n_intervals"),
        running=ticks.paced(ids.TICK_BANNER),
    )
    def top(_n: int):
        children, css = banner(deps)
        user = current_user()
        return children, css, f"{user.username} ({user.role.value})" if user else ""

    overview.register(app, deps)
    device.register(app, deps)
    event_log.register(app, deps)
    programming.register(app, deps)
    trial.register(app, deps)
    ticks.register(app)
    return app


def audit_to_store(store: Any) -> Callable[[AuthEvent], None]:
    """An auth audit hook appending each event to ``store``'s audit log as ``auth <kind>``.

    The row has no device; ``after`` holds the client address and the detail; ``result`` is ``ok``
    for a log-in or log-out, ``refused`` for the rest. A store that cannot write is logged (the
    event is on stderr already) and the request goes on.
    """

    def record(event: AuthEvent) -> None:
        result = "ok" if event.kind in AUTH_OK else "refused"
        after = {"client": event.client, "detail": event.detail}
        try:
            store.add_audit(event.username, event.role, None, f"auth {event.kind}", {}, after, result, None)
        except Exception:
            log.exception("audit entry for auth %s of %r could not be written", event.kind, event.username)

    return record


def _unknown_device_response(error: UnknownDevice) -> Response:
    """A callback named a device no link serves (a stale page or a forged request): 404 with a message."""
    response = jsonify(message=f"No device named {error.name!r}.")
    response.status_code = 404
    return response
