"""The dashboard in a real browser (issue: Done when): login, live updates, alarms, programming, roles."""

from __future__ import annotations

import re
import time
from pathlib import Path

from dashboard import ids
from tests.browser.conftest import login


def card_text(page, name: str) -> str:
    """The text of a device's row in the overview table."""
    return page.inner_text(f"#row-{name}")


def test_login_is_required_and_both_devices_update(page, stack):
    page.goto(stack.url)
    assert "/login" in page.url
    login(page, stack, "viewer")
    page.wait_for_selector("#row-scs-1 >> text=Stimulator")
    page.wait_for_selector("#row-pump-1 >> text=Pump")
    first = card_text(page, "pump-1")
    page.wait_for_function(
        "(before) => document.querySelector('#row-pump-1').innerText !== before", arg=first, timeout=15_000
    )
    assert re.search(r"[\d.]+ of 20 mL", card_text(page, "pump-1"))
    assert re.search(r"[\d.]+ %", card_text(page, "scs-1"))


CHART_POINTS = """() => {
    const el = document.querySelector('#device-charts .js-plotly-plot');
    return el && el.data ? el.data[0].x.length : 0;
}"""


def wait_points(page, more_than: int, timeout_s: float = 15.0) -> int:
    """Poll the first chart's point count (a CSP without unsafe-eval rules out wait_for_function strings)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        points = page.evaluate(CHART_POINTS)
        if points > more_than:
            return points
        page.wait_for_timeout(200)
    raise AssertionError(f"chart stayed at {more_than} points or fewer")


def test_device_charts_grow_with_each_tick(page, stack):
    """Ticks extend the chart (extendData), they do not leave it frozen at the history first drawn."""
    login(page, stack, "viewer")
    page.goto(stack.url + "device/pump-1")
    before = wait_points(page, 0)
    wait_points(page, before)


def test_low_reservoir_alarm_shows_flashing_and_can_be_acknowledged(page, stack):
    login(page, stack, "clinician")
    page.goto(stack.url + "device/pump-1")
    alarm = page.wait_for_selector("#device-alarms .alarm-medium", timeout=30_000)
    assert "Low reservoir" in alarm.inner_text()
    # Looked up and read in one step: each tick re-renders the list, which would detach a held element.
    animation = page.eval_on_selector("#device-alarms .alarm-medium", "(el) => getComputedStyle(el).animationDuration")
    assert animation == "2s"  # medium priority flashes at 0.5 Hz
    page.click("#device-alarms .alarm-medium button")
    page.wait_for_selector("#ack-result #result-ok", timeout=15_000)
    page.wait_for_selector("#device-alarms .alarm-acknowledged", timeout=15_000)
    page.wait_for_selector("#alarms-rows >> text=Medium priority, acknowledged", timeout=15_000)


def test_clinician_programs_a_new_amplitude_and_the_status_follows(page, stack):
    login(page, stack, "clinician")
    page.goto(stack.url + "device/scs-1")
    page.wait_for_selector("#scs-amplitude")
    page.fill("#scs-amplitude", "4.25")
    page.fill("#scs-anodes", "0")
    page.fill("#scs-cathodes", "1")
    page.fill("#scs-patient-max", "6")
    page.click("#send-program")
    review = page.wait_for_selector("#review-panel", timeout=15_000)
    assert "4.25 mA" in review.inner_text()  # pending against current, before anything is sent
    page.click("#confirm-send")
    page.wait_for_selector("#program-result #result-ok", timeout=15_000)
    page.click("text=Therapy on")
    page.wait_for_selector("#device-status >> text=4.25 mA", timeout=15_000)


def test_a_refused_program_says_which_limit_and_changes_nothing(page, stack):
    login(page, stack, "clinician")
    page.goto(stack.url + "device/scs-1")
    page.wait_for_selector("#scs-amplitude")
    page.fill("#scs-amplitude", "30")
    page.click("#send-program")
    page.click("#confirm-send")
    refused = page.wait_for_selector("#program-result #result-refused", timeout=15_000)
    assert "Amplitude (area 1) 30 mA is above the maximum 25.5 mA" in refused.inner_text()


def test_a_viewer_sees_read_only_controls_saying_why(page, stack):
    login(page, stack, "viewer")
    page.goto(stack.url + "device/scs-1")
    page.wait_for_selector("#scs-amplitude")
    assert page.is_disabled("#scs-amplitude") and page.is_disabled("#send-program")
    note = page.inner_text("#read-only-note")
    assert "clinician login" in note
    assert "clinician login" in page.get_attribute("#send-program", "title")


def test_devices_named_with_a_space_or_brackets_have_pages_and_exports(page, named_stack):
    login(page, named_stack, "viewer")
    page.click('[id="row-pump%20a"] a')
    page.locator("h1", has_text="pump a").wait_for()
    assert page.url.endswith("/device/pump%20a")
    assert "No device named" not in page.inner_text("#page")
    with page.expect_download() as info:
        page.click(f"#{ids.EXPORT}")
    download = info.value
    assert download.suggested_filename == "pump a-series.csv"
    assert Path(download.path()).read_text(encoding="utf-8").startswith("time_utc,time_ms")
    page.goto(named_stack.url + "device/stim%3C1%3E")
    page.locator("h1", has_text="stim<1>").wait_for()
    # The tick finds the device too; 30 s like the first alarm: the stack starts cold on a busy machine.
    page.wait_for_selector("#device-status >> text=Therapy", timeout=30_000)


def test_an_open_tab_that_only_polls_goes_to_the_login_after_the_idle_timeout(page, idle_stack):
    """The page's ticks do not keep the session alive; when it expires the page leaves for the log-in."""
    login(page, idle_stack, "viewer")
    page.goto(idle_stack.url + "device/scs-1")
    page.wait_for_selector("#device-status")
    page.wait_for_url("**/login?next=*", timeout=30_000)  # 6 s idle, then the next tick's 401
    assert "next=%2Fdevice%2Fscs-1" in page.url
