"""The dashboard's accounts: roles, the users file and password checks.

Owns the users file (JSON: username, role, scrypt/PBKDF2 hash; no built-in accounts: the first
run creates random passwords, shown once), ``Role``, ``User`` and ``UserDB.verify``, which costs
one hash check whether or not the user exists. Log-in, sessions and the checks on requests are
``dashboard.auth``'s, which re-exports these names. Passwords and hashes are never logged.
Must not import Dash, ``dashboard.auth``, the device link, the store or ``device_mock``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

from dashboard import web_security

logger = logging.getLogger(__name__)

USERS_FORMAT = "implant-dashboard-users/1"
DEFAULT_USERS = {"clinician": "clinician", "viewer": "viewer"}  # username -> role, never passwords
GENERATED_PASSWORD_BYTES = 18  # token_urlsafe(18): 24 characters, 144 bits
MAX_USERNAME = 64
MAX_PASSWORD = 1024

_USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


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
