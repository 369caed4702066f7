"""Programming forms: stimulation program and therapy, pump dosing, bolus and refill, alarm acknowledge.

Every callback that changes a device first calls ``require_role(CLINICIAN)`` on the server, so a
viewer's forged request is refused whatever the page shows. Commands go through the device's link
(its only port owner), which reads the status back and writes the audit entry; the device's own
limits decide, and a refusal is shown with the field, value and limit it broke.
"""

from __future__ import annotations

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
    Message,
    PumpStatus,
    Refill,
    ScsStatus,
    StimProgramSet,
    TherapySet,
    Waveform,
)

from .. import ids
from ..auth import PermissionDenied, Role, current_user, require_role
from ..commands import INVALID, LINK, NOT_APPLIED, UNKNOWN, readback_mismatches, short
from ..deps import Deps


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


def _mask_text(mask: int) -> str:
    return "+".join(str(i) for i in range(32) if mask >> i & 1)


def _field(label: str, component) -> list:
    return [html.Label(label, htmlFor=component.id), component]


def scs_form(status: ScsStatus | None) -> html.Div:
    """Program and therapy controls, pre-filled from the active program."""
    area = status.areas[0] if status is not None and status.areas else None
    program = status.active_program if status is not None and status.active_program else 1
    grid = html.Div(
        [
            *_field("Program number", dcc.Input(id=ids.SCS_PROGRAM_NO, type="number", value=program)),
            *_field(
                "Amplitude (mA)",
                dcc.Input(
                    id=ids.SCS_AMPLITUDE, type="number", step=0.05, value=area.amplitude_ua / 1000 if area else 3.0
                ),
            ),
            *_field(
                "Pulse width (µs)",
                dcc.Input(id=ids.SCS_PULSE_WIDTH, type="number", value=area.pulse_width_us if area else 300),
            ),
            *_field("Rate (Hz)", dcc.Input(id=ids.SCS_RATE, type="number", value=area.rate_hz if area else 50)),
            *_field(
                "Anodes", dcc.Input(id=ids.SCS_ANODES, type="text", value=_mask_text(area.anode_mask) if area else "0")
            ),
            *_field(
                "Cathodes",
                dcc.Input(id=ids.SCS_CATHODES, type="text", value=_mask_text(area.cathode_mask) if area else "1"),
            ),
            *_field(
                "Patient maximum (mA)",
                dcc.Input(
                    id=ids.SCS_PATIENT_MAX,
                    type="number",
                    step=0.05,
                    value=(status.patient_amp_max_ua / 1000)
                    if status is not None and status.patient_amp_max_ua
                    else 6.0,
                ),
            ),
        ],
        className="form-grid",
    )
    send = dcc.ConfirmDialogProvider(
        html.Button("Send program", className="primary", id="send-program-button"),
        id=ids.SEND_PROGRAM,
        message="Send this stimulation program to the device and activate it?",
    )
    therapy = [
        dcc.ConfirmDialogProvider(html.Button("Therapy on"), id=ids.THERAPY_ON, message="Turn stimulation on?"),
        dcc.ConfirmDialogProvider(html.Button("Therapy off"), id=ids.THERAPY_OFF, message="Turn stimulation off?"),
    ]
    return html.Div([grid, html.Div([send, *therapy], className="row", style={"marginTop": "0.6rem"})])


