"""Trials in Chromium: an SCS trial from baseline to the call, the decision and the report; an intrathecal one."""

from __future__ import annotations

import re
import time

from tests.browser.conftest import login
from tests.browser.test_pages import TRACE_NAMES, assert_in_words, wait_text


def test_an_scs_trial_walks_from_baseline_to_the_call_the_decision_and_the_report(page, trial_stack):
    login(page, trial_stack, "clinician")
    page.goto(trial_stack.url + "device/scs-trial-1")
    deadline = time.monotonic() + 20  # the patient's pain is charted beside the therapy on the device page
    while not any("Pain (diary)" in (n or "") for chart in page.evaluate(TRACE_NAMES) for n in chart):
        assert time.monotonic() < deadline, page.evaluate(TRACE_NAMES)
        page.wait_for_timeout(250)
    assert_in_words(page, "the trial stimulator's device page")
    page.click("#trial-link")
    wait_text(page, "#trial-figures", "baseline mean")  # the baseline week came with the patient
    call = wait_text(page, "#trial-figures", "esponder (at least 50 % relief)")  # a day of trial is enough
    assert "Relief from the diary" in call and "Relief the patient reports" in call
    page.wait_for_selector("#trial-plot .js-plotly-plot", timeout=15_000)
    assert page.eval_on_selector("#trial-plot .js-plotly-plot", "(el) => el.data[0].x.length") >= 14
    assert_in_words(page, "the trial page")
    page.click("#trial-decide-implant")
    wait_text(page, "#trial-decision-result", "Decision recorded: Implant.")
    wait_text(page, "#trial-figures", "Implant, by clinician")
    wait_text(page, "#trial-figures", "Implanted")  # the device's lifecycle moved on
    deadline = time.monotonic() + 30  # the trial's end brings the patient's own relief report
    while not re.search(r"Relief the patient reports\s+\d+ %", page.inner_text("#trial-figures")):
        assert time.monotonic() < deadline, page.inner_text("#trial-figures")
        page.wait_for_timeout(250)
    report = page.request.get(trial_stack.url + "trial/scs-trial-1/report.html")
    text = report.text()
    assert report.status == 200 and "Implant" in text and ("Responder" in text or "Not a responder" in text)
    pdf = page.request.get(trial_stack.url + "trial/scs-trial-1/report.pdf")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    assert_in_words(page, "the trial page after the decision")


def test_an_intrathecal_trial_takes_a_test_dose_a_typed_score_and_a_decision_not_to_implant(page, trial_stack):
    login(page, trial_stack, "clinician")
    page.goto(trial_stack.url + "device/pump-trial-1")
    page.fill("#bolus-volume", "0.2")  # 0.1 mg of the trial's 0.5 mg/mL morphine
    page.fill("#bolus-duration", "15")
    page.click("#send-bolus")
    page.click("#confirm-send")
    page.wait_for_selector("#program-result #result-ok", timeout=15_000)
    page.click("#trial-link")
    wait_text(page, "#trial-figures", "baseline mean")
    deadline = time.monotonic() + 30  # the test dose is watched: scores every 2 h, off the diary's 08:00 and 20:00
    while not re.search(r"\d{4}-\d\d-\d\d (?!08|20)\d\d:00:00 UTC\s+Pain", page.inner_text("#trial-diary")):
        assert time.monotonic() < deadline, page.inner_text("#trial-diary")
        page.wait_for_timeout(250)
    page.fill("#trial-add-value", "5")
    page.click("#trial-add")
    page.wait_for_selector("#trial-add-result #result-ok", timeout=15_000)
    wait_text(page, "#trial-diary", "Typed by a clinician")
    page.click("#trial-decide-do-not-implant")
    wait_text(page, "#trial-decision-result", "Decision recorded: Do not implant.")
    wait_text(page, "#trial-figures", "Trial ended without an implant")
    assert_in_words(page, "the intrathecal trial page")
