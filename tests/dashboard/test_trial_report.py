"""The one-page trial report: the HTML holds the figures, escapes every string and runs no script;
the PDF is one portrait A4 page whose text (read back with poppler's pdftotext) holds the same.

Tests needing poppler-utils skip with the reason where it is missing, except under CI (CI=true),
where that fails (.ci/run installs it).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from dashboard.trial_report import PAIN_SCORE, SPASTICITY_SCORE, TrialReport, to_html, to_pdf

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def _poppler(tool: str) -> str:
    """The path of a poppler-utils tool, or skip (fail under CI) saying how to get it."""
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} not installed (apt-get install -y poppler-utils; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _twice_daily(first_day: int, values: list[float]) -> tuple[tuple[int, float], ...]:
    """Scores at 08:00 and 20:00 UTC from ``first_day`` (days after START_MS), in order."""
    return tuple(
        (START_MS + (first_day + i // 2) * DAY_MS + (8 + 12 * (i % 2)) * HOUR_MS, v) for i, v in enumerate(values)
    )


def _responder(**changes: object) -> TrialReport:
    """A 7-day baseline then a 7-day SCS trial, NRS twice a day: 62 % computed, 70 % reported, implanted."""
    baseline = [8.0, 8.0] + [7.0] * 12  # sum 100: mean 7.14
    trial = [3.0] * 10 + [2.0] * 4  # sum 38: relief 1 - 38/100 = 62 %
    report = TrialReport(
        patient_label="Patient 0042 (virtual)",
        device_name="Trial stimulator 1",
        device_model="implant-mock SCS (boston family)",
        serial="SCS-TR-00042",
        kind="scs",
        indication="Failed back surgery",
        baseline_from_ms=START_MS,
        trial_from_ms=START_MS + 7 * DAY_MS,
        trial_to_ms=START_MS + 14 * DAY_MS,
        settings=(
            ("Program 1", "5.0 mA, 300 µs, 50 Hz, contacts 3-/4+"),
            ("Cycling", "continuous"),
            ("Patient maximum", "7.5 mA"),
        ),
        scores=_twice_daily(0, baseline) + _twice_daily(7, trial),
        score_name=PAIN_SCORE,
        therapy=((START_MS + 7 * DAY_MS, START_MS + 14 * DAY_MS, "Program 1 on"),),
        medication=tuple((START_MS + d * DAY_MS + 21 * HOUR_MS, 40.0 if d < 7 else 30.0) for d in range(14)),
        baseline_mean=100 / 14,
        trial_mean=38 / 14,
        relief_computed=1 - 38 / 100,
        relief_reported=0.70,
        flagged=False,
        medication_stable=True,
        responder=True,
        reasons=(),
        threshold=0.5,
        decision="Implant",
        decided_by="dr.lee",
        decided_ms=START_MS + 14 * DAY_MS + 2 * HOUR_MS,
        generated_ms=START_MS + 14 * DAY_MS + 3 * HOUR_MS,
    )
    return dataclasses.replace(report, **changes)


def _non_responder() -> TrialReport:
    return _responder(
        relief_computed=0.31,
        relief_reported=0.55,
        flagged=True,
        medication_stable=False,
        responder=False,
        reasons=("relief 31 % is below 50 %", "analgesic use rose"),
        decision=None,
        decided_by=None,
        decided_ms=None,
    )


def _spasticity() -> TrialReport:
    return _responder(
        kind="pump",
        device_name="Trial pump 2",
        device_model="implant-mock pump",
        serial="PMP-TR-00007",
        indication="Spasticity (multiple sclerosis)",
        settings=(("Test dose", "baclofen 50 µg intrathecal bolus"),),
        score_name=SPASTICITY_SCORE,
        scores=_twice_daily(0, [4.0] * 14) + _twice_daily(7, [2.0] * 14),
        medication=(),
        baseline_mean=4.0,
        trial_mean=2.0,
        relief_computed=0.5,
        relief_reported=None,
    )


def _pdf_text(tmp_path: Path, report: TrialReport) -> str:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(to_pdf(report))
    return subprocess.run(
        [_poppler("pdftotext"), "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout


def test_the_html_holds_the_figures_dates_and_decision():
    page = to_html(_responder())
    for words in (
        "62 %",
        "70 %",
        "50 % relief",
        "2026-01-01 00:00 UTC",
        "2026-01-08 00:00 UTC",
        "2026-01-15 00:00 UTC",
    ):
        assert words in page
    assert "Decision: Implant by dr.lee on 2026-01-15 02:00 UTC" in page
    assert "Responder" in page and "Failed back surgery" in page and "SCS-TR-00042" in page
    assert "5.0 mA, 300 µs, 50 Hz, contacts 3-/4+" in page
    assert "Generated 2026-01-15 03:00 UTC by implant-telemetry (emulated device; not for clinical use)" in page
    assert "<svg" in page and "2026-01-08</text>" in page  # the time axis is in dates
    assert str(START_MS) not in page and "1767" not in page  # never epoch milliseconds


def test_the_html_is_self_contained_and_runs_nothing():
    page = to_html(_responder())
    assert "<script" not in page.lower() and "javascript:" not in page.lower()
    assert not re.search(r"\s(src|href)=", page)  # no external asset of any kind
    assert not re.search(r"\son\w+=", page)  # no event handler attribute
    assert " style=" not in page  # only the one style block, allowed by its hash below
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in page and "default-src 'none'" in page


def test_every_string_is_escaped():
    page = to_html(_responder(patient_label="<b>Ann</b> & co", settings=(("<i>x</i>", '"a" <script>'),)))
    assert "<b>" not in page and "<i>" not in page and "<script" not in page
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; co" in page and "&lt;script&gt;" in page


def test_the_non_responder_shows_reasons_flag_and_no_decision():
    page = to_html(_non_responder())
    assert "Not a responder" in page and "relief 31 % is below 50 %" in page and "analgesic use rose" in page
    assert "Decision: not yet recorded" in page
    assert "55 % (differs from the computed relief by more than 15 points)" in page


def test_the_spasticity_report_names_its_score_and_grades():
    page = to_html(_spasticity())
    assert SPASTICITY_SCORE in page and ">1+</text>" in page  # the y axis in Ashworth grades
    assert "4.0 on the index 0-5 (nearest grade 3)" in page and "Pain (NRS" not in page
    assert "Relief, the patient&#x27;s report</th><td>not reported" in page


def test_an_unknown_kind_or_decision_is_refused():
    with pytest.raises(ValueError, match="kind"):
        _responder(kind="SCS")
    with pytest.raises(ValueError, match="decision"):
        _responder(decision="IMPLANT")


def test_the_pdf_text_holds_the_report(tmp_path):
    text = _pdf_text(tmp_path, _responder())
    for words in (
        "Patient 0042 (virtual)",
        "62 %",
        "70 %",
        "Decision: Implant by dr.lee",
        "SCS-TR-00042",
        "5.0 mA, 300 µs, 50 Hz",
        "2026-01-08 00:00 UTC",
        "Responder",
        "not for clinical use",
    ):
        assert words in text, words
    assert "2026-01-08" in text.split("Diary")[1]  # the plot's date axis is real text too


def test_the_pdf_is_one_portrait_page(tmp_path):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(to_pdf(_responder()))
    info = subprocess.run([_poppler("pdfinfo"), str(pdf)], check=True, capture_output=True, text=True).stdout
    assert re.search(r"^Pages:\s+1$", info, re.M), info
    subprocess.run(
        [_poppler("pdftoppm"), "-png", "-r", "50", "-singlefile", str(pdf), str(tmp_path / "page")], check=True
    )
    png = tmp_path / "page.png"
    assert png.exists() and png.stat().st_size > 1024
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    assert height > width * 1.3  # A4 portrait: 297/210 = 1.41


def test_the_pdf_of_a_non_responder_and_of_a_spasticity_trial(tmp_path):
    text = _pdf_text(tmp_path, _non_responder())
    assert "Not a responder" in text and "analgesic use rose" in text and "Decision: not yet recorded" in text
    text = _pdf_text(tmp_path, _spasticity())
    assert SPASTICITY_SCORE in text and "PMP-TR-00007" in text


def test_a_long_report_still_fits_one_page(tmp_path):
    settings = tuple(
        (f"Program {i}", "5.0 mA, 300 µs, 50 Hz, contacts 3-/4+, cycling 30 s on / 60 s off") for i in range(40)
    )
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(to_pdf(_responder(settings=settings, patient_label="<b>Ann</b> & co")))
    info = subprocess.run([_poppler("pdfinfo"), str(pdf)], check=True, capture_output=True, text=True).stdout
    assert re.search(r"^Pages:\s+1$", info, re.M), info
    text = subprocess.run([_poppler("pdftotext"), str(pdf), "-"], check=True, capture_output=True, text=True).stdout
    assert "<b>Ann</b> & co" in text and "Program 39" in text  # markup is text, not reportlab's tags
