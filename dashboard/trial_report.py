"""The one-page trial report a clinician downloads and files: the same page as HTML and as PDF.

Owns :class:`TrialReport` (everything the page shows, in plain types), its words (dates as ISO UTC,
relief as "62 %", never epoch milliseconds or enum names), the diary plot, drawn once as shapes and
rendered both as inline SVG and as ``reportlab.graphics`` shapes so the two pages show the same
thing, :func:`to_html` and :func:`to_pdf`. Who fills a ``TrialReport`` from a device's diary and its
trial call is the caller's business: this module must not import Dash callbacks, the device link or
``device_mock``.

The PDF is made with reportlab: pure Python, well kept, and it needs no system library (WeasyPrint
would need Pango and cairo). It uses the standard PDF fonts, so its text is real, extractable text;
those fonts hold Latin-1 (WinAnsi) characters only, so a label outside them prints as a blank.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from html import escape
from typing import NamedTuple

from reportlab.graphics import shapes
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import KeepInFrame, Paragraph, SimpleDocTemplate, Table

__all__ = ["DECISIONS", "PAIN_SCORE", "SPASTICITY_SCORE", "TrialReport", "to_html", "to_pdf"]

PAIN_SCORE = "Pain (NRS 0-10)"
SPASTICITY_SCORE = "Spasticity (Modified Ashworth)"
DECISIONS = ("Implant", "Do not implant", "Extend the trial")
KINDS = {"scs": "Spinal cord stimulator", "pump": "Intrathecal drug pump"}
ASHWORTH_GRADES = ("0", "1", "1+", "2", "3", "4")  # the diary keeps the grade as its index 0-5
DAY_MS = 86_400_000
MME_SCALES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)  # the analgesics axis: the first that holds all
DASH = [4, 3]  # dashed lines, in points: the SVG's stroke-dasharray too
FOOTER = "by implant-telemetry (emulated device; not for clinical use)"
# Plot colours, shared by the SVG and the PDF (solid, so the PDF needs no transparency).
INK, GRID, SCORE, MEDICATION, BAND, THRESHOLD = "#222222", "#d0d0d0", "#1f4e99", "#8a8a8a", "#dcefdc", "#b3261e"


@dataclass(frozen=True)
class TrialReport:
    """Everything the one-page report shows; times are ms since 1970 UTC, relief 0..1."""

    patient_label: str
    device_name: str
    device_model: str
    serial: str
    kind: str  # "scs" or "pump"
    indication: str  # already in words, e.g. "Failed back surgery"
    baseline_from_ms: int
    trial_from_ms: int
    trial_to_ms: int
    settings: tuple[tuple[str, str], ...]  # (label, value in words)
    scores: tuple[tuple[int, float], ...]  # (time_ms, NRS or Ashworth index)
    score_name: str  # PAIN_SCORE or SPASTICITY_SCORE
    therapy: tuple[tuple[int, int, str], ...]  # (from_ms, to_ms, label): periods with therapy on
    medication: tuple[tuple[int, float], ...]  # (time_ms, mg MME/day)
    baseline_mean: float
    trial_mean: float
    relief_computed: float
    relief_reported: float | None
    flagged: bool  # reported and computed relief differ by more than 15 points
    medication_stable: bool
    responder: bool
    reasons: tuple[str, ...]  # why the call is "no", in words
    threshold: float  # 0.5
    decision: str | None  # one of DECISIONS
    decided_by: str | None
    decided_ms: int | None
    generated_ms: int

    def __post_init__(self) -> None:
        """Refuse a kind or decision the page has no words for."""
        if self.kind not in KINDS:
            raise ValueError(f"kind is one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.decision is not None and self.decision not in DECISIONS:
            raise ValueError(f"decision is one of {', '.join(DECISIONS)} or None, not {self.decision!r}")


def _utc(ms: int) -> dt.datetime:
    # integer arithmetic: no float rounding of the milliseconds
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)


def _when(ms: int) -> str:
    return _utc(ms).strftime("%Y-%m-%d %H:%M UTC")


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100)} %"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _identity(r: TrialReport) -> list[tuple[str, str]]:
    """The patient, device and dates block."""
    return [
        ("Patient", r.patient_label),
        ("Device", f"{r.device_name} ({KINDS[r.kind]})"),
        ("Model", r.device_model),
        ("Serial", r.serial),
        ("Indication", r.indication),
        ("Baseline", f"{_when(r.baseline_from_ms)} to {_when(r.trial_from_ms)}"),
        ("Trial", f"{_when(r.trial_from_ms)} to {_when(r.trial_to_ms)}"),
    ]


def _score(r: TrialReport, value: float, short: bool = False) -> str:
    if r.score_name != SPASTICITY_SCORE:
        return f"{value:.1f}"
    # the diary keeps Ashworth grades as an index: say the nearest grade too, which a clinician reads
    grade = ASHWORTH_GRADES[min(5, max(0, round(value)))]
    return f"index {value:.1f} ~ grade {grade}" if short else f"{value:.1f} on the index 0-5 (nearest grade {grade})"


def _figures(r: TrialReport) -> list[tuple[str, str]]:
    """The relief figures, in words."""
    reported = "not reported" if r.relief_reported is None else _pct(r.relief_reported)
    if r.flagged:
        reported += " (differs from the computed relief by more than 15 points)"
    before = _mean([v for t, v in r.medication if t < r.trial_from_ms])
    during = _mean([v for t, v in r.medication if t >= r.trial_from_ms])
    use = "none recorded"
    if before is not None or during is not None:
        use = f"{before or 0:.0f} mg MME/day before, {during or 0:.0f} during"
    return [
        ("Score", r.score_name),
        ("Baseline mean", _score(r, r.baseline_mean)),
        ("Trial mean", _score(r, r.trial_mean)),
        ("Relief, computed from the diary", _pct(r.relief_computed)),
        ("Relief, the patient's report", reported),
        ("Responder threshold", f"{_pct(r.threshold)} relief"),
        ("Analgesics", f"{use}: {'stable or reduced' if r.medication_stable else 'rose'}"),
    ]


def _call(r: TrialReport) -> tuple[str, list[str]]:
    """The responder call and the lines under it."""
    if r.responder:
        return "Responder", list(r.reasons) or ["Every criterion of the trial call was met."]
    return "Not a responder", list(r.reasons) or ["No reason was recorded."]


def _decision(r: TrialReport) -> str:
    if r.decision is None:
        return "Decision: not yet recorded"
    who = f" by {r.decided_by}" if r.decided_by else ""
    when = f" on {_when(r.decided_ms)}" if r.decided_ms is not None else ""
    return f"Decision: {r.decision}{who}{when}"


def _footer(r: TrialReport) -> str:
    return f"Generated {_when(r.generated_ms)} {FOOTER}"


class _Mark(NamedTuple):
    """One mark of the plot in points, y up from the bottom left: each renderer only translates it."""

    kind: str  # "box" (corners), "line" (a polyline), "dot" (centre; width is the radius), "text" (baseline start)
    points: tuple[tuple[float, float], ...]
    colour: str = INK
    width: float = 0.8
    dashed: bool = False
    text: str = ""
    anchor: str = "start"  # "start", "middle" or "end", as SVG and reportlab both say it
    size: float = 7.0


def _line(*points: tuple[float, float], colour: str = INK, width: float = 0.8, dashed: bool = False) -> _Mark:
    return _Mark("line", points, colour, width, dashed)


def _text(x: float, y: float, text: str, anchor: str = "start", colour: str = INK, size: float = 7.0) -> _Mark:
    return _Mark("text", ((x, y),), colour, text=text, anchor=anchor, size=size)


def _plot(r: TrialReport, width: float, height: float) -> list[_Mark]:
    """The diary plot: therapy bands, score line, analgesics, baseline and threshold lines, axes."""
    left, right, bottom, top = 30.0, width - 34.0, 22.0, height - 16.0
    t0, t1 = r.baseline_from_ms, max(r.trial_to_ms, r.baseline_from_ms + 1)
    spastic = r.score_name == SPASTICITY_SCORE
    y_max = len(ASHWORTH_GRADES) - 1 if spastic else 10

    def x(t: float) -> float:
        return left + (min(max(t, t0), t1) - t0) / (t1 - t0) * (right - left)

    def y(v: float, top_value: float = y_max) -> float:
        return bottom + min(max(v, 0.0), top_value) / top_value * (top - bottom)

    out = [_Mark("box", ((x(a), bottom), (x(b), top)), BAND) for a, b, _ in r.therapy]
    out += [_text(x(a) + 2, top - 8, label, colour="#3d6b3d", size=6.0) for a, _, label in r.therapy]
    for v in range(y_max + 1):  # y grid and labels
        out.append(_line((left, y(v)), (right, y(v)), colour=GRID, width=0.4))
        out.append(_text(left - 4, y(v) - 2.5, ASHWORTH_GRADES[v] if spastic else str(v), "end"))
    step = -(-max(1, (t1 - t0) // DAY_MS) // 7) * DAY_MS  # at most about eight dates, so they never overlap
    anchor = r.trial_from_ms // DAY_MS * DAY_MS  # the trial's first day always gets its date
    for t in range(anchor - (anchor - t0) // step * step, t1 + 1, step):
        out.append(_line((x(t), bottom), (x(t), bottom - 3), width=0.6))
        out.append(_text(x(t), bottom - 11, _utc(t).strftime("%Y-%m-%d"), "middle"))
    out.append(_line((x(r.trial_from_ms), bottom), (x(r.trial_from_ms), top), width=0.6, dashed=True))
    out.append(_text(x(r.trial_from_ms) + 2, top + 7, "trial start"))
    if r.medication:  # analgesics against their own scale on the right
        highest = max(v for _, v in r.medication)
        m_max = next((n for n in MME_SCALES if n >= highest), highest)
        points = [(x(t), y(v, m_max)) for t, v in sorted(r.medication)]
        out.append(_line(*points, colour=MEDICATION, width=0.6))
        out += [_Mark("box", ((px - 1.4, py - 1.4), (px + 1.4, py + 1.4)), MEDICATION) for px, py in points]
        out += [_text(right + 4, y(v, m_max) - 2.5, f"{v:.0f}") for v in (0, m_max / 2, m_max)]
        out.append(_text(width, top + 7, "analgesics, mg MME/day", "end", MEDICATION))
    goal = r.baseline_mean * (1 - r.threshold)
    out.append(_line((left, y(r.baseline_mean)), (right, y(r.baseline_mean)), dashed=True))
    out.append(_text(right - 2, y(r.baseline_mean) + 2.5, f"baseline mean {_score(r, r.baseline_mean, True)}", "end"))
    out.append(_line((left, y(goal)), (right, y(goal)), colour=THRESHOLD, dashed=True))
    out.append(
        _text(right - 2, y(goal) + 2.5, f"{_pct(r.threshold)} relief ({_score(r, goal, True)})", "end", THRESHOLD)
    )
    points = [(x(t), y(v)) for t, v in sorted(r.scores)]
    if points:
        out.append(_line(*points, colour=SCORE, width=1.0))
        out += [_Mark("dot", (point,), SCORE, 1.6) for point in points]
    out.append(_line((left, top), (left, bottom), (right, bottom), (right, top)))
    out.append(_text(0, top + 7, r.score_name, colour=SCORE))
    return out


def _svg(r: TrialReport, width: float = 520, height: float = 210) -> str:
    """The plot as inline SVG, presentation attributes only (no style attribute for a CSP to refuse)."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:g} {height:g}" role="img" '
        f'aria-label="{escape(r.score_name)} over the baseline and the trial" '
        'font-family="Helvetica, Arial, sans-serif">'
    ]
    for m in _plot(r, width, height):
        (x0, y0), *rest = [(px, height - py) for px, py in m.points]  # SVG's y runs down
        if m.kind == "box":
            (x1, y1) = rest[0]
            parts.append(
                f'<rect x="{x0:.1f}" y="{y1:.1f}" width="{x1 - x0:.1f}" height="{y0 - y1:.1f}" fill="{m.colour}"/>'
            )
        elif m.kind == "line":
            points = " ".join(f"{px:.1f},{py:.1f}" for px, py in [(x0, y0), *rest])
            dash = f' stroke-dasharray="{DASH[0]} {DASH[1]}"' if m.dashed else ""
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{m.colour}" stroke-width="{m.width:g}"{dash}/>'
            )
        elif m.kind == "dot":
            parts.append(f'<circle cx="{x0:.1f}" cy="{y0:.1f}" r="{m.width:g}" fill="{m.colour}"/>')
        else:
            parts.append(
                f'<text x="{x0:.1f}" y="{y0:.1f}" text-anchor="{m.anchor}" font-size="{m.size:g}" '
                f'fill="{m.colour}">{escape(m.text)}</text>'
            )
    return "\n".join([*parts, "</svg>"])


