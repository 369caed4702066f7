"""`make demo` keeps working: the script starts both processes, prints the URL and logins, and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_demo_prints_url_and_logins_serves_the_login_page_and_stops(tmp_path):
    port = free_port()
    env = {**os.environ, "DEMO_DIR": str(tmp_path / "demo"), "DEMO_PORT": str(port)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(line.startswith("demo: Ctrl-C") for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
        text = "\n".join(lines)
        assert f"open http://127.0.0.1:{port}/" in text, text
        assert f"an SCS trial and its diary: http://127.0.0.1:{port}/trial/scs-trial-1" in text, text
        assert re.search(r"log in as clinician / \S{16,}", text) and re.search(r"log in as viewer / \S{16,}", text)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            opener.open(f"http://127.0.0.1:{port}/", timeout=10)
            raise AssertionError("the dashboard served a page without a login")
        except urllib.error.HTTPError as redirect:
            assert redirect.code in (302, 303) and "/login" in redirect.headers["Location"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == 0
    assert (tmp_path / "demo" / "logins.txt").stat().st_mode & 0o077 == 0
