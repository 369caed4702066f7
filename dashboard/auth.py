"""Dashboard log-in, roles and the server-side checks every page and callback passes.

Owns the users file (username, role, scrypt/PBKDF2 hash; no built-in accounts: the first run
creates random passwords), the log-in and log-out views, the log-in gate, and the checks a
callback calls: ``require_role(Role.CLINICIAN)`` as the first line of every programming callback
refuses viewers and stale log-ins on the server, whatever the browser sends (SECURITY.md R18).
What does not depend on users (Host allowlist, origin checks, headers, CSRF tokens, the session
table, accepted hash strengths) lives in ``dashboard.web_security``.

Sessions live in memory in this process, keyed by a random id in a signed, HttpOnly,
SameSite=Strict cookie, so log-out and idle expiry revoke them on the server; a restart logs
everyone out. Run one server process (the dashboard owns its serial port anyway).
Passwords, hashes, session ids and the secret key are never logged.
Must not import the device link, the store or ``device_mock``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote

import dash
from dash import dcc, html
from flask import Response, current_app, g, has_request_context, jsonify, redirect, request, session
from werkzeug.security import check_password_hash, generate_password_hash

from dashboard import web_security
from dashboard.web_security import csrf_ok, csrf_token

logger = logging.getLogger(__name__)

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
CSRF_FIELD = "csrf_token"
EXTENSION_KEY = "implant_dashboard_auth"
USERS_FORMAT = "implant-dashboard-users/1"
DEFAULT_USERS = {"clinician": "clinician", "viewer": "viewer"}  # username -> role, never passwords
GENERATED_PASSWORD_BYTES = 18  # token_urlsafe(18): 24 characters, 144 bits
MAX_USERNAME = 64
MAX_PASSWORD = 1024
DEFAULT_IDLE_S = 8 * 3600.0
DEFAULT_FRESH_LOGIN_S = 600.0

_SESSION_ID = "sid"
_USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
_G_USER = "_implant_auth_user"
_NOT_LOOKED_UP = object()


class Role(StrEnum):
    """Dashboard roles, least privileged first: a clinician may do everything a viewer may."""

    VIEWER = "viewer"
    CLINICIAN = "clinician"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


@dataclass(frozen=True)
class User:
    """A logged-in user; ``login_at`` is the clock time of the last password entry."""

    username: str
    role: Role
    login_at: float

    def has_role(self, role: Role) -> bool:
        return self.role.rank >= role.rank


class AuthConfigError(ValueError):
    """The users file or the auth settings are unusable; the message names the file and the problem."""


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
    """What the audit hook receives: ``login_ok``, ``login_failed``, ``logout`` or ``denied``."""

    kind: str
    username: str
    detail: str = ""


# --- the users file -------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    """Werkzeug's default: ``scrypt:32768:8:1$salt$hash``."""
    return generate_password_hash(password)


@dataclass(frozen=True)
class _Account:
    role: Role
    password_hash: str


