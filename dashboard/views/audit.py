"""The audit page: who did what to which device, what changed, and whether the hash chain holds.

For clinicians only (a viewer is told so; the CSV export refuses a viewer too). Each entry shows
the command in words, its result as a sentence and the settings it changed, before and after, in
the forms' units (``dashboard.words``). Must not import the link or ``device_mock``.
"""

from __future__ import annotations

import json

from dash import html

from ..auth import Role, current_user
from ..deps import Deps
from ..words import MESSAGE_WORDS, field_label, field_value, flatten, readback_rows, sentence
from .common import when

SHOWN = 100  # newest entries on the page; the export has them all


def action_text(action: str) -> str:
    """``StimProgramSet {"program":1,...}`` as "A stimulation program: Program 1, Amplitude (area 1) 3 mA, ..."."""
    name, _, payload = action.partition(" ")
    if name == "auth":
        return f"Log-in event: {payload.replace('_', ' ')}"
    what = MESSAGE_WORDS.get(name, sentence(name))
    try:
        fields = flatten("", json.loads(payload), {}) if payload else {}
    except json.JSONDecodeError:
        fields = {}
    settings = ", ".join(f"{field_label(p)} {field_value(p, v)}" for p, v in fields.items())
    what = what[:1].upper() + what[1:]
    return f"{what}: {settings}" if settings else what


def result_text(result: str) -> str:
    """The stored result in words: "applied: BolusReply {...}" as "Applied: Volume 0.1 mL, Ends 2026-...".

    A reply's fields are read as words like any setting (times as dates); anything else as a sentence.
    """
    head, _, rest = result.partition(": ")
    reply_name, _, payload = rest.partition(" ")
    if head == "applied" and payload.startswith("{"):
        payload, _, tail = payload.partition("; ")
        try:
            fields = flatten("", json.loads(payload), {})
        except json.JSONDecodeError:
            return sentence(result)
        shown = ", ".join(f"{field_label(p)} {field_value(p, v)}" for p, v in fields.items())
        text = f"Applied ({sentence(reply_name).lower()})" + (f": {shown}" if shown else "")
        return f"{text}; {sentence(tail)}" if tail else text
    return sentence(result)


def changes_text(before: dict, after: dict) -> str:
    """The settings an entry changed, "Rate 0.5 mL/day → 0.7 mL/day; ..."."""
    rows = readback_rows(before or {}, after or {})
    return "; ".join(f"{label} {old} → {new}" for label, old, new in rows) or "—"


def layout(deps: Deps) -> html.Div:
    """The newest audit entries, with the chain check and the export link."""
    user = current_user()
    if user is None or user.role != Role.CLINICIAN:
        return html.Div(
            [html.H1("Audit log"), html.P("The audit log is for clinicians: log in with a clinician account.")],
            id="audit-denied",
        )
    broken = deps.store.verify_audit()
    chain = "The audit chain is intact." if broken is None else f"The audit chain breaks at entry {broken}."
    head = html.Tr([html.Th(h) for h in ("#", "Time (UTC)", "User", "Device", "What", "Result", "Changed")])
    rows = [
        html.Tr(
            [
                html.Td(str(entry["id"])),
                html.Td(when(entry["time_ms"])),
                html.Td(f"{entry['user']} ({entry['role']})"),
                html.Td(entry["device"] or "—"),
                html.Td(action_text(entry["action"])),
                html.Td(result_text(entry["result"])),
                html.Td(changes_text(entry["before"], entry["after"])),
            ]
        )
        for entry in deps.store.audit(SHOWN)
    ]
    return html.Div(
        [
            html.H1("Audit log"),
            html.P([chain, " ", html.A("Export the whole log as CSV", href="/export/audit.csv", id="audit-export")]),
            html.Div(html.Table([head, *rows], className="log"), className="panel"),
        ],
        id="audit-page",
    )
