"""Programming forms: stimulation program and therapy, pump dosing, bolus and refill, alarm acknowledge.

Every callback that changes a device first calls ``require_role(CLINICIAN)`` on the server, so a
viewer's forged request is refused whatever the page shows; only then does it look the device up,
so what a refused user learns is the refusal. An unknown device or alarm (a stale page or a forged
request) is refused in the page, nothing sent. Commands go through the device's link (its only
port owner), which reads the status back and writes the audit entry; the device's own limits
decide, and a refusal is shown with the field, value and limit it broke.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dash import ALL, Dash, Input, Output, State, ctx, html, no_update

from protocols.messages import (
    AlarmAck,
    Area,
    Bolus,
    BolusKind,
    DeviceKind,
    DosingMode,
    DosingSet,
    Drug,
    DrugConcentration,
    EventCode,
    Message,
    PumpStatus,
    Refill,
    StimProgramSet,
    TherapySet,
    Waveform,
)

from .. import ids
from ..auth import PermissionDenied, Role, current_user, require_role
from ..commands import INVALID, LINK, NOT_APPLIED, UNKNOWN, readback_mismatches, short
from ..deps import Deps, UnknownDevice
from .forms import pump_form, scs_form

if TYPE_CHECKING:
    from ..link import DeviceLink


class FormError(ValueError):
    """A form value cannot become a command (empty, not a number, bad contact list)."""


def _number(value: object, label: str, scale: float = 1.0) -> int:
    if value in (None, ""):
        raise FormError(f"{label} is empty")
    try:
        return round(float(value) * scale)
    except (TypeError, ValueError):
        raise FormError(f"{label}: {value!r} is not a number") from None


def contacts_mask(text: str | None, label: str) -> int:
    """'0', '1+2' or '0-3' -> bit mask of contacts."""
    mask = 0
    for part in filter(None, (text or "").replace(" ", "").split("+")):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise FormError(f"{label}: {text!r} is not a contact list like 0, 1+2 or 0-3")
        for contact in range(int(low), int(high or low) + 1):
            if contact > 31:
                raise FormError(f"{label}: contact {contact} does not exist (0-31)")
            mask |= 1 << contact
    return mask


def layout(deps: Deps, name: str) -> html.Div:
    """The programming panel for device ``name`` (shown to everyone; enforced on the server)."""
    snap = deps.link(name).snapshot()
    user = current_user()
    note = (
        "" if user is not None and user.role == Role.CLINICIAN else " (view only: programming needs a clinician login)"
    )
    kind = snap.identity.kind if snap.identity else None
    form = pump_form(snap.status) if kind == DeviceKind.PUMP else scs_form(snap.status)
    return html.Div(
        [html.H2(f"Programming{note}"), form, html.Div(id=ids.PROGRAM_RESULT, role="status")], className="panel"
    )


def _drugs(text: str | None) -> tuple[DrugConcentration, ...]:
    items = []
    for part in filter(None, (text or "").replace(" ", "").split(",")):
        drug, _, conc = part.partition(":")
        try:
            items.append(DrugConcentration(Drug[drug.upper()], _number(conc, f"{drug} concentration", 1e6)))
        except KeyError:
            valid = ", ".join(d.name.lower() for d in Drug)
            raise FormError(f"unknown drug {drug!r}; valid: {valid}") from None
    if not items:
        raise FormError("name at least one drug, e.g. morphine:10")
    return tuple(items)


def build_command(trigger: str, values: dict) -> Message:
    """The command a form submits (``FormError`` for a value that cannot become one)."""
    if trigger == ids.SEND_PROGRAM:
        amp = _number(values["amp"], "Amplitude", 1000)
        area = Area(
            contacts_mask(values["anodes"], "Anodes"),
            contacts_mask(values["cathodes"], "Cathodes"),
            amp,
            _number(values["pw"], "Pulse width"),
            _number(values["rate"], "Rate"),
            Waveform.TONIC,
            0,
            0,
            0,
            0,
        )
        return StimProgramSet(
            _number(values["program"], "Program number"),
            True,
            (area,),
            _number(values["pmax"], "Patient maximum", 1000),
            2,
        )
    if trigger in (ids.THERAPY_ON, ids.THERAPY_OFF):
        return TherapySet(trigger == ids.THERAPY_ON)
    if trigger == ids.SEND_DOSING:
        return DosingSet(
            DosingMode.CONTINUOUS,
            _number(values["rate_ml"], "Rate", 1000),
            (),
            values["ptm"],
            _number(values["alarm_ml"], "Alarm volume", 1000),
        )
    if trigger == ids.SEND_BOLUS:
        return Bolus(
            BolusKind.CLINICIAN,
            _number(values["bolus_ml"], "Bolus volume", 1000),
            _number(values["bolus_min"], "Bolus duration"),
        )
    if trigger == ids.SEND_REFILL:
        return Refill(
            _number(values["withdrawn_ml"], "Withdrawn residual", 1000),
            _number(values["added_ml"], "Volume added", 1000),
            _drugs(values["drugs"]),
            bool(values["confirm"]),
            bool(values.get("accept", False)),
            False,
        )
    raise FormError(f"unknown form action {trigger!r}")


def render_result(result, mismatches: list[str] | None = None) -> html.Div:
    """What the device answered: applied (with the read-back) or refused (with the broken limit)."""
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
        changes = [
            html.Li(f"{key}: {short(result.before.get(key))} → {short(value)}")
            for key, value in result.after.items()
            if result.before.get(key) != value
        ]
        head = f"Applied and read back (audit #{result.audit_id})" + (
            ":" if changes else "; no reported field changed."
        )
        return html.Div([html.Span(head), html.Ul(changes)], className="result-ok", id="result-ok")
    if result.error_code == UNKNOWN:
        # Never "nothing was changed" on a guess: the device may have applied it (SPEC 4.2).
        return html.Div(
            f"** Outcome unknown: {result.message}. Check the status and the audit log before sending it "
            "again; the dashboard asks the device when the link is back and records the answer.",
            className="alarm alarm-medium",
            id="result-unknown",
        )
    if result.error_code == "DEVICE_FAULT":
        return html.Div(
            f"** Device fault: {result.message}. It may have been partly applied: read the status back.",
            className="alarm alarm-medium",
            id="result-unknown",
        )
    if result.error_code in (LINK, INVALID):
        text = result.message[:1].upper() + result.message[1:]  # "not sent: why"
        return html.Div(f"{text}. Nothing was changed.", className="result-refused", id="result-refused")
    if result.error_code == NOT_APPLIED:
        return html.Div(
            f"Not applied: {result.message}. Nothing was changed.", className="result-refused", id="result-refused"
        )
    where = f" — {result.field} = {result.value}, limit {result.limit}" if result.field else ""
    return html.Div(
        f"Refused: {result.error_code}: {result.message}{where}. Nothing was changed.",
        className="result-refused",
        id="result-refused",
    )


def register(app: Dash, deps: Deps) -> None:
    """Wire the forms; each callback checks the role on the server first."""

    @app.callback(Output(ids.PROGRAM_FORM, "children"), Input(ids.DEVICE_NAME, "data"))
    def show(name: str):
        return layout(deps, name)

    @app.callback(
        Output(ids.PROGRAM_RESULT, "children"),
        Input(ids.SEND_PROGRAM, "submit_n_clicks"),
        Input(ids.THERAPY_ON, "submit_n_clicks"),
        Input(ids.THERAPY_OFF, "submit_n_clicks"),
        State(ids.DEVICE_NAME, "data"),
        State(ids.SCS_PROGRAM_NO, "value"),
        State(ids.SCS_AMPLITUDE, "value"),
        State(ids.SCS_PULSE_WIDTH, "value"),
        State(ids.SCS_RATE, "value"),
        State(ids.SCS_ANODES, "value"),
        State(ids.SCS_CATHODES, "value"),
        State(ids.SCS_PATIENT_MAX, "value"),
        prevent_initial_call=True,
    )
    def program(_a, _b, _c, name, program, amp, pw, rate, anodes, cathodes, pmax):
        values = dict(program=program, amp=amp, pw=pw, rate=rate, anodes=anodes, cathodes=cathodes, pmax=pmax)
        return _submit(deps, name, ctx.triggered_id, values)

    @app.callback(
        Output(ids.PROGRAM_RESULT, "children", allow_duplicate=True),
        Input(ids.SEND_DOSING, "submit_n_clicks"),
        Input(ids.SEND_BOLUS, "submit_n_clicks"),
        Input(ids.SEND_REFILL, "submit_n_clicks"),
        State(ids.DEVICE_NAME, "data"),
        State(ids.PUMP_RATE, "value"),
        State(ids.PUMP_ALARM_VOLUME, "value"),
        State(ids.BOLUS_VOLUME, "value"),
        State(ids.BOLUS_DURATION, "value"),
        State(ids.REFILL_WITHDRAWN, "value"),
        State(ids.REFILL_ADDED, "value"),
        State(ids.REFILL_DRUGS, "value"),
        State(ids.REFILL_CONFIRM, "value"),
        State(ids.REFILL_ACCEPT, "value"),
        prevent_initial_call=True,
    )
    def pump(_a, _b, _c, name, rate_ml, alarm_ml, bolus_ml, bolus_min, withdrawn_ml, added_ml, drugs, confirm, accept):
        values = dict(
            rate_ml=rate_ml,
            alarm_ml=alarm_ml,
            bolus_ml=bolus_ml,
            bolus_min=bolus_min,
            withdrawn_ml=withdrawn_ml,
            added_ml=added_ml,
            drugs=drugs,
            confirm=bool(confirm),
            accept=bool(accept),
        )
        return _submit(deps, name, ctx.triggered_id, values, from_link=_patient_bolus)

    @app.callback(
        Output("ack-result", "children"),
        Input({"type": ids.ACK, "code": ALL}, "n_clicks"),
        State(ids.DEVICE_NAME, "data"),
        prevent_initial_call=True,
    )
    def acknowledge(clicks: list, name: str):
        if not ctx.triggered_id or not isinstance(clicks, list) or not any(clicks):
            return no_update
        try:
            user = require_role(Role.CLINICIAN)
        except PermissionDenied as exc:
            return html.Div(str(exc), className="result-refused", id="result-denied")
        try:
            link = deps.link(name)
        except UnknownDevice as exc:
            return _not_sent(f"{exc}")
        trigger = ctx.triggered_id
        code = trigger.get("code") if isinstance(trigger, dict) else None
        alarm = _event_code(code)
        if alarm is None:
            return _not_sent(f"alarm code {code!r} is not an alarm this dashboard knows")
        result = link.submit(AlarmAck(alarm), user.username, user.role.value)
        return render_result(result)


def _event_code(code: object) -> EventCode | None:
    """The event code ``code`` names, or None for anything else (a bool, text, an unknown number)."""
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    try:
        return EventCode(code)
    except ValueError:
        return None


def _patient_bolus(link: DeviceLink) -> dict:
    """What the dosing command keeps from the pump's current status: its patient-bolus settings."""
    status = link.snapshot().status
    return {"ptm": status.patient_bolus if isinstance(status, PumpStatus) else None}


def _not_sent(why: str) -> html.Div:
    return html.Div(f"Not sent: {why}. Nothing was changed.", className="result-refused", id="result-not-sent")


def _submit(
    deps: Deps,
    name: str,
    trigger: str,
    values: dict,
    from_link: Callable[[DeviceLink], dict] | None = None,
) -> html.Div:
    """Check the role, then the device, then the form; send the command and show the outcome.

    ``from_link`` adds values read from the device's link (after the checks) to ``values``.
    """
    try:
        user = require_role(Role.CLINICIAN)
    except PermissionDenied as exc:
        return html.Div(str(exc), className="result-refused", id="result-denied")
    try:
        link = deps.link(name)
    except UnknownDevice as exc:
        return _not_sent(f"{exc}")
    if from_link is not None:
        values = {**values, **from_link(link)}
    try:
        command = build_command(trigger, values)
    except FormError as exc:
        return html.Div(f"Not sent: {exc}.", className="result-refused")
    result = link.submit(command, user.username, user.role.value)
    return render_result(result, readback_mismatches(command, result.after) if result.ok else [])
