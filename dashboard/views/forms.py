"""The programming form layouts: stimulation program and therapy, pump dosing, bolus and refill.

Owns the inputs a clinician fills in and their labels and units (mA, µs, Hz, mL, mL/day), pre-filled
from the device's current status. Pure: status in, components out. Reading the forms back into
commands and sending them is ``dashboard.views.programming``'s. Must not import the link, the
store, auth or ``device_mock``.
"""

from __future__ import annotations

from dash import dcc, html

from protocols.messages import PumpStatus, ScsStatus

from .. import ids


def _mask_text(mask: int) -> str:
    return "+".join(str(i) for i in range(32) if mask >> i & 1)


READ_ONLY = "Programming needs a clinician login: these controls are read-only for a viewer."


def _field(label: str, component) -> list:
    return [html.Label(label, htmlFor=component.id), component]


def _lock(component, read_only: bool):
    """Disable an input or button for a viewer, saying why on hover (the server refuses anyway)."""
    if read_only:
        component.disabled = True
        component.title = READ_ONLY
    return component


def _locked(tree, read_only: bool):
    """Every input, checklist and button inside ``tree`` locked for a viewer."""
    if not read_only:
        return tree
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (dcc.Input, dcc.Checklist, html.Button)):
            _lock(node, True)
        children = getattr(node, "children", None)
        if isinstance(children, (list, tuple)):
            stack.extend(children)
        elif children is not None and hasattr(children, "children"):
            stack.append(children)
    return tree


def _review_button(label: str, button_id: str) -> html.Button:
    return html.Button(label, id=button_id, className="primary")


def scs_form(status: ScsStatus | None, read_only: bool = False) -> html.Div:
    """Program, therapy and impedance controls, pre-filled from the active program."""
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
    send = _review_button("Review program…", ids.SEND_PROGRAM)
    therapy = [
        dcc.ConfirmDialogProvider(html.Button("Therapy on"), id=ids.THERAPY_ON, message="Turn stimulation on?"),
        dcc.ConfirmDialogProvider(html.Button("Therapy off"), id=ids.THERAPY_OFF, message="Turn stimulation off?"),
        html.Button("Measure impedance", id=ids.IMPEDANCE_CHECK),
    ]
    body = html.Div([grid, html.Div([send, *therapy], className="row", style={"marginTop": "0.6rem"})])
    return _locked(body, read_only)


def pump_form(status: PumpStatus | None, read_only: bool = False) -> html.Div:
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
            html.P(
                [
                    "Expected residual now: ",
                    html.Span(f"{expected:.3f} mL", id=ids.REFILL_EXPECTED),
                    f"; capacity {capacity:.0f} mL. The device compares what you withdraw with its own expected "
                    "residual at the moment the refill is recorded.",
                ]
            ),
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
            # The device refuses a residual off the expected one until the clinician has investigated it.
            dcc.Checklist(
                [{"label": " I have investigated the residual discrepancy and accept it", "value": "yes"}],
                [],
                id=ids.REFILL_ACCEPT,
            ),
        ]
    )
    body = html.Div(
        [
            html.H3("Dosing"),
            dosing,
            _review_button("Review dosing…", ids.SEND_DOSING),
            html.H3("Clinician bolus"),
            bolus,
            _review_button("Review bolus…", ids.SEND_BOLUS),
            html.H3("Refill"),
            refill,
            _review_button("Review refill…", ids.SEND_REFILL),
        ]
    )
    return _locked(body, read_only)
