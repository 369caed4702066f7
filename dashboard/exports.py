"""The CSV download routes of the dashboard: a device's series and events, and the audit log.

Owns the routes under ``/export/``, the checking of their query values (a value that is not a
whole number of milliseconds, is out of range, or names a series the device does not have is
answered with a 400 and a plain sentence saying which and why, never a traceback) and the download
headers. The CSV formats and the cell escaping belong to ``dashboard.store`` and
``dashboard.csv_cells``. Login is enforced in front of these routes by ``dashboard.auth``.
Must not import Dash callbacks, the device link or ``device_mock``.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import TextIO

from flask import Flask, Response, request

from . import paths
from .auth import Role, require_role
from .deps import Deps
from .store import write_diary_csv
from .web_security import plain_response

MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant an ISO-8601 year holds
MAX_SERIES = 64  # [E] far more than any device stores (a pump has about 8, a stimulator about 20)
_WHOLE_NUMBER = re.compile(r"[0-9]{1,15}")
_SHOWN_VALUE = 40  # characters of a refused value repeated in the message


class BadQuery(ValueError):
    """A query value of a download is unusable; the message says which value and why, fit to show."""


def time_arg(name: str, default: int) -> int:
    """Query value ``name`` as milliseconds since 1970, ``default`` when absent; :class:`BadQuery` otherwise."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(raw) or int(raw) > MAX_TIME_MS:
        raise BadQuery(
            f"{name} must be a whole number of milliseconds since 1970-01-01 UTC, from 0 to {MAX_TIME_MS}; "
            f"got {_shown(raw)}"
        )
    return int(raw)


def series_arg(device: str, known: list[str]) -> list[str]:
    """The ``names`` query value as series of ``device`` (all of them by default); :class:`BadQuery` otherwise."""
    raw = request.args.get("names")
    if raw is None:
        return known
    wanted = list(dict.fromkeys(raw.split(",")))
    if len(wanted) > MAX_SERIES:
        raise BadQuery(f"names lists {len(wanted)} series; at most {MAX_SERIES} are exported at once")
    unknown = [name for name in wanted if name not in known]
    if unknown:
        have = ", ".join(known) or "none yet"
        raise BadQuery(f"{device} has no series {_shown(unknown[0])}; it has: {have}")
    return wanted


def _shown(value: str) -> str:
    text = value if len(value) <= _SHOWN_VALUE else value[:_SHOWN_VALUE] + "…"
    return repr(text)


def csv_download(write: Callable[[TextIO], None], filename: str) -> Response:
    """A CSV attachment of what ``write`` writes, named ``filename`` (any characters, safely quoted)."""
    buffer = io.StringIO()
    write(buffer)
    return Response(buffer.getvalue(), mimetype="text/csv", headers={"Content-Disposition": paths.attachment(filename)})


def register(server: Flask, deps: Deps) -> None:
    """Add the download routes to ``server``.

    ``<path:name>`` so a device name holding ``/`` (sent as ``%2F``) still reaches the route;
    Werkzeug has already percent-decoded it.
    """

    def unknown_device(name: str) -> Response:
        return plain_response(f"No device named {name!r}.", 404)

    @server.get("/export/<path:name>/series.csv")
    def export_series(name: str) -> Response:
        if name not in deps.links:
            return unknown_device(name)
        try:
            wanted = series_arg(name, deps.store.series_names(name))
            first, last = deps.store.time_range(name) or (0, 0)
            start, end = time_arg("start_ms", first), time_arg("end_ms", last)
            if start > end:
                raise BadQuery(f"start_ms ({start}) is after end_ms ({end})")
        except BadQuery as exc:
            return plain_response(f"Bad request: {exc}.", 400)
        return csv_download(
            lambda out: deps.store.export_series_csv(name, wanted, start, end, out), f"{name}-series.csv"
        )

    @server.get("/export/<path:name>/events.csv")
    def export_events(name: str) -> Response:
        if name not in deps.links:
            return unknown_device(name)
        return csv_download(lambda out: deps.store.export_events_csv(name, out), f"{name}-events.csv")

    @server.get("/export/<path:name>/diary.csv")
    def export_diary(name: str) -> Response:
        if name not in deps.links:
            return unknown_device(name)
        return csv_download(lambda out: write_diary_csv(out, name, deps.store.diary(name)), f"{name}-diary.csv")

    @server.get("/export/audit.csv")
    def export_audit() -> Response:
        require_role(Role.CLINICIAN)  # the audit log is a clinician's record (a viewer gets 403)
        return csv_download(deps.store.export_audit_csv, "audit.csv")
