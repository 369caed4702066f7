"""The trial report downloads: ``/trial/<device>/report.html`` and ``/trial/<device>/report.pdf``.

Built from the store (``trial_data``) and the device's last identity and status, rendered by
``trial_report``. Login is enforced in front of these routes by ``dashboard.auth``; a device no link
serves gets a 404 in a sentence. Must not import Dash callbacks, the device link or ``device_mock``.
"""

from __future__ import annotations

import time

from flask import Flask, Response

from . import paths
from .deps import Deps
from .trial_data import report, settings_of, snapshot_view
from .trial_report import to_html, to_pdf
from .web_security import plain_response


def register(server: Flask, deps: Deps) -> None:
    """Add the report routes to ``server`` (``<path:name>``: a name may hold ``/``)."""

    def built(name: str):
        snap = deps.links[name].snapshot()
        identity = snap.identity
        view = snapshot_view(deps.store, name, snap, deps.trial_rule)
        model = identity.model if identity else "unknown"
        serial = identity.serial if identity else "unknown"
        return report(view, model, serial, "not recorded", settings_of(snap.status), round(time.time() * 1000))

    @server.get("/trial/<path:name>/report.html")
    def trial_report_html(name: str) -> Response:
        if name not in deps.links:
            return plain_response(f"No device named {name!r}.", 404)
        return Response(to_html(built(name)), mimetype="text/html")

    @server.get("/trial/<path:name>/report.pdf")
    def trial_report_pdf(name: str) -> Response:
        if name not in deps.links:
            return plain_response(f"No device named {name!r}.", 404)
        response = Response(to_pdf(built(name)), mimetype="application/pdf")
        response.headers["Content-Disposition"] = paths.attachment(f"{name}-trial-report.pdf")
        return response
