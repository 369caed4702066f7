"""Sessions in a file: a restart or another process on it logs nobody out; log-out and idle still end them."""

from __future__ import annotations

import sqlite3
import stat

import dash
import pytest
from dash import html

from dashboard.auth import UserDB, install_auth
from dashboard.session_db import SqliteSessions, load_or_create_secret
from dashboard.users import Role, User
from dashboard.web_security import SESSION_COOKIE
from tests.dashboard.test_auth import CSRF_RE, SAME_ORIGIN

T0 = 1_700_000_000.0


def test_a_session_is_shared_by_every_table_on_the_file_and_kept_only_as_a_hash(tmp_path):
    path = tmp_path / "sessions.db"
    first, second = SqliteSessions(path, 60.0), SqliteSessions(path, 60.0)
    sid = first.open(User("dr.lee", Role.CLINICIAN, T0), T0)
    assert second.touch(sid, T0 + 30) == User("dr.lee", Role.CLINICIAN, T0)
    stored = sqlite3.connect(path).execute("SELECT sid_hash FROM web_sessions").fetchall()
    assert stored and sid not in str(stored)  # the cookie's id is not in the file
    second.close(sid)
    assert first.touch(sid, T0 + 31) is None


def test_only_activity_restarts_the_idle_time_and_an_idle_session_is_gone(tmp_path):
    sessions = SqliteSessions(tmp_path / "s.db", 60.0)
    sid = sessions.open(User("viewer", Role.VIEWER, T0), T0)
    assert sessions.touch(sid, T0 + 50, active=False) is not None  # a poll: read, not renewed
    assert sessions.touch(sid, T0 + 61, active=False) is None  # 61 s since the last action
    again = sessions.open(User("viewer", Role.VIEWER, T0), T0)
    assert sessions.touch(again, T0 + 50) is not None  # an action renews it
    assert sessions.touch(again, T0 + 100) is not None


def test_the_signing_key_is_created_private_once_and_a_wrong_file_is_named(tmp_path):
    path = tmp_path / "secret.key"
    key = load_or_create_secret(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == key
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="holds 5 bytes, not a 32-byte key"):
        load_or_create_secret(path)


def _app(users: UserDB, key: bytes, sessions: SqliteSessions):
    app = dash.Dash(__name__)
    app.layout = html.Div("page")
    install_auth(app, users, secret_key=key, allowed_hosts={"localhost"}, sessions=sessions)
    return app.server.test_client()


def test_a_restarted_dashboard_on_the_same_files_logs_nobody_out_and_a_log_out_holds_everywhere(tmp_path):
    users_path = tmp_path / "users.json"
    passwords = UserDB.create_default(users_path)
    users, key = UserDB.load(users_path), load_or_create_secret(tmp_path / "secret.key")
    before = _app(users, key, SqliteSessions(tmp_path / "sessions.db", 3600.0))
    token = CSRF_RE.search(before.get("/login").text).group(1)
    form = {"csrf_token": token, "username": "viewer", "password": passwords["viewer"]}
    assert before.post("/login", data=form, headers=SAME_ORIGIN).status_code == 303
    cookie = before.get_cookie(SESSION_COOKIE).value
    after = _app(
        users, load_or_create_secret(tmp_path / "secret.key"), SqliteSessions(tmp_path / "sessions.db", 3600.0)
    )
    after.set_cookie(SESSION_COOKIE, cookie)
    assert after.get("/").status_code == 200  # the restart kept the session
    token = CSRF_RE.search(after.get("/login").text).group(1)
    assert after.post("/logout", data={"csrf_token": token}, headers=SAME_ORIGIN).status_code == 303
    assert before.get("/").status_code == 302  # logged out in the other process too
