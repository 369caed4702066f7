"""Web hardening of the dashboard's Flask server that does not depend on who the users are.

Owns (docs/security.md R18-R21): the ``Host`` header allowlist (DNS rebinding); the ``Origin`` /
``Sec-Fetch-Site`` / ``Content-Type`` checks on state-changing requests (Dash dropped its CSRF
tokens and relies on JSON-only POSTs, plotly/dash #141); the response headers (CSP with Dash's
inline-script hashes, nosniff, no referrer, no caching of dynamic routes, no CORS); the session
cookie settings and the server-side session table; the accepted password-hash strengths; the
log-in page's HTML. ``dashboard.auth`` wires these in front of its log-in gate. This module must
not import ``dashboard.auth``, the device link or the store.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
from collections.abc import Callable, Collection, Iterable
from html import escape
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Request, Response, request, session

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_MIMETYPE = "application/json"
SESSION_COOKIE = "implant_session"
# "__Host-" cookies are only accepted over HTTPS, with Path=/ and no Domain: no subdomain or
# plain-HTTP page can plant or overwrite them.
SECURE_SESSION_COOKIE = "__Host-implant_session"
HSTS_MAX_AGE_S = 31_536_000
MIN_SALT = 16
MIN_SCRYPT_N, MIN_SCRYPT_R = 2**14, 8
MIN_PBKDF2_ITERATIONS = 600_000

CSRF_SESSION_KEY = "csrf"

T = TypeVar("T")

_HOST_RE = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?")


def host_name(host_header: str | None) -> str | None:
    """The host name of a ``Host`` header, lower case, without port or IPv6 brackets; None if malformed."""
    if not host_header:
        return None
    match = _HOST_RE.fullmatch(host_header.strip())
    if match is None:
        return None
    port = match.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        return None
    return match.group("name").strip("[]").lower()


def normalise_hosts(hosts: Iterable[str]) -> frozenset[str]:
    """An allowlist in the form :func:`host_name` compares against; refuses an empty or malformed one."""
    names = set()
    for host in hosts:
        name = host_name(host)
        if name is None or name.startswith("."):
            raise ValueError(f"allowed host {host!r} is not a host name or IP address")
        names.add(name)
    if not names:
        raise ValueError("allowed_hosts is empty: name the hosts the dashboard is reached by")
    return frozenset(names)


def own_origin(req: Request, tls: bool) -> str:
    """The origin a same-origin browser request carries: scheme and the ``Host`` header as sent."""
    scheme = "https" if tls else req.scheme
    return f"{scheme}://{req.headers.get('Host', '').strip().lower()}"


def cross_site_reason(req: Request, *, tls: bool, form_paths: Collection[str]) -> str | None:
    """Why a state-changing request looks cross-site, or None when it is same-origin.

    ``Sec-Fetch-Site`` (when sent) must be ``same-origin``. ``Origin`` (when sent) must be the
    server's own. One exception: with ``Referrer-Policy: no-referrer`` browsers send
    ``Origin: null`` on same-origin *form* posts (Fetch standard, "append a request Origin
    header"), so on the login/logout forms, which carry a CSRF token, ``null`` is accepted when
    ``Sec-Fetch-Site`` vouches for the same origin. Dash's callback ``fetch`` always sends the
    real origin.
    """
    if req.method not in UNSAFE_METHODS:
        return None
    fetch_site = req.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site != "same-origin":
        return f"Sec-Fetch-Site is {fetch_site!r}"
    origin = req.headers.get("Origin")
    if origin is None:
        return None
    if origin == "null":
        if fetch_site == "same-origin" and req.path in form_paths:
            return None
        return "Origin is null"
    if origin.strip().lower() != own_origin(req, tls):
        return "Origin is another site"
    return None


def content_security_policy(script_hashes: Iterable[str]) -> str:
    """The CSP: own scripts plus Dash's inline ones by hash; inline styles (plotly.js needs them)."""
    script_src = " ".join(["'self'", *script_hashes])
    return (
        "default-src 'self'; "
        f"script-src {script_src}; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "object-src 'none'; "
        "base-uri 'none'; "
        "form-action 'self'; "
        "frame-ancestors 'none'"
    )


def dash_script_hashes(dash_app: object) -> list[str]:
    """Hashes of the Dash app's inline scripts (renderer and clientside callbacks), if the version has them.

    ``Dash.csp_hashes()`` (since dash 1.15, PR #1371) also folds the process-wide clientside
    callbacks into the app, so it is asked per response rather than once at install time, when
    callbacks may still be missing.
    """
    csp_hashes: Callable[[], Iterable[str]] | None = getattr(dash_app, "csp_hashes", None)
    return list(csp_hashes()) if csp_hashes is not None else []


def add_security_headers(response: Response, *, csp: str, tls: bool, cacheable: bool) -> Response:
    """Set the R21 headers on ``response`` and strip any CORS header a view may have added."""
    for name in [name for name in response.headers.keys() if name.lower().startswith("access-control-")]:
        del response.headers[name]
    headers = response.headers
    headers["Content-Security-Policy"] = csp
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"
    if tls:
        headers["Strict-Transport-Security"] = f"max-age={HSTS_MAX_AGE_S}"
    if not cacheable:
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    return response


def configure_session_cookie(server: Flask, *, secret_key: bytes, tls: bool) -> None:
    """Sign sessions with ``secret_key``; cookie HttpOnly, SameSite=Strict, Secure and ``__Host-`` under TLS."""
    if not isinstance(secret_key, bytes) or len(secret_key) < 32:
        raise ValueError("secret_key must be at least 32 random bytes (secrets.token_bytes(32))")
    server.secret_key = secret_key
    server.config.update(
        SESSION_COOKIE_NAME=SECURE_SESSION_COOKIE if tls else SESSION_COOKIE,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=tls,
        SESSION_COOKIE_DOMAIN=None,
        SESSION_COOKIE_PATH="/",
        # A browser-session cookie, not re-sent on every response: the server's session table
        # enforces the idle limit, and the cacheable bundles carry no Set-Cookie.
        SESSION_REFRESH_EACH_REQUEST=False,
    )


def request_checks(
    server: Flask,
    *,
    allowed_hosts: frozenset[str],
    tls: bool,
    form_paths: Collection[str],
) -> Callable[[], Response | None]:
    """The before-request check every request passes before any view or login gate runs.

    Order: debug refused (500), ``Host`` outside the allowlist (400), cross-site state change
    (403), state change that is not JSON outside ``form_paths`` (415). Returns the function for
    the caller to register, so it can run ahead of Dash's own hooks.
    """

    def check_request() -> Response | None:
        if server.debug:
            return plain_response("debug mode is refused", 500)
        if host_name(request.headers.get("Host")) not in allowed_hosts:
            return plain_response("unknown host", 400)
        reason = cross_site_reason(request, tls=tls, form_paths=form_paths)
        if reason is not None:
            return plain_response(f"cross-site request refused: {reason}", 403)
        if request.method in UNSAFE_METHODS and request.path not in form_paths and request.mimetype != JSON_MIMETYPE:
            return plain_response("only application/json requests are accepted here", 415)
        return None

    return check_request


def install_response_headers(
    server: Flask, *, csp_source: Callable[[], str], tls: bool, cacheable_prefixes: tuple[str, ...]
) -> None:
    """Register the after-request hook that adds the security headers to every response.

    Paths under ``cacheable_prefixes`` (Dash's fingerprinted bundles, the CSS assets) keep their
    caching headers; every other route is dynamic and gets ``no-store``.
    """

    def add_headers(response: Response) -> Response:
        cacheable = request.path.startswith(cacheable_prefixes)
        return add_security_headers(response, csp=csp_source(), tls=tls, cacheable=cacheable)

    server.after_request(add_headers)


def plain_response(text: str, status: int) -> Response:
    """A short text/plain response (no HTML, so nothing to escape)."""
    return Response(text + "\n", status=status, mimetype="text/plain")


def safe_next(target: str | None, default: str) -> str:
    """``target`` when it is a path on this site, else ``default`` (no open redirect via ``next``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def csrf_token() -> str:
    """This session's CSRF token (made on first use), for forms that post to this server."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str):
        token = session[CSRF_SESSION_KEY] = secrets.token_urlsafe(32)
    return token


def csrf_ok(field: str) -> bool:
    """True when the posted form field ``field`` carries this session's CSRF token (constant-time compare)."""
    expected = session.get(CSRF_SESSION_KEY)
    sent = request.form.get(field, "")
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), sent.encode())


