"""What a programming command came to, as the page shows it: applied with its read-back, or refused.

The read-back is a table of each changed setting, before and after, in the form's units; a refusal
says why in a sentence with the broken limit in those units (``dashboard.words``); an unknown
outcome never says "nothing was changed". Pure: a ``CommandResult`` in, components out.
"""

from __future__ import annotations

from dash import html

from ..commands import INVALID, LINK, NOT_APPLIED, UNKNOWN
from ..words import enum_word, readback_rows, refusal_text, sentence

__all__ = ["change_table", "render_result"]


def change_table(rows: list[tuple[str, str, str]], head: tuple[str, ...]) -> html.Table:
    """Settings as a table: setting, one value, the other (before and after, or current and pending)."""
    header = html.Tr([html.Th(h) for h in head])
    body = [html.Tr([html.Td(label), html.Td(old), html.Td("→"), html.Td(new)]) for label, old, new in rows]
    return html.Table([header, *body], className="log changes")


def render_result(result, mismatches: list[str] | None = None) -> html.Div:
    """What the device answered: applied (with the read-back) or refused (with the broken limit), in words."""
    if result.ok and mismatches:
        return html.Div(
            [
                html.Span("** Applied, but the read-back differs from what was sent:"),
                html.Ul([html.Li(m) for m in mismatches]),
            ],
            className="alarm alarm-medium",
            id="result-mismatch",
        )
    if result.ok:
        rows = readback_rows(result.before, result.after)
        head = f"Applied and read back (audit entry {result.audit_id})" + (":" if rows else "; no setting changed.")
        table = [change_table(rows, ("Setting", "Before", "", "After"))] if rows else []
        return html.Div([html.Span(head), *table], className="result-ok", id="result-ok")
    if result.error_code == UNKNOWN:
        # Never "nothing was changed" on a guess: the device may have applied it (SPEC 4.2).
        return html.Div(
            f"** Outcome unknown: {sentence(result.message)}. Check the status and the audit log before sending it "
            "again; the dashboard asks the device when the link is back and records the answer.",
            className="alarm alarm-medium",
            id="result-unknown",
        )
    if result.error_code == "DEVICE_FAULT":
        return html.Div(
            f"** Device fault: {sentence(result.message)}. It may have been partly applied: read the status back.",
            className="alarm alarm-medium",
            id="result-unknown",
        )
    if result.error_code in (LINK, INVALID):
        return html.Div(
            f"{sentence(result.message)}. Nothing was changed.", className="result-refused", id="result-refused"
        )
    if result.error_code == NOT_APPLIED:
        return html.Div(
            f"Not applied: {sentence(result.message)}. Nothing was changed.",
            className="result-refused",
            id="result-refused",
        )
    why = refusal_text(result.error_code, result.message, result.field, result.value, result.limit)
    return html.Div(
        f"Refused ({enum_word(result.error_code).lower()}): {why}. Nothing was changed.",
        className="result-refused",
        id="result-refused",
    )
