"""Browser fixtures: Debian's Chromium driven by Playwright, against the real emulator and dashboard.

Chromium missing: the tests are skipped with the reason, except under CI (CI=true), where that fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.mock_process import MockProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session."""
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} not installed (apt-get install -y chromium; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page per test (its own cookies)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the programming confirmations
    yield page
    context.close()


@dataclass
class Stack:
    """The emulator and the dashboard, running."""

    mock: MockProcess
    url: str
    logins: dict[str, str]
    dashboard: subprocess.Popen


class DashboardProcess:
    """``implant-dashboard`` as a subprocess; parses its URL and first-run logins."""

    def __init__(self, args: list[str], timeout_s: float = 30.0) -> None:
        command = [sys.executable, "-m", "dashboard.cli", *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.logins: dict[str, str] = {}
        self.lines: list[str] = []
        deadline = time.monotonic() + timeout_s
        self.url = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip())
            login = re.match(r"\s+login (\S+) / (\S+)", line)
            if login:
                self.logins[login.group(1)] = login.group(2)
            served = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if served:
                self.url = served.group(1)
                break
        if not self.url:
            self.stop()
            raise RuntimeError(f"dashboard did not start: {self.lines}")
        self._drain = threading.Thread(target=self._read_rest, name="dashboard-output", daemon=True)
        self._drain.start()

    def _read_rest(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if hasattr(self, "_drain"):
            self._drain.join(timeout=5)
        self.proc.stdout.close()


LOW_RESERVOIR_SOON = """
[scenario]
name = "pump reaches its low-reservoir alarm within seconds"
device = "pump"

[config]
initial_fill_ul = 3500
initial_rate_ul_per_day = 500
alarm_volume_ul = 2000
"""


@pytest.fixture(scope="module")
def trial_stack(tmp_path_factory):
    """implant-mock with an SCS trial and an intrathecal trial (a day of device time in ~4 s), and the dashboard.

    Shared by the module's tests: each drives its own device (the SCS trial or the intrathecal one).
    """
    devices = {"scs-trial-1": "scs-trial-1", "pump-trial-1": "pump-trial-1"}
    mock_args = ["--device", "scs-trial", "--device", "pump-trial", "--speed", "20000"]
    yield from _stack(tmp_path_factory.mktemp("trial"), mock_args, devices)


def _stack(tmp_path: Path, mock_args: list[str], names: dict[str, str], dashboard_args: tuple[str, ...] = ()):
    """implant-mock with ``mock_args`` and the dashboard (with ``dashboard_args``) on its devices
    (``names``: device -> display name)."""
    if shutil.which("chromium") is None and os.environ.get("CI") != "true":
        pytest.skip("Chromium not installed")
    mock = MockProcess(mock_args, tmp_path / "state")
    try:
        wiring = []
        for device, shown in names.items():
            served = mock.devices[device]
            wiring += ["--port", served.port, "--key", str(served.key), "--name", shown]
        dashboard = DashboardProcess(
            [*wiring, "--db", f"sqlite:///{tmp_path / 'history.db'}", "--users", str(tmp_path / "users.json"),
             "--http-port", "0", "--poll", "0.5", *dashboard_args],
        )  # fmt: skip
        try:
            yield Stack(mock, dashboard.url, dashboard.logins, dashboard.proc)
        finally:
            dashboard.stop()
    finally:
        mock.stop()


@pytest.fixture
def idle_stack(tmp_path):
    """A stimulator and a pump, and a dashboard that logs a session out after 6 s without an action."""
    mock_args = ["--device", "scs", "--device", "pump", "--speed", "1000"]
    yield from _stack(tmp_path, mock_args, {"scs-1": "scs-1", "pump-1": "pump-1"}, ("--idle-timeout", "6"))


def start_stack(tmp_path: Path, scs_name: str, pump_name: str, scenario_text: str = LOW_RESERVOIR_SOON):
    """Start implant-mock and the dashboard with these display names; yield the Stack, then stop both.

    ``scenario_text`` drives one of the two devices (the one its ``device`` names).
    """
    scenario = tmp_path / "scenario.toml"
    scenario.write_text(scenario_text)
    mock_args = ["--device", "scs", "--device", "pump", "--speed", "50000", "--scenario", str(scenario)]
    yield from _stack(tmp_path, mock_args, {"scs-1": scs_name, "pump-1": pump_name})


@pytest.fixture
def stack(tmp_path):
    """implant-mock (a stimulator and a pump about to run low) and the dashboard wired to it."""
    yield from start_stack(tmp_path, "scs-1", "pump-1")


WELL_FILLED = """
[scenario]
name = "a pump that stays far from empty for the length of a refill test"
device = "pump"

[config]
initial_fill_ul = 15000
initial_rate_ul_per_day = 500
alarm_volume_ul = 2000
"""


@pytest.fixture
def filled_stack(tmp_path):
    """implant-mock (a stimulator and a pump with 15 mL, a minute of wall time from empty) and the dashboard.

    At 50,000 times real time a pump with LOW_RESERVOIR_SOON's 3.5 mL runs dry in about 12 s: a test
    that needs the pump to expect a residual far from 0 mL must not depend on how fast it runs.
    """
    yield from start_stack(tmp_path, "scs-1", "pump-1", WELL_FILLED)


LEAD_FRACTURE_SOON = """
[scenario]
name = "a stimulator scanned every half hour whose contact 2 opens after two hours"
device = "scs"

[config]
impedance_scan_h = 0.5

[[event]]
at = "0s"
action = "program"
program = 1
activate = true
patient_amp_max_ua = 6000
ramp_s = 2

[[event.areas]]
anode_mask = 0x1
cathode_mask = 0x6
amplitude_ua = 3500
pulse_width_us = 300
rate_hz = 50
waveform = "TONIC"
burst_pulses = 0
burst_rate_hz = 0
cycle_on_s = 0
cycle_off_s = 0

[[event]]
at = "0s"
action = "therapy"
on = true

[[event]]
at = "2h"
action = "fault"
name = "lead_open"
contact = 2
"""


@pytest.fixture
def fracture_stack(tmp_path):
    """A stimulator scanned every half hour of device time, whose lead fractures two hours in, and a pump."""
    yield from start_stack(tmp_path, "scs-1", "pump-1", LEAD_FRACTURE_SOON)


@pytest.fixture
def named_stack(tmp_path):
    """The same, with device names a URL must quote: ``stim<1>`` and ``pump a``."""
    yield from start_stack(tmp_path, "stim<1>", "pump a")


def login(page, stack: Stack, user: str) -> None:
    """Log in through the login form."""
    page.goto(stack.url)
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", stack.logins[user])
    page.click("button[type=submit]")
    page.wait_for_selector("#overview-table tbody tr[id^=row-]")
