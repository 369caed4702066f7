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
            # The device refuses a residual off the expected one until the clinician has investigated it.
            dcc.Checklist(
                [{"label": " I have investigated the residual discrepancy and accept it", "value": "yes"}],
                [],
                id=ids.REFILL_ACCEPT,
            ),
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
