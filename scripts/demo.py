"""`make demo`: the emulator (a stimulator, a pump and an SCS trial) and the dashboard, wired together.

The trial's patient brings a week of baseline diary and keeps writing it live (a day of device time
every few seconds): its page is under the device's "Trial and diary" link.

Keeps everything under .demo/ (state, history, accounts), prints the URL and a login, and stops
both processes on Ctrl-C. The demo's accounts are kept with their passwords in .demo/logins.txt
(owner-only) so every start can print them; a real deployment keeps only the hashes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from dashboard.auth import UserDB
from protocols.manifest import MANIFEST_NAME

ROOT = Path(__file__).resolve().parents[1]
DEMO = Path(os.environ.get("DEMO_DIR", ROOT / ".demo"))
SPEED = "20000"  # a pump's month in about two minutes; battery and reservoir move every second
HTTP_PORT = os.environ.get("DEMO_PORT", "8050")


def logins() -> dict[str, str]:
    users, saved = DEMO / "users.json", DEMO / "logins.txt"
    if users.exists() and saved.exists():
        return dict(line.split(" ", 1) for line in saved.read_text().splitlines() if line)
    passwords = UserDB.create_default(users) if not users.exists() else {}
    if not passwords:  # users.json without its passwords: start the accounts afresh
        users.unlink()
        passwords = UserDB.create_default(users)
    saved.write_text("".join(f"{u} {p}\n" for u, p in passwords.items()))
    saved.chmod(0o600)
    return passwords


def wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"demo: {path.name} did not appear; see the messages above")
        time.sleep(0.1)


def wait_listening(port: int, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Until the dashboard accepts connections: the URL is printed only once it can be opened."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"demo: no dashboard on port {port}; see the messages above") from None
            time.sleep(0.1)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # first: a SIGTERM at any point still stops both children
    DEMO.mkdir(parents=True, exist_ok=True)
    accounts = logins()
    py = sys.executable
    manifest = DEMO / "mock-state" / MANIFEST_NAME  # the mock writes it afresh once its devices are up
    manifest.unlink(missing_ok=True)
    mock = subprocess.Popen(
        [py, "-m", "device_mock.cli", "--device", "scs", "--device", "pump", "--device", "scs-trial",
         "--speed", SPEED, "--state", str(DEMO / "mock-state"),
         "--link", str(DEMO / "scs"), "--link", str(DEMO / "pump"), "--link", str(DEMO / "scs-trial"),
         "--scenario", str(ROOT / "scenarios" / "demo-scs.toml")],
    )  # fmt: skip
    dash = None
    try:
        wait_for(manifest, mock)
        dash = subprocess.Popen(
            [py, "-m", "dashboard.cli", "--fleet", str(manifest),
             "--db", f"sqlite:///{DEMO / 'history.db'}", "--users", str(DEMO / "users.json"), "--http-port", HTTP_PORT],
        )  # fmt: skip
        wait_listening(int(HTTP_PORT), dash)
        print(f"\ndemo: open http://127.0.0.1:{HTTP_PORT}/", flush=True)
        for user, password in accounts.items():
            print(f"demo: log in as {user} / {password}", flush=True)
        print(f"demo: an SCS trial and its diary: http://127.0.0.1:{HTTP_PORT}/trial/scs-trial-1", flush=True)
        print("demo: Ctrl-C stops the emulator and the dashboard\n", flush=True)
        while mock.poll() is None and dash.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (dash, mock):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
