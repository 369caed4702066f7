"""Dashboard log-in, roles and the server-side checks every page and callback passes.

Owns the log-in and log-out views, the log-in gate, and the checks a callback calls:
``require_role(Role.CLINICIAN)`` as the first line of every programming callback refuses viewers
and stale log-ins on the server, whatever the browser sends (docs/security.md R18).
Log-in attempts pass a ``dashboard.throttle.LoginThrottle`` first; failed, throttled and refused
attempts go to the log (stderr) and to the ``audit`` hook, which the app points at the audit log.
What does not depend on users (Host allowlist, origin checks, headers, CSRF tokens, the session
table, accepted hash strengths) lives in ``dashboard.web_security``; the users file, ``Role`` and
``UserDB`` live in ``dashboard.users`` and are re-exported here.

Sessions are kept on the server, keyed by a random id in a signed, HttpOnly, SameSite=Strict
cookie, so log-out and idle expiry revoke them: in this process's memory by default, or in a table
handed in (``implant-dashboard`` keeps them in ``session_db.SqliteSessions`` beside the accounts,
with the signing key, so a restart logs nobody out). Only what a person does restarts the idle
time: a callback fired by a page's interval alone does not, so an open tab that only polls is
logged out after the idle timeout too. Run one server process (the dashboard owns its serial
ports anyway).
Passwords, hashes, session ids and the secret key are never logged.
Must not import the device link, the store or ``device_mock``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import dash
from dash import dcc, html
from flask import Response, current_app, g, has_request_context, jsonify, redirect, request, session

from dashboard import web_security
from dashboard.throttle import LoginThrottle
from dashboard.users import (
    DEFAULT_USERS,
    MAX_PASSWORD,
    MAX_USERNAME,
    USERS_FORMAT,
    AuthConfigError,
    Role,
    User,
    UserDB,
    hash_password,
)
from dashboard.web_security import csrf_ok, csrf_token

logger = logging.getLogger(__name__)

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
CSRF_FIELD = "csrf_token"
EXTENSION_KEY = "implant_dashboard_auth"
DEFAULT_IDLE_S = 8 * 3600.0
DEFAULT_FRESH_LOGIN_S = 600.0

_SESSION_ID = "sid"
_G_USER = "_implant_auth_user"
_NOT_LOOKED_UP = object()


class DenyReason(StrEnum):
    NOT_LOGGED_IN = "not_logged_in"
    ROLE = "role"
    STALE_LOGIN = "stale_login"


class PermissionDenied(PermissionError):
    """A callback refused for this user; ``message`` is fit to show them, ``reason`` says why."""

    def __init__(self, message: str, reason: DenyReason, required: Role) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.required = required


@dataclass(frozen=True)
class AuthEvent:
    """What the audit hook receives: ``login_ok``, ``login_failed``, ``login_throttled``, ``logout`` or ``denied``.

    ``username`` is ``<unknown user>`` for a name that is not an account (it may be a mistyped
    password); ``role`` is the account's role when known; ``client`` the request's address.
    """

    kind: str
    username: str
    detail: str = ""
    role: str = ""
    client: str = ""


# --- per-app state --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _AuthState:
    users: UserDB
    sessions: web_security.SessionTable[User]
    clock: Callable[[], float]
    fresh_login_s: float
    audit: Callable[[AuthEvent], None] | None
    landing: str
    page_exclusions: tuple[str, ...]
    throttle: LoginThrottle

    def record(self, kind: str, username: str, detail: str = "") -> None:
        """Hand an event of this request to the audit hook."""
        if self.audit is not None:
            role = self.users.role_of(username)
            client = (request.remote_addr or "") if has_request_context() else ""
            self.audit(AuthEvent(kind, username, detail, str(role) if role else "", client))


def _state() -> _AuthState | None:
    return current_app.extensions.get(EXTENSION_KEY) if has_request_context() else None


# --- wiring ---------------------------------------------------------------------------------------
def install_auth(
    app: dash.Dash,
    users: UserDB,
    *,
    secret_key: bytes,
    allowed_hosts: Iterable[str],
    fresh_login_s: float = DEFAULT_FRESH_LOGIN_S,
    idle_timeout_s: float = DEFAULT_IDLE_S,
    tls: bool = False,
    clock: Callable[[], float] = time.time,
    audit: Callable[[AuthEvent], None] | None = None,
    throttle: LoginThrottle | None = None,
    sessions: Any = None,
) -> None:
    """Put log-in, the Host/origin checks and the security headers in front of every route of ``app``.

    Call once, after ``app`` is built and before it serves. Refuses a server in debug mode.
    ``clock`` is the time source for idle expiry and freshness; ``audit`` receives log-in,
    log-out, throttling and refusal events (never passwords); ``throttle`` limits log-in attempts
    (default: ``LoginThrottle(clock=clock)`` with its documented thresholds).
    """
    server = app.server
    if server.debug:
        raise RuntimeError("refusing to install auth on a Flask app in debug mode (the debugger runs code)")
    if EXTENSION_KEY in server.extensions:
        raise RuntimeError("install_auth() was already called on this app")
    hosts = web_security.normalise_hosts(allowed_hosts)
    web_security.configure_session_cookie(server, secret_key=secret_key, tls=tls)
    prefix = app.config.routes_pathname_prefix
    assets = prefix + app.config.assets_url_path.strip("/") + "/"
    state = _AuthState(
        users=users,
        # ``sessions``: a table kept outside this process (``session_db.SqliteSessions``), so a restart
        # logs nobody out; by default, this process's memory
        sessions=sessions if sessions is not None else web_security.SessionTable(idle_timeout_s),
        clock=clock,
        fresh_login_s=fresh_login_s,
        audit=audit,
        landing=app.config.requests_pathname_prefix,
        page_exclusions=(prefix + "_", assets, "/static/"),
        throttle=throttle if throttle is not None else LoginThrottle(clock=clock),
    )
    server.extensions[EXTENSION_KEY] = state
    checks = web_security.request_checks(server, allowed_hosts=hosts, tls=tls, form_paths={LOGIN_PATH, LOGOUT_PATH})
    # Ahead of Dash's own hooks, so an unauthenticated request never reaches Dash's first-request setup.
    server.before_request_funcs.setdefault(None, [])[:0] = [checks, _login_gate]
    server.add_url_rule(LOGIN_PATH, "implant_auth_login", _login_view, methods=["GET", "POST"])
    server.add_url_rule(LOGOUT_PATH, "implant_auth_logout", _logout_view, methods=["POST"])
    server.register_error_handler(PermissionDenied, _permission_denied_response)
    web_security.install_response_headers(
        server,
        csp_source=lambda: web_security.content_security_policy(web_security.dash_script_hashes(app)),
        tls=tls,
        cacheable_prefixes=(prefix + "_dash-component-suites/", assets),
    )


def _login_gate() -> Response | None:
    """Let logged-in requests through; send pages to the log-in form and refuse everything else with 401."""
    if request.path in (LOGIN_PATH, LOGOUT_PATH):
        return None
    if current_user() is not None:
        return None
    state = _state()
    assert state is not None  # registered by install_auth together with the state
    if request.method in ("GET", "HEAD") and not request.path.startswith(state.page_exclusions):
        target = request.full_path.rstrip("?")
        return redirect(f"{LOGIN_PATH}?next={quote(target, safe='/')}", code=302)
    response = jsonify(message="Log in first.", login=LOGIN_PATH)
    response.status_code = 401
    return response


def current_user() -> User | None:
    """The user of this request's session, or None; works in views and in (non-background) Dash callbacks."""
    if not has_request_context():
        return None
    cached = g.get(_G_USER, _NOT_LOOKED_UP)
    if cached is not _NOT_LOOKED_UP:
        return cached
    state = _state()
    sid = session.get(_SESSION_ID)
    active = not _only_ticks()
    user = state.sessions.touch(sid, state.clock(), active) if state is not None and isinstance(sid, str) else None
    if user is None and sid is not None:
        session.pop(_SESSION_ID, None)
    setattr(g, _G_USER, user)
    return user