CSS = """\
body{font-family:Helvetica,Arial,sans-serif;font-size:10pt;color:#111;margin:0;background:#fff}
main{max-width:182mm;margin:6mm auto;padding:0 6mm} h1{font-size:16pt;margin:0 0 2mm}
h2{font-size:11pt;margin:4mm 0 1mm;border-bottom:1px solid #999} ul{margin:1mm 0 0 5mm;padding:0}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:1px 4px;vertical-align:top}
th{width:36%;font-weight:normal;color:#444} svg{width:100%;height:auto;display:block}
.yes{color:#1b5e20;font-weight:bold} .no{color:#b3261e;font-weight:bold}
footer{margin-top:4mm;padding-top:1mm;font-size:8pt;color:#555;border-top:1px solid #999}
@page{size:A4;margin:10mm} @media print{main{margin:0;max-width:none;padding:0}}
"""


def _rows(rows: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)


def to_html(report: TrialReport) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG, no script, no external asset.

    Its own CSP (a meta element: nothing may load, only this page's style block, by hash) keeps it
    inert wherever the filed copy is opened; every string from the report is HTML-escaped.
    """
    r = report
    style_hash = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
    csp = f"default-src 'none'; style-src 'sha256-{style_hash}'; base-uri 'none'; form-action 'none'"
    call, lines = _call(r)
    settings = _rows(list(r.settings)) or '<tr><td colspan="2">None recorded</td></tr>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<title>Trial report: {escape(r.patient_label)}</title>
<style>{CSS}</style></head>
<body><main>
<h1>Trial report: {escape(r.patient_label)}</h1>
<table>{_rows(_identity(r))}</table>
<h2>Settings</h2><table>{settings}</table>
<h2>Diary</h2>
{_svg(r)}
<h2>Relief</h2><table>{_rows(_figures(r))}</table>
<h2>Call</h2><p class="{"yes" if r.responder else "no"}">{escape(call)}</p>
<ul>{"".join(f"<li>{escape(line)}</li>" for line in lines)}</ul>
<h2>Decision</h2><p>{escape(_decision(r))}</p>
<footer>{escape(_footer(r))}</footer>
</main></body></html>
"""


def _drawing(r: TrialReport, width: float, height: float) -> shapes.Drawing:
    """The same plot as reportlab shapes (whose y runs up, as the plot's own does)."""
    drawing = shapes.Drawing(width, height)
    for m in _plot(r, width, height):
        paint, (x0, y0) = colors.HexColor(m.colour), m.points[0]
        if m.kind == "box":
            x1, y1 = m.points[1]
            drawing.add(shapes.Rect(x0, y0, x1 - x0, y1 - y0, fillColor=paint, strokeColor=None))
        elif m.kind == "line":
            flat = [c for point in m.points for c in point]
            dash = DASH if m.dashed else None
            drawing.add(shapes.PolyLine(flat, strokeColor=paint, strokeWidth=m.width, strokeDashArray=dash))
        elif m.kind == "dot":
            drawing.add(shapes.Circle(x0, y0, m.width, fillColor=paint, strokeColor=None))
        else:
            text = shapes.String(x0, y0, m.text, fontName="Helvetica", fontSize=m.size, fillColor=paint)
            text.textAnchor = m.anchor
            drawing.add(text)
    return drawing


# the bottom margin leaves room for the footer, drawn at 10 mm
PDF_PAGE = {"leftMargin": 18 * mm, "rightMargin": 18 * mm, "topMargin": 14 * mm, "bottomMargin": 18 * mm}
TABLE_STYLE = [(k, (0, 0), (-1, -1), v) for k, v in (("VALIGN", "TOP"), ("TOPPADDING", 1), ("BOTTOMPADDING", 1))]
TABLE_STYLE += [("LEFTPADDING", (0, 0), (-1, -1), 0), ("TEXTCOLOR", (0, 0), (0, -1), colors.HexColor("#444444"))]


def to_pdf(report: TrialReport) -> bytes:
    """The report as one A4 page of PDF, standard fonts, real text; content shrinks rather than spill."""
    r = report
    sheet = getSampleStyleSheet()
    body = ParagraphStyle("body", sheet["BodyText"], fontName="Helvetica", fontSize=9, leading=11)
    head = ParagraphStyle("head", body, fontName="Helvetica-Bold", fontSize=11, spaceBefore=6, spaceAfter=2)
    title = ParagraphStyle("title", body, fontName="Helvetica-Bold", fontSize=16, leading=19, spaceAfter=4)

    def para(text: str, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(text, quote=False), style)  # Paragraph reads markup: escape it

    def table(rows: list[tuple[str, str]], width: float) -> Table:
        cells = [[para(k), para(v)] for k, v in rows] or [[para("None recorded"), ""]]
        return Table(cells, colWidths=[width * 0.36, width * 0.64], hAlign="LEFT", style=TABLE_STYLE)

    def footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(doc.leftMargin, 10 * mm, _footer(r))
        canvas.restoreState()

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, title=f"Trial report: {r.patient_label}", author="implant-telemetry", **PDF_PAGE
    )
    call, lines = _call(r)
    call_style = ParagraphStyle(
        "call", body, fontName="Helvetica-Bold", textColor=colors.HexColor("#1b5e20" if r.responder else "#b3261e")
    )
    content = [
        para(f"Trial report: {r.patient_label}", title),
        table(_identity(r), doc.width),
        para("Settings", head),
        table(list(r.settings), doc.width),
        para("Diary", head),
        _drawing(r, doc.width, 210),
        para("Relief", head),
        table(_figures(r), doc.width),
        para("Call", head),
        para(call, call_style),
        *[para(f"- {line}") for line in lines],
        para("Decision", head),
        para(_decision(r)),
    ]
    # one page whatever the number of settings or reasons: shrink the whole block to fit
    doc.build([KeepInFrame(doc.width, doc.height, content, mode="shrink")], onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()