def password_hash_problem(stored: str) -> str | None:
    """Why a stored werkzeug hash is not accepted, or None: scrypt N ≥ 2^14 and r ≥ 8, or PBKDF2-SHA256/512 ≥ 600k."""
    parts = stored.split("$")
    if len(parts) != 3 or len(parts[1]) < MIN_SALT or not parts[2]:
        return f"is not a werkzeug 'method$salt$hash' string with a salt of {MIN_SALT}+ characters"
    method = parts[0].split(":")
    try:
        if method[0] == "scrypt" and len(method) == 4:
            n, r, _p = (int(x) for x in method[1:])
            return None if n >= MIN_SCRYPT_N and r >= MIN_SCRYPT_R else f"uses weak scrypt parameters {parts[0]}"
        if method[0] == "pbkdf2" and len(method) == 3 and method[1] in {"sha256", "sha512"}:
            return None if int(method[2]) >= MIN_PBKDF2_ITERATIONS else f"uses too few PBKDF2 iterations {parts[0]}"
    except ValueError:
        pass
    return f"uses an unaccepted hash method {parts[0]!r} (use scrypt or pbkdf2:sha256)"


class SessionTable(Generic[T]):
    """Live sessions by random id, each holding a value (the user); idle ones expire on look-up. Thread-safe."""

    def __init__(self, idle_timeout_s: float) -> None:
        self._idle_s = idle_timeout_s
        self._lock = threading.Lock()
        self._live: dict[str, tuple[T, float]] = {}

    def open(self, value: T, now: float) -> str:
        """A new random session id for ``value``; drops expired sessions on the way."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._live = {k: v for k, v in self._live.items() if now - v[1] <= self._idle_s}
            self._live[sid] = (value, now)
        return sid

    def touch(self, sid: str, now: float, active: bool = True) -> T | None:
        """The session's value; None (and forgotten) if unknown or idle too long.

        ``active``: a person did something, so the idle time starts again; a page's own polling
        (``active=False``) reads the session without keeping it alive.
        """
        with self._lock:
            found = self._live.get(sid)
            if found is None:
                return None
            if now - found[1] > self._idle_s:
                del self._live[sid]
                return None
            if active:
                self._live[sid] = (found[0], now)
            return found[0]

    def close(self, sid: str) -> None:
        with self._lock:
            self._live.pop(sid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._live)


_LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Log in - implant-telemetry</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f2f4f7;color:#17324d}}
header{{background:#17324d;color:#fff;padding:.8rem 1.2rem;font-weight:600;letter-spacing:.02em}}
main{{max-width:22rem;margin:4rem auto;padding:1.6rem 1.8rem;background:#fff;border-radius:8px;
box-shadow:0 1px 4px rgba(23,50,77,.15)}}
h1{{font-size:1.25rem;margin:0 0 .2rem}}p.lead{{margin:0 0 1rem;color:#5b6b7b;font-size:.9rem}}
label{{display:block;margin-top:.8rem;font-size:.9rem}}
input{{display:block;width:100%;box-sizing:border-box;margin-top:.3rem;padding:.45rem .5rem;
border:1px solid #b8c3cf;border-radius:4px;font-size:1rem}}
button{{margin-top:1.2rem;width:100%;padding:.55rem;border:0;border-radius:4px;background:#17324d;color:#fff;
font-size:1rem;cursor:pointer}}
.message{{color:#b00020;min-height:1.2em}}.note{{color:#1b6e3a;min-height:1.2em}}
</style>
</head><body><header>implant-telemetry</header><main>
<h1>Log in</h1><p class="lead">Implant telemetry dashboard: stimulators and drug pumps, live.</p>
<p class="note" role="status">{note}</p><p class="message" role="alert">{message}</p>
<form method="post" action="{action}">
<input type="hidden" name="{csrf_field}" value="{csrf_token}"><input type="hidden" name="next" value="{next_path}">
<label>User name<input name="username" value="{username}" autocomplete="username" required maxlength="64"></label>
<label>Password<input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Log in</button></form></main></body></html>
"""


def render_login_page(**fields: str) -> str:
    """The log-in form, every field HTML-escaped; no script, so the CSP needs no hash for it."""
    return _LOGIN_PAGE.format(**{name: escape(value, quote=True) for name, value in fields.items()})
