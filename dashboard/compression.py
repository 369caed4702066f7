"""Compressed responses: brotli or gzip for everything, and Dash's big bundles at brotli's best, once.

``flask-compress`` compresses each response as it goes out (brotli quality 5: fast enough per
request). The large fingerprinted bundles (Plotly alone is 4.8 MB of JavaScript) never change while
the process runs, so they are compressed once more at brotli's highest quality (11: 1.11 MB instead
of 1.29 MB for Plotly, but about 10 s of one core) in a child process; ``warm_plotly``, which
``implant-dashboard`` calls at start, begins with Plotly, so the first device page already gets it.
Until a bundle's best copy is ready, it goes out at quality 5. Browsers cache the bundles (their
URLs carry the version), so this is paid once per browser. Must not import the device link or ``device_mock``.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import threading
from pathlib import Path

from flask import Flask, Response, request
from flask_compress import Compress

log = logging.getLogger(__name__)
BUNDLES = "/_dash-component-suites/"
BIG_BYTES = 200_000  # bundles above this are worth the slow, best compression [E]
BEST_QUALITY = 11
_COMPRESS_SCRIPT = (
    f"import sys, brotli; sys.stdout.buffer.write(brotli.compress(sys.stdin.buffer.read(), quality={BEST_QUALITY}))"
)
FAST_QUALITY = 5  # per-response brotli quality: 0.16 s for Plotly on this machine's core, 1.29 MB


class BestCopies:
    """Brotli-11 copies of big bundles, by the SHA-256 of their bytes; filled on a background thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copies: dict[str, bytes] = {}
        self._pending: set[str] = set()

    def get(self, body: bytes) -> bytes | None:
        """The best copy of ``body`` if ready; otherwise start making it and return None."""
        digest = hashlib.sha256(body).hexdigest()
        with self._lock:
            copy = self._copies.get(digest)
            if copy is not None or digest in self._pending:
                return copy
            self._pending.add(digest)
        threading.Thread(target=self._make, args=(digest, body), name="compress-best", daemon=True).start()
        return None

    def warm(self, path: Path) -> None:
        """Start compressing the file at ``path`` now (a bundle every device page loads)."""
        try:
            body = path.read_bytes()
        except OSError as exc:
            log.debug("cannot warm %s: %s", path, exc)
            return
        self.get(body)

    def _make(self, digest: str, body: bytes) -> None:
        # In a child process: brotli holds the GIL while it works, and 10 s of a stalled dashboard
        # (its links included) is no price for a smaller download.
        try:
            done = subprocess.run(  # noqa: S603 (our own interpreter and a fixed script)
                [sys.executable, "-c", _COMPRESS_SCRIPT], input=body, capture_output=True, check=True, timeout=300
            )
        except (OSError, subprocess.SubprocessError) as exc:
            log.warning("best compression of a %d-byte bundle failed: %s", len(body), exc)
            return  # stays pending: it keeps going out at the fast quality
        with self._lock:
            self._copies[digest] = done.stdout
            self._pending.discard(digest)


def install(server: Flask) -> BestCopies:
    """Compress every response of ``server``; big bundles from their best copy once it is ready."""
    server.config.setdefault("COMPRESS_BR_LEVEL", FAST_QUALITY)
    server.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    # Files sent as streams (the few kB of CSS assets) stay as they are: compressing a stream would
    # read it whole and leave its file open.
    server.config.setdefault("COMPRESS_STREAMS", False)
    Compress(server)
    copies = BestCopies()

    @server.after_request
    def best(response: Response) -> Response:  # registered after Compress: runs before it
        if (
            not request.path.startswith(BUNDLES)
            or response.status_code != 200
            or response.direct_passthrough
            or "Content-Encoding" in response.headers
            or "br" not in request.headers.get("Accept-Encoding", "")
        ):
            return response
        body = response.get_data()
        if len(body) < BIG_BYTES:
            return response
        copy = copies.get(body)
        if copy is None:
            return response  # flask-compress sends it at the fast quality meanwhile
        response.set_data(copy)
        response.headers["Content-Encoding"] = "br"
        response.headers["Content-Length"] = str(len(copy))
        response.vary.add("Accept-Encoding")
        return response

    server.extensions["best_copies"] = copies
    return copies


def warm_plotly(server: Flask) -> None:
    """Start the best compression of Plotly (every device page loads it) now, not at its first request."""
    import plotly

    server.extensions["best_copies"].warm(Path(plotly.__file__).with_name("package_data") / "plotly.min.js")
