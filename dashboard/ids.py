"""Component ids of the dashboard, in one place (callbacks and tests refer to these names)."""

from __future__ import annotations

URL = "url"
PAGE = "page"
TICK = "tick"
BANNER = "alarm-banner"
USER_BOX = "user-box"

OVERVIEW_CARDS = "overview-cards"

DEVICE_NAME = "device-name"
GAUGES = "device-gauges"
STATUS_TEXT = "device-status"
PROJECTIONS = "device-projections"
LINK_PANEL = "device-link"
RANGE = "chart-range"
CHARTS = "device-charts"
CHART = "chart"  # pattern-matching id: {"type": CHART, "series": name}
CHART_CURSOR = "chart-cursor"  # dcc.Store: last time (ms) drawn per series
ALARMS = "device-alarms"
ALARMS_SHOWN = "device-alarms-shown"  # dcc.Store: what the alarm list on the page shows (alarm_signature)
ACK = "ack"  # pattern-matching id: {"type": ACK, "code": int}
ALARM_HISTORY = "alarm-history"
EVENTS = "device-events"
EVENT_FILTER = "event-filter"

PROGRAM_FORM = "program-form"
PROGRAM_RESULT = "program-result"
SCS_AMPLITUDE = "scs-amplitude"
SCS_PULSE_WIDTH = "scs-pulse-width"
SCS_RATE = "scs-rate"
SCS_ANODES = "scs-anodes"
SCS_CATHODES = "scs-cathodes"
SCS_PATIENT_MAX = "scs-patient-max"
SCS_PROGRAM_NO = "scs-program-number"
SEND_PROGRAM = "send-program"
THERAPY_ON = "therapy-on"
THERAPY_OFF = "therapy-off"
PUMP_RATE = "pump-rate"
PUMP_ALARM_VOLUME = "pump-alarm-volume"
SEND_DOSING = "send-dosing"
BOLUS_VOLUME = "bolus-volume"
BOLUS_DURATION = "bolus-duration"
SEND_BOLUS = "send-bolus"
REFILL_WITHDRAWN = "refill-withdrawn"
REFILL_ADDED = "refill-added"
REFILL_DRUGS = "refill-drugs"
REFILL_CONFIRM = "refill-confirm"
REFILL_ACCEPT = "refill-accept"
SEND_REFILL = "send-refill"
EXPORT = "export-link"
