"""Log-in sessions kept in a SQLite file, so a dashboard restart (or a second process) logs nobody out.

``SqliteSessions`` has the ``web_security.SessionTable`` interface: ``open`` a session for a user,
``touch`` it (the user, or None once idle past the timeout; only a person's action restarts the idle
time), ``close`` it. It keeps a SHA-256 of each session id, never the id itself, so the file
reveals no live cookie, and commits every open, activity and close at once (short ``BEGIN
IMMEDIATE`` transactions in WAL mode) so every process sharing the file sees it. The signing key of
the cookie must survive too: ``load_or_create_secret`` keeps it in a private file.

Must not import Dash, the device link, the history store or ``device_mock``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
from pathlib import Path

from .users import Role, User

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_sessions (
    sid_hash TEXT PRIMARY KEY, username TEXT NOT NULL, role TEXT NOT NULL,
    login_at REAL NOT NULL, last_seen REAL NOT NULL
) WITHOUT ROWID;
"""
SECRET_BYTES = 32


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SqliteSessions:
    """Sessions by random id in the SQLite file ``path``; idle ones expire on look-up. Thread-safe."""

    def __init__(self, path: str | os.PathLike[str], idle_timeout_s: float) -> None:
        self.path, self._idle_s = Path(path), idle_timeout_s
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.executescript(SCHEMA)

    def open(self, value: User, now: float) -> str:
        """A new random session id for ``value``; drops expired sessions on the way."""
        sid = secrets.token_urlsafe(32)
        row = (_hash(sid), value.username, value.role.value, value.login_at, now)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DELETE FROM web_sessions WHERE last_seen < ?", (now - self._idle_s,))
            self._conn.execute("INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?)", row)
            self._conn.execute("COMMIT")
        return sid

    def touch(self, sid: str, now: float, active: bool = True) -> User | None:
        """The session's user; None (and forgotten) if unknown or idle too long. ``active``: a person
        acted, so the idle time starts again (a page's polling passes ``active=False``)."""
        key = _hash(sid)
        with self._lock:
            found = self._conn.execute(
                "SELECT username, role, login_at, last_seen FROM web_sessions WHERE sid_hash = ?", (key,)
            ).fetchone()
            if found is None:
                return None
            username, role, login_at, last_seen = found
            if now - last_seen > self._idle_s:
                self._conn.execute("DELETE FROM web_sessions WHERE sid_hash = ?", (key,))
                return None
            if active:
                self._conn.execute("UPDATE web_sessions SET last_seen = ? WHERE sid_hash = ?", (now, key))
        try:
            return User(username, Role(role), login_at)
        except ValueError:  # a role this dashboard does not know: no session
            return None

    def close(self, sid: str) -> None:
        """End the session now (log-out)."""
        with self._lock:
            self._conn.execute("DELETE FROM web_sessions WHERE sid_hash = ?", (_hash(sid),))


def load_or_create_secret(path: str | os.PathLike[str]) -> bytes:
    """The cookie signing key kept in ``path`` (created owner-only with a fresh random key if absent).

    ``OSError`` or ``ValueError`` (a file of the wrong size) name the file.
    """
    target = Path(path)
    try:
        key = target.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(SECRET_BYTES)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            key = target.read_bytes()
        else:
            with os.fdopen(fd, "wb") as out:
                out.write(key)
            return key
    if len(key) != SECRET_BYTES:
        raise ValueError(f"{target} holds {len(key)} bytes, not a {SECRET_BYTES}-byte key: remove it to start afresh")
    return key