class UserDB:
    """The dashboard's accounts, read from a JSON users file; checks passwords in constant time."""

    def __init__(self, accounts: dict[str, _Account], source: Path | None = None) -> None:
        if not accounts:
            raise AuthConfigError(f"users file {source}: no users")
        self._accounts = dict(accounts)
        self.source = source
        # Unknown users are checked against this hash, made with the same method as a real one,
        # so "no such user" and "wrong password" cost the same time.
        method = next(iter(accounts.values())).password_hash.split("$", 1)[0]
        self._dummy_hash = generate_password_hash(secrets.token_urlsafe(16), method=method)

    @property
    def usernames(self) -> list[str]:
        return sorted(self._accounts)

    def role_of(self, username: str) -> Role | None:
        account = self._accounts.get(username)
        return account.role if account else None

    def verify(self, username: str, password: str, *, now: float | None = None) -> User | None:
        """The user if ``password`` is theirs; one hash check whether or not the user exists."""
        account = self._accounts.get(username) if len(username) <= MAX_USERNAME else None
        stored = account.password_hash if account else self._dummy_hash
        matches = check_password_hash(stored, password[:MAX_PASSWORD]) and len(password) <= MAX_PASSWORD
        if account is None or not matches:
            return None
        return User(username, account.role, time.time() if now is None else now)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> UserDB:
        """Read and check a users file; :class:`AuthConfigError` names the file and what is wrong."""
        source = Path(path)
        try:
            mode = source.stat().st_mode
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise AuthConfigError(
                f"users file {source} does not exist; create it with UserDB.create_default()"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise AuthConfigError(f"users file {source} cannot be read: {exc}") from exc
        if os.name == "posix" and mode & 0o077:
            raise AuthConfigError(f"users file {source} is open to other users (mode {mode & 0o777:o}); chmod 600 it")
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AuthConfigError(f"users file {source} is not JSON: {exc}") from None
        return cls(_parse_accounts(document, source), source)

    @classmethod
    def create_default(cls, path: str | os.PathLike[str]) -> dict[str, str]:
        """First run: write a users file with one clinician and one viewer and random passwords.

        Returns ``{username: password}`` once, for the caller to show; only hashes are stored.
        Refuses to overwrite an existing file. The file is written whole (temporary file, then a
        hard link that fails if the name exists) with mode 0600.
        """
        passwords = {name: secrets.token_urlsafe(GENERATED_PASSWORD_BYTES) for name in DEFAULT_USERS}
        users = [
            {"username": name, "role": role, "password_hash": hash_password(passwords[name])}
            for name, role in DEFAULT_USERS.items()
        ]
        text = json.dumps({"format": USERS_FORMAT, "users": users}, indent=2) + "\n"
        _write_new_private_file(Path(path), text)
        logger.info("created users file %s with users %s", path, ", ".join(DEFAULT_USERS))
        return passwords


def _parse_accounts(document: object, source: Path) -> dict[str, _Account]:
    where = f"users file {source}"
    if not isinstance(document, dict) or document.get("format") != USERS_FORMAT:
        raise AuthConfigError(f"{where}: expected an object with format {USERS_FORMAT!r}")
    entries = document.get("users")
    if not isinstance(entries, list):
        raise AuthConfigError(f"{where}: 'users' must be a list")
    accounts: dict[str, _Account] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"username", "role", "password_hash"}:
            raise AuthConfigError(f"{where}: user #{index} must have exactly username, role, password_hash")
        name, role, stored = entry["username"], entry["role"], entry["password_hash"]
        if not isinstance(name, str) or not _USERNAME_RE.fullmatch(name):
            raise AuthConfigError(f"{where}: user #{index} has an invalid username")
        if name in accounts:
            raise AuthConfigError(f"{where}: user {name!r} appears twice")
        if role not in {r.value for r in Role}:
            raise AuthConfigError(f"{where}: user {name!r} has unknown role {role!r} (known: viewer, clinician)")
        problem = web_security.password_hash_problem(stored) if isinstance(stored, str) else "is not a string"
        if problem:
            raise AuthConfigError(f"{where}: the password hash of {name!r} {problem}")
        accounts[name] = _Account(Role(role), stored)
    return accounts


def _write_new_private_file(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".users-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, target)
    except FileExistsError:
        raise AuthConfigError(f"users file {target} already exists; not overwriting it") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


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

    def record(self, event: AuthEvent) -> None:
        if self.audit is not None:
            self.audit(event)


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
) -> None:
    """Put log-in, the Host/origin checks and the security headers in front of every route of ``app``.

    Call once, after ``app`` is built and before it serves. Refuses a server in debug mode.
    ``clock`` is the time source for idle expiry and freshness; ``audit`` receives log-in,
    log-out and refusal events (never passwords).
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
        sessions=web_security.SessionTable(idle_timeout_s),
        clock=clock,
        fresh_login_s=fresh_login_s,
        audit=audit,
        landing=app.config.requests_pathname_prefix,
        page_exclusions=(prefix + "_", assets, "/static/"),
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
    user = state.sessions.touch(sid, state.clock()) if state is not None and isinstance(sid, str) else None
    if user is None and sid is not None:
        session.pop(_SESSION_ID, None)
    setattr(g, _G_USER, user)
    return user


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
        state.record(AuthEvent("denied", user.username, f"{denial.reason}: needs {role}"))
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
        return _login_page(next_path)
    if not csrf_ok(CSRF_FIELD):
        return _login_page(next_path, "The form expired. Please try again.", status=400)
    username = request.form.get("username", "")
    user = state.users.verify(username, request.form.get("password", ""), now=state.clock())
    if user is None:
        known = username if state.users.role_of(username) else "<unknown user>"  # a typed password stays out
        logger.warning("failed log-in for %r from %s", known, request.remote_addr)
        state.record(AuthEvent("login_failed", known))
        return _login_page(next_path, "Wrong user name or password.", username=username, status=401)
    old_sid = session.get(_SESSION_ID)
    if isinstance(old_sid, str):
        state.sessions.close(old_sid)
    session.clear()  # a new session id and token: nothing planted before log-in survives it
    session[_SESSION_ID] = state.sessions.open(user, user.login_at)
    csrf_token()
    setattr(g, _G_USER, user)
    logger.info("log-in of %r (%s)", user.username, user.role)
    state.record(AuthEvent("login_ok", user.username, str(user.role)))
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
        state.record(AuthEvent("logout", user.username))
    session.clear()
    return redirect(LOGIN_PATH, code=303)


def _permission_denied_response(error: PermissionDenied) -> Response:
    response = jsonify(message=error.message, reason=str(error.reason), required=str(error.required))
    response.status_code = 401 if error.reason is DenyReason.NOT_LOGGED_IN else 403
    return response


def _login_page(next_path: str, message: str = "", *, username: str = "", status: int = 200) -> Response:
    user = current_user()
    note = f"Signed in as {user.username}. Enter your password again to confirm." if user else ""
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
