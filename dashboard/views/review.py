"""The review step before a programming command is sent: pending against current, field by field.

As a clinician programmer does (SynchroMed's clinician app reviews pending against current settings
before it sends), a form is first turned into its command and shown beside what the device runs
now, in the form's units, changed settings marked; only "Send" sends it. Pure: a command and a
status in, components out. Must not import the link, the store, auth or ``device_mock``.
"""

from __future__ import annotations

from typing import Any

from dash import html

from protocols.codec import to_json
from protocols.messages import Message, PumpStatus, Refill, ScsStatus

from .. import ids
from ..words import MESSAGE_WORDS, field_label, field_value, flatten

_ABSENT = object()

# A command's field that a status reports under another name.
STATUS_NAMES = {"program": "active_program"}
# Command fields that are the request itself rather than a setting (not compared).
NOT_SETTINGS = {"activate", "kind", "concentration_confirmed", "discrepancy_accepted", "bridge_bolus"}


def _current(status: ScsStatus | PumpStatus | None, command: Message) -> dict[str, Any]:
    """What the device runs now, under the command's field names (absent: the status does not say)."""
    if status is None:
        return {}
    if isinstance(command, Refill) and isinstance(status, PumpStatus):
        # The nurse withdraws what the device expects to be left, and refills to what is added.
        drugs = [{"drug": d.drug.name, "conc_ng_per_ml": d.conc_ng_per_ml} for d in status.drugs]
        return {"withdrawn_ul": status.reservoir_ul, "drugs": drugs}
    out = {}
    for name in to_json(command):
        attribute = STATUS_NAMES.get(name, name)
        if hasattr(status, attribute):
            out[name] = to_json(getattr(status, attribute))
    return out


def review_rows(command: Message, status: ScsStatus | PumpStatus | None) -> list[tuple[str, str, str, bool]]:
    """(setting, now, to send, changed) for every setting the command sends."""
    pending = flatten("", {k: v for k, v in to_json(command).items() if k not in NOT_SETTINGS}, {})
    current = flatten("", _current(status, command), {})
    rows = []
    for path, value in pending.items():
        now = field_value(path, current[path]) if path in current else "—"
        rows.append((field_label(path), now, field_value(path, value), current.get(path, _ABSENT) != value))
    if isinstance(command, Refill):
        for flag in ("concentration_confirmed", "discrepancy_accepted", "bridge_bolus"):
            rows.append((field_label(flag), "", field_value(flag, bool(getattr(command, flag))), False))
    return rows


def review_panel(command: Message, status: ScsStatus | PumpStatus | None, note: str = "") -> html.Div:
    """The pending command against the current settings, with Send and Cancel."""
    rows = review_rows(command, status)
    head = html.Tr([html.Th("Setting"), html.Th("Now"), html.Th(""), html.Th("To send")])
    body = [
        html.Tr(
            [html.Td(label), html.Td(now), html.Td("→"), html.Td(new)],
            className="changed" if changed else None,
        )
        for label, now, new, changed in rows
    ]
    title = MESSAGE_WORDS.get(type(command).__name__, "a command")
    children = [
        html.H3(f"Review: {title}"),
        html.Table([head, *body], className="log changes"),
    ]
    if note:
        children.append(html.P(note))
    children.append(
        html.Div(
            [
                html.Button("Send to the device", id=ids.CONFIRM_SEND, className="primary"),
                html.Button("Cancel", id=ids.CANCEL_SEND),
            ],
            className="row",
        )
    )
    return html.Div(children, className="review", id="review-panel")
