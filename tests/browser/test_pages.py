"""Every page in words, and the clinician's flows, in Chromium (issue 10, Done when).

A page may show no enum name (``LOW_RESERVOIR``), no wire field (``_ua``, ``_ul``, ``_ms``, ``_x100``)
and no epoch timestamp, whatever state the devices are in.
"""

from __future__ import annotations

import re
import time

from tests.browser.conftest import login

TRACE_NAMES = "() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => (p.data || []).map(t => t.name))"
WIRE = re.compile(r"\b[A-Z]+_[A-Z_]+\b|\w+_(?:ua|ul|ms|x100)\b|\b1[5-9]\d{11}\b")


def visible_text(page) -> str:
    return page.inner_text("body")


def assert_in_words(page, where: str) -> None:
    text = visible_text(page)
    found = sorted(set(WIRE.findall(text)))
    assert not found, f"{where} shows wire text {found}"


def wait_text(page, selector: str, needle: str, timeout_s: float = 30.0) -> str:
    """Poll ``selector``'s text until it holds ``needle`` (ticks redraw it, so no held element)."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        if page.query_selector(selector) is not None:
            text = page.inner_text(selector)
            if needle in text:
                return text
        page.wait_for_timeout(250)
    raise AssertionError(f"{selector} never said {needle!r}; last: {text!r}")


def test_no_page_shows_a_wire_name_a_wire_unit_or_an_epoch_time(page, stack):
    login(page, stack, "clinician")
    page.goto(stack.url + "device/pump-1")
    wait_text(page, "#device-alarms", "Low reservoir")  # an alarm, so alarm words are on the page
    wait_text(page, "#events-rows", "Low reservoir")
    page.fill("#pump-rate", "0.6")
    page.click("#send-dosing")
    page.wait_for_selector("#review-panel")
    assert_in_words(page, "the pump page with a review")
    page.click("#confirm-send")
    page.wait_for_selector("#program-result #result-ok", timeout=15_000)
    assert_in_words(page, "the pump page with a read-back")
    page.fill("#bolus-volume", "50")  # 50 mL: refused by the device, said in mL
    page.click("#send-bolus")
    page.click("#confirm-send")
    refused = page.wait_for_selector("#program-result #result-refused", timeout=15_000)
    assert "mL" in refused.inner_text()
    assert_in_words(page, "the pump page with a refusal")
    page.goto(stack.url + "device/scs-1")
    wait_text(page, "#device-status", "Battery")
    page.click("#impedance-check")
    page.wait_for_selector("#program-result #result-ok", timeout=15_000)
    assert "Impedance, contact 0" in page.inner_text("#program-result") or "no setting changed" in page.inner_text(
        "#program-result"
    )
    assert_in_words(page, "the stimulator page")
    page.goto(stack.url + "audit")
    wait_text(page, "#audit-page", "The audit chain is intact.")
    assert_in_words(page, "the audit page")
    page.goto(stack.url)
    page.wait_for_selector("#page")
    page.wait_for_timeout(1500)
    assert_in_words(page, "the overview")


def test_a_refill_uses_the_live_residual_and_a_discrepancy_must_be_accepted(page, filled_stack):
    login(page, filled_stack, "clinician")
    page.goto(filled_stack.url + "device/pump-1")
    first = wait_text(page, "#refill-expected", "mL")
    deadline = time.monotonic() + 15  # a tick or two, however busy the machine
    while page.inner_text("#refill-expected") == first:  # the expected residual follows the device
        assert time.monotonic() < deadline, f"the expected residual stayed at {first}"
        page.wait_for_timeout(200)
    page.fill("#refill-withdrawn", "0")  # far off what the pump expects
    page.fill("#refill-added", "20")
    page.click("#refill-confirm input")
    page.click("#send-refill")
    review = page.wait_for_selector("#review-panel").inner_text()
    assert "Withdrawn residual" in review and "New concentrations confirmed" in review
    page.click("#confirm-send")
    refused = page.wait_for_selector("#program-result #result-refused", timeout=15_000).inner_text()
    assert "Withdrawn residual 0 mL" in refused and "accept" in refused and "Nothing was changed" in refused
    page.click("#refill-accept input")
    page.click("#send-refill")
    page.click("#confirm-send")
    applied = page.wait_for_selector("#program-result #result-ok", timeout=15_000).inner_text()
    assert re.search(r"Reservoir\s+[\d.]+ mL\s+→\s+(19\.9\d*|20) mL", applied), applied  # refilled to 20 mL
    wait_text(page, "#events-rows", "Refill discrepancy accepted")


def test_a_lead_fracture_shows_as_an_alarm_under_the_impedance_chart_and_the_log_pages(page, fracture_stack):
    login(page, fracture_stack, "clinician")
    page.goto(fracture_stack.url + "device/scs-1")
    alarm = wait_text(page, "#device-alarms", "Lead open")
    assert "Acknowledge" in alarm
    wait_text(page, "#impedance-note", "contact 2 reads open")
    deadline = time.monotonic() + 15
    while not any(any("Impedance" in (name or "") for name in chart) for chart in page.evaluate(TRACE_NAMES)):
        assert time.monotonic() < deadline, "the impedance chart never drew a contact"
        page.wait_for_timeout(200)  # the chart is redrawn at the tick that sees its first contacts
    names = next(c for c in page.evaluate(TRACE_NAMES) if any("Impedance" in (n or "") for n in c))
    assert names.index("Impedance, contact 3") < names.index("Impedance, contact 10")  # lead order, not text order
    # Half-hourly scans fill the log: it pages, newest first, and the page keeps its height.
    wait_text(page, "#events-panel .page-info", "of ")
    height = page.eval_on_selector("#events-panel", "(el) => el.getBoundingClientRect().height")
    page.click("#events-older")
    # An older page is one with newer entries above it: its "Newer" button comes on. (Its rows need
    # not lie below any row read before the click: at this speed the device logs ~28 scans a wall
    # second, more than a page between a read and the click's answer.)
    page.wait_for_selector("#events-newer:not([disabled])", timeout=15_000)
    older = int(page.inner_text("#events-rows tr:nth-child(2) td:first-child"))
    seqs = [
        int(t)
        for t in page.eval_on_selector_all("#events-rows tr td:first-child", "(cells) => cells.map(c => c.innerText)")
    ]
    assert seqs == sorted(seqs, reverse=True) and len(seqs) == 20, seqs  # a full page, newest first
    page.wait_for_timeout(2000)  # ticks go on; the older page stays where it is
    assert int(page.inner_text("#events-rows tr:nth-child(2) td:first-child")) == older
    after = page.eval_on_selector("#events-panel", "(el) => el.getBoundingClientRect().height")
    assert abs(after - height) < 60
    page.click("#events-newest")
    wait_text(page, "#events-panel .page-info", "newest first")
    assert_in_words(page, "the stimulator page after a fracture")


def test_live_parts_go_on_after_the_server_gave_no_answer_for_a_while(page, stack):
    login(page, stack, "viewer")
    page.goto(stack.url + "device/scs-1")
    wait_text(page, "#device-status", "Device time")
    # Calls that get no answer at all (a restart, a dropped connection): Dash never turns their
    # tick back on by itself; the page must still go on once the server answers again.
    page.route("**/_dash-update-component*", lambda route: route.abort())
    page.wait_for_timeout(3000)
    before = page.inner_text("#device-status")
    page.unroute("**/_dash-update-component*")
    deadline = time.monotonic() + 45
    while page.inner_text("#device-status") == before:
        assert time.monotonic() < deadline, "the status never moved on after the server answered again"
        page.wait_for_timeout(250)


def test_a_server_slower_than_the_tick_still_shows_each_answer(page, stack):
    login(page, stack, "viewer")
    page.goto(stack.url + "device/scs-1")
    wait_text(page, "#device-status", "Device time")
    # Every call is held 2.5 s, longer than the 1 s tick: a callback on a fixed tick would have
    # each call dropped by the next one and never show anything new.
    held: list[tuple[float, object]] = []
    page.route("**/_dash-update-component*", lambda route: held.append((time.monotonic(), route)))
    seen, calls = {page.inner_text("#device-status")}, 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(seen) < 3:
        page.wait_for_timeout(200)
        while held and time.monotonic() - held[0][0] >= 2.5:
            route = held.pop(0)[1]
            calls += "device-status" in (route.request.post_data or "")
            route.continue_()
        seen.add(page.inner_text("#device-status"))
    page.unroute("**/_dash-update-component*")
    assert len(seen) >= 3, f"{len(seen) - 1} new status(es) shown in 20 s from {calls} calls"
    assert calls <= 8  # one call at a time: about one per answer and tick, not one per tick