def _only_ticks() -> bool:
    """A callback that only a page's interval fired: polling, not a person (it keeps no session alive).

    Dash names what fired a callback in ``changedPropIds``; an interval's is ``<id>.n_intervals``.
    """
    if request.method != "POST" or not request.path.endswith("/_dash-update-component"):
        return False
    body = request.get_json(silent=True)
    changed = body.get("changedPropIds") if isinstance(body, dict) else None
    return bool(changed) and all(isinstance(c, str) and c.endswith(".n_intervals") for c in changed)


def require_role(role: Role, fresh: bool = True) -> User:
    """The current user if they hold ``role`` (and, when ``fresh``, typed their password recently).

    Call as the first line of every programming callback. Raises :class:`PermissionDenied`, which
    the server answers with 403 and ``{"message", "reason"}`` unless the callback handles it.
    """
    state = _state()
    user = current_user()
    if state is None or user is None:
        message = "You are not logged in, or your session expired: log in again."
        raise PermissionDenied(message, DenyReason.NOT_LOGGED_IN, role)
    denial: PermissionDenied | None = None
    if not user.has_role(role):
        denial = PermissionDenied(
            f"This needs the {role} role; {user.username} is a {user.role}.", DenyReason.ROLE, role
        )
    elif fresh and state.clock() - user.login_at > state.fresh_login_s:
        minutes = state.fresh_login_s / 60
        denial = PermissionDenied(
            f"This needs a password entry within the last {minutes:g} minutes: log in again to confirm.",
            DenyReason.STALE_LOGIN,
            role,
        )
    if denial is not None:
        logger.warning("refused %s for %r: %s", request.path, user.username, denial.reason)
        state.record("denied", user.username, f"{denial.reason}: needs {role}")
        raise denial
    return user


