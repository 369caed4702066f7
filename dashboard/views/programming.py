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

from dash import ALL, Dash, Input, Output, State, ctx, dcc, html, no_update

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
    ImpedanceCheck,
    Message,
    PatientBolusSettings,
    PumpStatus,
    Refill,
    StimProgramSet,
    TherapySet,
    Waveform,
)

from .. import ids
from ..auth import PermissionDenied, Role, current_user, require_role
from ..commands import readback_mismatches
from ..deps import Deps, UnknownDevice
from .common import LOADING_AFTER_MS
from .forms import READ_ONLY, pump_form, scs_form
from .results import render_result
from .review import review_panel
from .ticks import paced, ticker

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
    """The programming panel for device ``name``: read-only for a viewer (and enforced on the server)."""
    snap = deps.link(name).snapshot()
    user = current_user()
    read_only = user is None or user.role != Role.CLINICIAN
    kind = snap.identity.kind if snap.identity else None
    form = pump_form(snap.status, read_only) if kind == DeviceKind.PUMP else scs_form(snap.status, read_only)
    children = [html.H2("Programming")]
    if kind == DeviceKind.PUMP:
        children.append(ticker(ids.TICK_REFILL, deps.tick_s))  # the refill form's live expected residual
    if read_only:
        children.append(html.P(READ_ONLY, className="read-only-note", id="read-only-note"))
    children += [
        form,
        dcc.Store(id=ids.REVIEWED, data=None),
        dcc.Loading(
            [html.Div(id=ids.REVIEW), html.Div(id=ids.PROGRAM_RESULT, role="status")],
            delay_show=LOADING_AFTER_MS,
            target_components={ids.REVIEW: "children", ids.PROGRAM_RESULT: "children"},
        ),
    ]
    return html.Div(children, className="panel")


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
    if trigger == ids.IMPEDANCE_CHECK:
        return ImpedanceCheck()
    if trigger == ids.SEND_DOSING:
        return DosingSet(
            DosingMode.CONTINUOUS,
            _number(values["rate_ml"], "Rate", 1000),
            (),
            values.get("ptm") or PatientBolusSettings(False, 0, 0, 0, 0),
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


def register(app: Dash, deps: Deps) -> None:
    """Wire the forms; each callback checks the role on the server first."""

    @app.callback(
        Output(ids.REVIEW, "children"),
        Output(ids.REVIEWED, "data"),
        Input(ids.SEND_PROGRAM, "n_clicks"),
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
    def program(clicks, name, program, amp, pw, rate, anodes, cathodes, pmax):
        if not clicks:
            return no_update, no_update
        values = dict(program=program, amp=amp, pw=pw, rate=rate, anodes=anodes, cathodes=cathodes, pmax=pmax)
        return _review(deps, name, ids.SEND_PROGRAM, values)

    @app.callback(
        Output(ids.REVIEW, "children", allow_duplicate=True),
        Output(ids.REVIEWED, "data", allow_duplicate=True),
        Input(ids.SEND_DOSING, "n_clicks"),
        Input(ids.SEND_BOLUS, "n_clicks"),
        Input(ids.SEND_REFILL, "n_clicks"),
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
    def pump(a, b, c, name, rate_ml, alarm_ml, bolus_ml, bolus_min, withdrawn_ml, added_ml, drugs, confirm, accept):
        if not any((a, b, c)):
            return no_update, no_update
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
        return _review(deps, name, ctx.triggered_id, values)

    @app.callback(
        Output(ids.PROGRAM_RESULT, "children"),
        Output(ids.REVIEW, "children", allow_duplicate=True),
        Output(ids.REVIEWED, "data", allow_duplicate=True),
        Input(ids.CONFIRM_SEND, "n_clicks"),
        State(ids.DEVICE_NAME, "data"),
        State(ids.REVIEWED, "data"),
        prevent_initial_call=True,
    )
    def send(clicks, name: str, reviewed: dict | None):
        if not clicks or not isinstance(reviewed, dict):
            return no_update, no_update, no_update
        trigger, values = reviewed.get("action"), reviewed.get("values")
        if trigger not in REVIEWED_ACTIONS or not isinstance(values, dict):
            return _not_sent("nothing was reviewed"), None, None
        return _submit(deps, name, trigger, values, from_link=_patient_bolus), None, None

    @app.callback(
        Output(ids.REVIEW, "children", allow_duplicate=True),
        Output(ids.REVIEWED, "data", allow_duplicate=True),
        Input(ids.CANCEL_SEND, "n_clicks"),
        prevent_initial_call=True,
    )
    def cancel(clicks):
        return (html.P("Not sent."), None) if clicks else (no_update, no_update)

    @app.callback(
        Output(ids.PROGRAM_RESULT, "children", allow_duplicate=True),
        Input(ids.THERAPY_ON, "submit_n_clicks"),
        Input(ids.THERAPY_OFF, "submit_n_clicks"),
        Input(ids.IMPEDANCE_CHECK, "n_clicks"),
        State(ids.DEVICE_NAME, "data"),
        prevent_initial_call=True,
    )
    def direct(on, off, impedance, name):
        if not any((on, off, impedance)):
            return no_update
        return _submit(deps, name, ctx.triggered_id, {})

    @app.callback(
        Output(ids.REFILL_EXPECTED, "children"),
        Input(ids.TICK_REFILL, "n_intervals"),
        State(ids.DEVICE_NAME, "data"),
        prevent_initial_call=True,
        running=paced(ids.TICK_REFILL),
    )
    def expected(_n, name):
        status = deps.link(name).snapshot().status
        return f"{status.reservoir_ul / 1000:.3f} mL" if isinstance(status, PumpStatus) else no_update

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


# Forms that are reviewed before they are sent; the rest (therapy, impedance, acknowledge) go at once.
REVIEWED_ACTIONS = (ids.SEND_PROGRAM, ids.SEND_DOSING, ids.SEND_BOLUS, ids.SEND_REFILL)


def _review(deps: Deps, name: str, trigger: str, values: dict) -> tuple[html.Div, dict | None]:
    """The review of a form (role, device and form checked first), and what Send will send."""
    try:
        require_role(Role.CLINICIAN)
    except PermissionDenied as exc:
        return html.Div(str(exc), className="result-refused", id="result-denied"), None
    try:
        link = deps.link(name)
    except UnknownDevice as exc:
        return _not_sent(f"{exc}"), None
    try:
        command = build_command(trigger, {**values, **_patient_bolus(link)})
    except FormError as exc:
        return html.Div(f"Not sent: {exc}.", className="result-refused", id="result-form"), None
    return review_panel(command, link.snapshot().status), {"action": trigger, "values": values}


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
