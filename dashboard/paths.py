"""URL paths of device pages and downloads, built and read back in one place.

Owns how a device name goes into a URL path and comes back out: a name is one path segment,
percent-encoded whole (``quote(name, safe="")``), so a space, ``<``, ``>``, ``/``, ``#``, ``?`` or
``%`` in a name survives the trip. Dash hands a callback the browser's ``location.pathname``,
which is still percent-encoded, so :func:`device_from_pathname` decodes it once; Flask routes get
their segments already decoded by Werkzeug and must not decode them again. Also owns the
``Content-Disposition`` header of a download named after a device.

Pure string functions: must not import Dash, Flask, the device link, the store or ``device_mock``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

DEVICE_PREFIX = "/device/"
EXPORT_PREFIX = "/export/"
AUDIT_PATH = "/audit"
TRIAL_PREFIX = "/trial/"

_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def segment(name: str) -> str:
    """``name`` as one percent-encoded path segment (also usable inside an element id)."""
    return quote(name, safe="")


def device_href(name: str) -> str:
    """The page of device ``name``: ``/device/pump%20a``."""
    return DEVICE_PREFIX + segment(name)


def trial_href(name: str) -> str:
    """The trial page of device ``name``: ``/trial/scs-trial-1``."""
    return TRIAL_PREFIX + segment(name)


def trial_report_href(name: str, form: str) -> str:
    """The trial report of device ``name`` as ``form`` ("html" or "pdf"): ``/trial/x/report.pdf``."""
    return f"{TRIAL_PREFIX}{segment(name)}/report.{form}"


def trial_from_pathname(pathname: str | None) -> str | None:
    """The device name of a Dash ``pathname`` under ``/trial/``, percent-decoded; None for other pages."""
    if not pathname or not pathname.startswith(TRIAL_PREFIX):
        return None
    return unquote(pathname.removeprefix(TRIAL_PREFIX))


def export_href(name: str, filename: str) -> str:
    """A download of device ``name``: ``export_href("pump a", "series.csv")`` is ``/export/pump%20a/series.csv``."""
    return f"{EXPORT_PREFIX}{segment(name)}/{filename}"


def device_from_pathname(pathname: str | None) -> str | None:
    """The device name of a Dash ``pathname`` under ``/device/``, percent-decoded; None for other pages.

    Decodes once: ``/device/pump%20a`` is ``pump a`` and ``/device/50%2525`` is ``50%25``.
    """
    if not pathname or not pathname.startswith(DEVICE_PREFIX):
        return None
    return unquote(pathname.removeprefix(DEVICE_PREFIX))


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` value for ``filename``: an ASCII fallback plus the exact name (RFC 6266)."""
    fallback = _UNSAFE_FILENAME.sub("_", filename).strip("_") or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