def logout_form(label: str = "Log out", class_name: str = "logout") -> html.Form:
    """A log-out button for a Dash layout; the layout must be a function, as the token is per session.

    Dash also calls a layout function once when it is assigned, outside any request; the form it
    gets then carries no token and is only used for validation.
    """
    token = csrf_token() if has_request_context() else ""
    return html.Form(
        [dcc.Input(type="hidden", name=CSRF_FIELD, value=token), html.Button(label, type="submit")],
        action=LOGOUT_PATH,
        method="POST",
        className=class_name,
    )


def _login_view() -> Response:
    state = _state()
    assert state is not None
    next_path = web_security.safe_next(request.values.get("next"), state.landing)
    if request.method == "GET":
        if request.args.get("logged_out") == "1" and current_user() is None:
            return _login_page(next_path, note="You are logged out.")
        return _login_page(next_path)
    if not csrf_ok(CSRF_FIELD):
        return _login_page(next_path, "The form expired. Please try again.", status=400)
    username = request.form.get("username", "")
    known = username if state.users.role_of(username) else "<unknown user>"  # a typed password stays out
    address = request.remote_addr or "unknown"
    refusal = state.throttle.begin(username, address)
    if refusal is not None:
        logger.warning(
            "throttled log-in for %r from %s: %d failures by %s, retry in %.0f s",
            known, address, refusal.failures, refusal.kind, math.ceil(refusal.wait_s),
        )  # fmt: skip
        state.record("login_throttled", known, f"{refusal.failures} failures by {refusal.kind}")
        page = _login_page(next_path, refusal.message(), username=username, status=429)
        page.headers["Retry-After"] = str(max(1, math.ceil(refusal.wait_s)))
        return page
    user = state.users.verify(username, request.form.get("password", ""), now=state.clock())
    if user is None:
        logger.warning("failed log-in for %r from %s", known, address)
        state.record("login_failed", known)
        return _login_page(next_path, "Wrong user name or password.", username=username, status=401)
    state.throttle.succeeded(username, address)
    old_sid = session.get(_SESSION_ID)
    if isinstance(old_sid, str):
        state.sessions.close(old_sid)
    session.clear()  # a new session id and token: nothing planted before log-in survives it
    session[_SESSION_ID] = state.sessions.open(user, user.login_at)
    csrf_token()
    setattr(g, _G_USER, user)
    logger.info("log-in of %r (%s)", user.username, user.role)
    state.record("login_ok", user.username, str(user.role))
    return redirect(next_path, code=303)


def _logout_view() -> Response:
    state = _state()
    assert state is not None
    user = current_user()
    if user is not None:
        if not csrf_ok(CSRF_FIELD):
            return web_security.plain_response("The log-out form expired; reload the page.", 400)
        state.sessions.close(session[_SESSION_ID])
        logger.info("log-out of %r", user.username)
        state.record("logout", user.username)
    session.clear()
    return redirect(f"{LOGIN_PATH}?logged_out=1", code=303)


def _permission_denied_response(error: PermissionDenied) -> Response:
    response = jsonify(message=error.message, reason=str(error.reason), required=str(error.required))
    response.status_code = 401 if error.reason is DenyReason.NOT_LOGGED_IN else 403
    return response


def _login_page(
    next_path: str, message: str = "", *, username: str = "", status: int = 200, note: str = ""
) -> Response:
    user = current_user()
    if user:
        note = f"Signed in as {user.username}. Enter your password again to confirm."
    page = web_security.render_login_page(
        action=LOGIN_PATH,
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token(),
        next_path=next_path,
        username=user.username if user else username,
        message=message,
        note=note,
    )
    return Response(page, status=status, mimetype="text/html")


__all__ = [
    "DEFAULT_USERS",
    "MAX_PASSWORD",
    "MAX_USERNAME",
    "USERS_FORMAT",
    "AuthConfigError",
    "AuthEvent",
    "DenyReason",
    "PermissionDenied",
    "Role",
    "User",
    "UserDB",
    "current_user",
    "hash_password",
    "install_auth",
    "logout_form",
    "require_role",
]