def pump_form(status: PumpStatus | None) -> html.Div:
    """Dosing, bolus and refill wizard, pre-filled from the current settings."""
    rate = status.rate_ul_per_day / 1000 if status is not None else 0.5
    alarm = status.alarm_volume_ul / 1000 if status is not None else 2.0
    drugs = ", ".join(f"{d.drug.name.lower()}:{d.conc_ng_per_ml / 1e6:g}" for d in status.drugs) if status else ""
    capacity = status.capacity_ul / 1000 if status is not None else 20.0
    expected = status.reservoir_ul / 1000 if status is not None else 0.0
    dosing = html.Div(
        [
            *_field("Rate (mL/day)", dcc.Input(id=ids.PUMP_RATE, type="number", step=0.001, value=rate)),
            *_field(
                "Low-reservoir alarm (mL)", dcc.Input(id=ids.PUMP_ALARM_VOLUME, type="number", step=0.5, value=alarm)
            ),
        ],
        className="form-grid",
    )
    bolus = html.Div(
        [
            *_field("Bolus volume (mL)", dcc.Input(id=ids.BOLUS_VOLUME, type="number", step=0.01, value=0.1)),
            *_field("Bolus duration (min)", dcc.Input(id=ids.BOLUS_DURATION, type="number", value=30)),
        ],
        className="form-grid",
    )
    refill = html.Div(
        [
            html.P(f"Expected residual: {expected:.2f} mL; capacity {capacity:.0f} mL."),
            html.Div(
                [
                    *_field(
                        "Withdrawn residual (mL)",
                        dcc.Input(id=ids.REFILL_WITHDRAWN, type="number", step=0.01, value=round(expected, 2)),
                    ),
                    *_field(
                        "Volume added (mL)",
                        dcc.Input(id=ids.REFILL_ADDED, type="number", step=0.1, value=round(capacity - 0.0, 1)),
                    ),
                    *_field("Drugs (name:mg/mL, ...)", dcc.Input(id=ids.REFILL_DRUGS, type="text", value=drugs)),
                ],
                className="form-grid",
            ),
            dcc.Checklist([{"label": " I confirm the new concentrations", "value": "yes"}], [], id=ids.REFILL_CONFIRM),
        ]
    )
    return html.Div(
        [
            html.H3("Dosing"),
            dosing,
            dcc.ConfirmDialogProvider(
                html.Button("Send dosing", className="primary"),
                id=ids.SEND_DOSING,
                message="Send the new continuous rate and alarm volume?",
            ),
            html.H3("Clinician bolus"),
            bolus,
            dcc.ConfirmDialogProvider(
                html.Button("Deliver bolus", className="primary"), id=ids.SEND_BOLUS, message="Deliver this bolus now?"
            ),
            html.H3("Refill"),
            refill,
            dcc.ConfirmDialogProvider(
                html.Button("Record refill", className="primary"), id=ids.SEND_REFILL, message="Record this refill?"
            ),
        ]
    )


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
            False,
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
        return html.Div(
            f"Not sent: {result.message}. Nothing was changed.", className="result-refused", id="result-refused"
        )
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
        prevent_initial_call=True,
    )
    def pump(_a, _b, _c, name, rate_ml, alarm_ml, bolus_ml, bolus_min, withdrawn_ml, added_ml, drugs, confirm):
        status = deps.link(name).snapshot().status
        ptm = status.patient_bolus if isinstance(status, PumpStatus) else None
        values = dict(
            rate_ml=rate_ml,
            alarm_ml=alarm_ml,
            bolus_ml=bolus_ml,
            bolus_min=bolus_min,
            withdrawn_ml=withdrawn_ml,
            added_ml=added_ml,
            drugs=drugs,
            confirm=bool(confirm),
            ptm=ptm,
        )
        return _submit(deps, name, ctx.triggered_id, values)

    @app.callback(
        Output("ack-result", "children"),
        Input({"type": ids.ACK, "code": ALL}, "n_clicks"),
        State(ids.DEVICE_NAME, "data"),
        prevent_initial_call=True,
    )
    def acknowledge(clicks: list, name: str):
        if not ctx.triggered_id or not any(clicks):
            return no_update
        try:
            user = require_role(Role.CLINICIAN)
        except PermissionDenied as exc:
            return html.Div(str(exc), className="result-refused")
        result = deps.link(name).submit(AlarmAck(EventCode(ctx.triggered_id["code"])), user.username, user.role.value)
        return render_result(result)


def _submit(deps: Deps, name: str, trigger: str, values: dict) -> html.Div:
    try:
        user = require_role(Role.CLINICIAN)
    except PermissionDenied as exc:
        return html.Div(str(exc), className="result-refused", id="result-denied")
    try:
        command = build_command(trigger, values)
    except FormError as exc:
        return html.Div(f"Not sent: {exc}.", className="result-refused")
    result = deps.link(name).submit(command, user.username, user.role.value)
    return render_result(result, readback_mismatches(command, result.after) if result.ok else [])
