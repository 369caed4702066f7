"""Dashboard access control: users file, log-in, the gate on every route, role and freshness checks in
callbacks, Host/origin/content-type checks, cookies and security headers (docs/security.md R18-R21).

Each test builds a minimal Dash app with one layout and one programming callback that calls
``require_role(Role.CLINICIAN)`` first, installs auth with an injected clock, and drives it with
Flask's test client, the way a forged browser request would arrive.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

import dash
import pytest
from dash import Input, Output, html
from flask.testing import FlaskClient

from dashboard import auth
from dashboard import users as users_module
from dashboard.auth import (
    AuthConfigError,
    AuthEvent,
    DenyReason,
    PermissionDenied,
    Role,
    UserDB,
    current_user,
    install_auth,
    require_role,
)
from dashboard.web_security import safe_next

SAME_ORIGIN = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
CALLBACK_BODY = {
    "output": "result.children",
    "outputs": {"id": "result", "property": "children"},
    "inputs": [{"id": "program", "property": "n_clicks", "value": 1}],
    "changedPropIds": ["program.n_clicks"],
    "state": [],
}
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Harness:
    app: dash.Dash
    client: FlaskClient
    clock: FakeClock
    programmed: list[tuple[str, int]] = field(default_factory=list)
    events: list[AuthEvent] = field(default_factory=list)

    def login(self, username: str, password: str, next_path: str | None = None, client: FlaskClient | None = None):
        client = client or self.client
        token = CSRF_RE.search(client.get("/login").text).group(1)
        form = {"csrf_token": token, "username": username, "password": password}
        if next_path is not None:
            form["next"] = next_path
        return client.post("/login", data=form, headers=SAME_ORIGIN)

    def program(self, **kwargs):
        headers = kwargs.pop("headers", SAME_ORIGIN)
        return self.client.post("/_dash-update-component", json=CALLBACK_BODY, headers=headers, **kwargs)


def build_app(users: UserDB, clock: FakeClock, programmed: list, events: list, *, tls: bool = False) -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = html.Div([html.Button("Program", id="program"), html.Div(id="result")])

    @app.callback(Output("result", "children"), Input("program", "n_clicks"), prevent_initial_call=True)
    def program(n_clicks):
        user = require_role(Role.CLINICIAN)
        programmed.append((user.username, n_clicks))
        return f"programmed by {user.username}"

    install_auth(
        app,
        users,
        secret_key=secrets.token_bytes(32),
        allowed_hosts={"localhost", "127.0.0.1"},
        tls=tls,
        clock=clock,
        audit=events.append,
    )
    return app


@pytest.fixture(scope="module")
def users_file(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("auth") / "users.json"
    return path, UserDB.create_default(path)


@pytest.fixture(scope="module")
def users(users_file) -> UserDB:
    return UserDB.load(users_file[0])


@pytest.fixture
def passwords(users_file) -> dict[str, str]:
    return users_file[1]


@pytest.fixture
def harness(users) -> Harness:
    clock, programmed, events = FakeClock(), [], []
    app = build_app(users, clock, programmed, events)
    return Harness(app, app.server.test_client(), clock, programmed, events)


@pytest.fixture
def clinician(harness, passwords) -> Harness:
    assert harness.login("clinician", passwords["clinician"]).status_code == 303
    return harness


# --- the users file -------------------------------------------------------------------------------
def test_first_run_creates_a_private_file_with_two_random_accounts(users_file):
    path, passwords = users_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(passwords) == {"clinician", "viewer"}
    assert all(len(p) >= 16 for p in passwords.values())
    assert passwords["clinician"] != passwords["viewer"]
    text = path.read_text()
    assert all(p not in text for p in passwords.values())
    roles = {u["username"]: u["role"] for u in json.loads(text)["users"]}
    assert roles == {"clinician": "clinician", "viewer": "viewer"}
    first, second = UserDB.load(path), UserDB.load(path)
    for db in (first, second):
        assert db.verify("clinician", passwords["clinician"]).role is Role.CLINICIAN
        assert db.verify("viewer", passwords["viewer"]).role is Role.VIEWER
        assert db.verify("viewer", passwords["clinician"]) is None
    assert not list(path.parent.glob(".users-*")), "temporary file left behind"


def test_no_built_in_passwords_every_run_differs_and_nothing_is_overwritten(tmp_path, users_file):
    with pytest.raises(AuthConfigError, match="does not exist"):
        UserDB.load(tmp_path / "users.json")
    other = UserDB.create_default(tmp_path / "users.json")
    assert set(other.values()).isdisjoint(users_file[1].values())
    before = (tmp_path / "users.json").read_bytes()
    with pytest.raises(AuthConfigError, match="already exists"):
        UserDB.create_default(tmp_path / "users.json")
    assert (tmp_path / "users.json").read_bytes() == before


def _users_doc(role: str = "clinician", stored: str | None = None) -> str:
    entry = {"username": "alice", "role": role, "password_hash": stored or auth.hash_password("x" * 20)}
    return json.dumps({"format": auth.USERS_FORMAT, "users": [entry]})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "not JSON"),
        (_users_doc(role="admin"), "unknown role 'admin'"),
        (_users_doc(stored="plain$0123456789abcdef$secret"), "unaccepted hash method"),
        (_users_doc(stored="md5$0123456789abcdef$d41d8cd98f00b204"), "unaccepted hash method"),
        (_users_doc(stored="pbkdf2:sha256:1000$0123456789abcdef$00ff"), "too few PBKDF2 iterations"),
        (_users_doc(stored="scrypt:1024:8:1$0123456789abcdef$00ff"), "weak scrypt parameters"),
        (_users_doc(stored="hunter2"), "method$salt$hash"),
        (json.dumps({"format": auth.USERS_FORMAT, "users": []}), "no users"),
        (json.dumps({"users": []}), "format"),
    ],
)
def test_bad_users_files_are_refused_naming_file_and_problem(tmp_path, text, problem):
    path = tmp_path / "users.json"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(AuthConfigError) as info:
        UserDB.load(path)
    assert str(path) in str(info.value)
    assert problem in str(info.value)
    assert isinstance(info.value, ValueError)


def test_users_file_readable_by_others_is_refused(tmp_path):
    UserDB.create_default(tmp_path / "users.json")
    (tmp_path / "users.json").chmod(0o644)
    with pytest.raises(AuthConfigError, match="chmod 600"):
        UserDB.load(tmp_path / "users.json")


def test_unknown_user_and_wrong_password_take_the_same_path(users, passwords, monkeypatch):
    checked: list[str] = []
    real = users_module.check_password_hash
    monkeypatch.setattr(users_module, "check_password_hash", lambda h, p: checked.append(h.split("$")[0]) or real(h, p))
    assert users.verify("nobody", "whatever") is None
    assert users.verify("viewer", "wrong-password") is None
    assert users.verify("x" * 500, "whatever") is None
    assert checked == ["scrypt:32768:8:1"] * 3
    assert users.verify("viewer", passwords["viewer"]) is not None


# --- log-in and log-out ---------------------------------------------------------------------------
def test_login_success_opens_a_session(harness, passwords):
    response = harness.login("clinician", passwords["clinician"], next_path="/device/3")
    assert response.status_code == 303
    assert response.headers["Location"] == "/device/3"
    page = harness.client.get("/")
    assert page.status_code == 200
    assert '<div id="react-entry-point">' in page.text
    assert [e.kind for e in harness.events] == ["login_ok"]


def test_login_failures_look_the_same_and_never_log_the_password(harness, passwords, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = harness.login("viewer", "not-the-password")
    unknown = harness.login("nobody", passwords["viewer"])
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.text.replace("viewer", "U") == unknown.text.replace("nobody", "U")
    assert harness.client.get("/").status_code == 302
    assert [(e.kind, e.username) for e in harness.events] == [
        ("login_failed", "viewer"),
        ("login_failed", "<unknown user>"),
    ]
    assert passwords["viewer"] not in caplog.text
    assert "not-the-password" not in caplog.text
    assert passwords["viewer"] not in repr(harness.events)


def test_login_post_needs_the_session_csrf_token(harness, passwords):
    form = {"username": "clinician", "password": passwords["clinician"]}
    assert harness.client.post("/login", data=form).status_code == 400
    harness.client.get("/login")
    assert harness.client.post("/login", data={**form, "csrf_token": "forged"}).status_code == 400
    assert harness.client.get("/").status_code == 302
    assert harness.events == []


def test_login_page_escapes_what_it_echoes(harness):
    response = harness.login('<script>alert(1)</script>"', "x", next_path='/"><script>alert(2)</script>')
    assert response.status_code == 401
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in response.text
    assert "/&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in response.text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/device/3?tab=history", "/device/3?tab=history"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        (None, "/"),
    ],
)
def test_next_only_redirects_within_the_site(target, expected):
    assert safe_next(target, "/") == expected


def test_login_regenerates_the_session(harness, passwords):
    harness.client.get("/login")
    planted = harness.client.get_cookie("implant_session").value
    attacker = harness.app.server.test_client()
    attacker.set_cookie("implant_session", planted)
    harness.login("clinician", passwords["clinician"])
    assert harness.client.get_cookie("implant_session").value != planted
    assert harness.client.get("/").status_code == 200
    assert attacker.get("/").status_code == 302


def test_logout_needs_csrf_and_revokes_the_session_on_the_server(clinician):
    stolen = clinician.client.get_cookie("implant_session").value
    assert clinician.client.post("/logout", data={}, headers=SAME_ORIGIN).status_code == 400
    assert clinician.client.get("/").status_code == 200
    token = CSRF_RE.search(clinician.client.get("/login").text).group(1)
    response = clinician.client.post("/logout", data={"csrf_token": token}, headers=SAME_ORIGIN)
    assert (response.status_code, response.headers["Location"]) == (303, "/login?logged_out=1")
    assert "You are logged out." in clinician.client.get("/login?logged_out=1").text
    assert clinician.client.get("/").status_code == 302
    replay = clinician.app.server.test_client()
    replay.set_cookie("implant_session", stolen)
    assert replay.get("/").status_code == 302
    assert clinician.events[-1].kind == "logout"


def test_logout_form_in_a_layout_carries_the_session_token(users, passwords):
    app = dash.Dash(__name__)
    app.layout = lambda: html.Div([auth.logout_form(), html.Div(id="page")])
    install_auth(app, users, secret_key=secrets.token_bytes(32), allowed_hosts={"localhost"})
    client = app.server.test_client()
    token = CSRF_RE.search(client.get("/login").text).group(1)
    form = {"csrf_token": token, "username": "viewer", "password": passwords["viewer"]}
    assert client.post("/login", data=form, headers=SAME_ORIGIN).status_code == 303
    layout = client.get("/_dash-layout").json
    form = layout["props"]["children"][0]
    assert (form["type"], form["props"]["action"], form["props"]["method"]) == ("Form", "/logout", "POST")
    hidden = form["props"]["children"][0]["props"]
    assert (hidden["type"], hidden["name"]) == ("hidden", "csrf_token")
    token = hidden["value"]
    assert client.post("/logout", data={"csrf_token": token}, headers=SAME_ORIGIN).status_code == 303
    assert client.get("/").status_code == 302


def test_idle_session_expires(clinician):
    clinician.clock.advance(auth.DEFAULT_IDLE_S - 1)
    assert clinician.client.get("/").status_code == 200
    clinician.clock.advance(auth.DEFAULT_IDLE_S + 1)
    assert clinician.client.get("/").status_code == 302


# --- the gate on every route ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 302),
        ("GET", "/device/7", 302),
        ("GET", "/_dash-layout", 401),
        ("GET", "/_dash-dependencies", 401),
        ("POST", "/_dash-update-component", 401),
        ("GET", "/_dash-component-suites/dash/deps/polyfill@7.v4_4_1m1.12.1.min.js", 401),
        ("GET", "/_favicon.ico", 401),
        ("GET", "/assets/style.css", 401),
    ],
)
def test_every_route_needs_a_login(harness, method, path, status):
    response = harness.client.open(path, method=method, json=CALLBACK_BODY if method == "POST" else None)
    assert response.status_code == status
    if status == 302:
        assert response.headers["Location"].startswith("/login?next=")
    else:
        assert response.json["login"] == "/login"
    assert harness.programmed == []


def test_redirect_to_login_keeps_the_page(harness):
    assert harness.client.get("/device/7?tab=1").headers["Location"] == "/login?next=/device/7%3Ftab%3D1"


def test_viewer_can_read_but_its_forged_callback_is_refused(harness, passwords):
    harness.login("viewer", passwords["viewer"])
    assert harness.client.get("/_dash-layout").status_code == 200
    assert harness.client.get("/_dash-dependencies").status_code == 200
    response = harness.program()
    assert response.status_code == 403
    assert response.json["reason"] == DenyReason.ROLE
    assert "clinician" in response.json["message"]
    assert harness.programmed == []
    assert harness.events[-1] == AuthEvent("denied", "viewer", "role: needs clinician", "viewer", "127.0.0.1")


def test_fresh_clinician_may_program(clinician):
    clinician.clock.advance(auth.DEFAULT_FRESH_LOGIN_S - 1)
    response = clinician.program()
    assert response.status_code == 200
    assert response.json["response"]["result"]["children"] == "programmed by clinician"
    assert clinician.programmed == [("clinician", 1)]


def test_stale_clinician_must_log_in_again(clinician, passwords):
    clinician.clock.advance(auth.DEFAULT_FRESH_LOGIN_S + 1)
    assert clinician.client.get("/_dash-layout").status_code == 200  # still logged in for viewing
    response = clinician.program()
    assert response.status_code == 403
    assert response.json["reason"] == DenyReason.STALE_LOGIN
    assert "log in again" in response.json["message"]
    assert clinician.programmed == []
    assert "Signed in as clinician" in clinician.client.get("/login").text
    clinician.login("clinician", passwords["clinician"])
    assert clinician.program().status_code == 200
    assert clinician.programmed == [("clinician", 1)]


def test_require_role_outside_a_request_refuses():
    assert current_user() is None
    with pytest.raises(PermissionDenied) as info:
        require_role(Role.VIEWER, fresh=False)
    assert info.value.reason is DenyReason.NOT_LOGGED_IN
    assert isinstance(info.value, PermissionError)


# --- Host, origin and content type ----------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/login", "/_dash-layout"])
def test_host_outside_the_allowlist_gets_400(harness, path):
    assert harness.client.get(path, headers={"Host": "evil.example"}).status_code == 400
    assert harness.client.get(path, headers={"Host": "localhost.evil.example:8050"}).status_code == 400


def test_allowed_host_with_port_passes(harness):
    assert harness.client.get("/login", headers={"Host": "127.0.0.1:8050"}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_callback_post_must_be_json(clinician, content_type):
    """The content types a cross-site form or no-preflight fetch can send are refused before Dash parses them."""
    body = json.dumps(CALLBACK_BODY)
    response = clinician.client.post(
        "/_dash-update-component", data=body, content_type=content_type, headers=SAME_ORIGIN
    )
    assert response.status_code == 415
    assert "only application/json" in response.text
    assert clinician.programmed == []
    assert clinician.client.post("/", data=body, content_type=content_type, headers=SAME_ORIGIN).status_code == 415


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost:9999"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
    ],
)
def test_cross_site_callback_gets_403(clinician, headers):
    response = clinician.program(headers=headers)
    assert response.status_code == 403
    assert clinician.programmed == []
    assert not [h for h in response.headers.keys() if h.lower().startswith("access-control-")]


def test_callback_without_origin_headers_is_same_origin(clinician):
    assert clinician.program(headers={}).status_code == 200


def test_login_form_accepts_null_origin_only_with_same_origin_fetch_metadata(harness, passwords):
    token = CSRF_RE.search(harness.client.get("/login").text).group(1)
    form = {"csrf_token": token, "username": "viewer", "password": passwords["viewer"]}
    assert harness.client.post("/login", data=form, headers={"Origin": "null"}).status_code == 403
    response = harness.client.post("/login", data=form, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 303


# --- cookies and headers --------------------------------------------------------------------------
def test_session_cookie_is_httponly_and_samesite_strict(harness):
    cookie = harness.client.get("/login").headers["Set-Cookie"]
    assert cookie.startswith("implant_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_under_tls(users):
    app = build_app(users, FakeClock(), [], [], tls=True)
    response = app.server.test_client().get("/login", base_url="https://localhost")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-implant_session=")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def _assert_security_headers(response) -> str:
    csp = response.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:"):
        assert directive in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Access-Control-Allow-Origin" not in response.headers
    return csp


@pytest.mark.parametrize("path", ["/", "/login", "/_dash-layout", "/_dash-dependencies"])
def test_security_headers_on_every_response(clinician, path):
    response = clinician.client.get(path)
    assert response.status_code == 200
    _assert_security_headers(response)


def test_security_headers_on_refusals_and_callbacks(harness, clinician):
    _assert_security_headers(harness.app.server.test_client().get("/_dash-layout"))
    _assert_security_headers(harness.app.server.test_client().get("/", headers={"Host": "evil.example"}))
    _assert_security_headers(clinician.program())


def test_csp_allows_exactly_dash_inline_scripts_by_hash(clinician):
    response = clinician.client.get("/")
    csp = _assert_security_headers(response)
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src "))
    page = re.sub(r"<!--.*?-->", "", response.text, flags=re.DOTALL)  # dash's IE-only alert sits in a comment
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>(.*?)</script>", page, flags=re.DOTALL)
    executable = [body for attrs, body in inline if "application/json" not in attrs]
    assert executable, "dash renders its renderer bootstrap inline"
    for body in executable:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in script_src
    assert "'unsafe-inline'" not in script_src


def test_fingerprinted_bundles_stay_cacheable(clinician):
    page = clinician.client.get("/").text
    src = re.search(r'<script src="(/_dash-component-suites/[^"]+)"', page).group(1)
    response = clinician.client.get(src)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] != "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- configuration --------------------------------------------------------------------------------
def test_debug_mode_is_refused(users):
    app = dash.Dash(__name__)
    app.server.debug = True
    with pytest.raises(RuntimeError, match="debug"):
        install_auth(app, users, secret_key=secrets.token_bytes(32), allowed_hosts={"localhost"})


def test_debug_switched_on_later_is_refused_per_request(clinician):
    clinician.app.server.debug = True
    assert clinician.client.get("/").status_code == 500
    assert clinician.program().status_code == 500
    assert clinician.programmed == []


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"secret_key": b"short", "allowed_hosts": {"localhost"}}, "secret_key"),
        ({"secret_key": secrets.token_bytes(32), "allowed_hosts": set()}, "allowed_hosts"),
        ({"secret_key": secrets.token_bytes(32), "allowed_hosts": {"http://localhost/"}}, "allowed host"),
    ],
)
def test_unsafe_settings_are_refused(users, kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        install_auth(dash.Dash(__name__), users, **kwargs)


def test_install_twice_is_refused(harness, users):
    with pytest.raises(RuntimeError, match="already"):
        install_auth(harness.app, users, secret_key=secrets.token_bytes(32), allowed_hosts={"localhost"})


def test_a_tab_that_only_polls_is_logged_out_after_the_idle_timeout(clinician):
    """Interval callbacks read the session without keeping it alive (the idle timeout fires in an open tab)."""
    tick = {**CALLBACK_BODY, "changedPropIds": ["tick-status.n_intervals"]}

    def poll():
        return clinician.client.post("/_dash-update-component", json=tick, headers=SAME_ORIGIN)

    for _ in range(3):
        clinician.clock.advance(auth.DEFAULT_IDLE_S / 4)
        assert poll().status_code != 401  # still logged in, but the polls do not count as activity
    clinician.clock.advance(auth.DEFAULT_IDLE_S / 2)
    assert poll().status_code == 401  # more than the idle timeout since the person last acted
    assert clinician.client.get("/").status_code == 302


def test_a_persons_callback_restarts_the_idle_time(clinician):
    clinician.clock.advance(auth.DEFAULT_IDLE_S - 10)
    assert clinician.program().status_code != 401  # a click: activity, whatever the callback answers
    clinician.clock.advance(auth.DEFAULT_IDLE_S - 10)
    assert clinician.client.get("/").status_code == 200
