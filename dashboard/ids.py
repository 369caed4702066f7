"""Component ids of the dashboard, in one place (callbacks and tests refer to these names)."""

from __future__ import annotations

URL = "url"
PAGE = "page"
# Each live callback has its own tick (an interval that ``views.ticks.paced`` stops while the
# callback runs), so a slow one never stacks calls or has them dropped.
TICK_BANNER = "tick-banner"
TICK_FLEET = "tick-fleet"
TICK_STATUS = "tick-status"
TICK_CHARTS = "tick-charts"
TICK_SPEED = "tick-speed"
TICK_REFILL = "tick-refill"
TICK_EVENTS = "tick-events"
TICK_ALARMS = "tick-alarms"
TICK_TRIAL = "tick-trial"
LIVE_TICKS = (
    *(TICK_BANNER, TICK_FLEET, TICK_STATUS, TICK_CHARTS, TICK_SPEED, TICK_REFILL, TICK_EVENTS, TICK_ALARMS),
    TICK_TRIAL,
)
BANNER = "alarm-banner"
USER_BOX = "user-box"

OVERVIEW_CARDS = "overview-cards"
OVERVIEW_COUNTS = "overview-counts"
OVERVIEW_TABLE = "overview-table"
OVERVIEW_SEARCH = "overview-search"
OVERVIEW_KIND = "overview-kind"
OVERVIEW_ALARM = "overview-alarm"
OVERVIEW_LINK = "overview-link"
OVERVIEW_SORT = "overview-sort"  # dcc.Store: {"column": key, "descending": bool}
OVERVIEW_SORT_BUTTON = "overview-sort-button"  # pattern-matching id: {"type": ..., "column": key}
OVERVIEW_PAGE = "overview-current-page"  # dcc.Store: the 0-based page shown
OVERVIEW_PAGE_TEXT = "overview-page-text"
OVERVIEW_PREV = "overview-prev"
OVERVIEW_NEXT = "overview-next"

DEVICE_NAME = "device-name"
GAUGES = "device-gauges"
STATUS_TEXT = "device-status"
PROJECTIONS = "device-projections"
LINK_PANEL = "device-link"
RANGE = "chart-range"
RANGE_NOTE = "chart-range-note"  # what the ranges mean at the device's clock speed
SPEED_SAMPLE = "device-speed-sample"  # dcc.Store: a (wall s, device ms) pair to judge the clock speed by
CHARTS = "device-charts"
IMPEDANCE_NOTE = "impedance-note"  # open or shorted contacts of the last check, under the charts
CHART = "chart"  # pattern-matching id: {"type": CHART, "series": name}
CHART_CURSOR = "chart-cursor"  # dcc.Store: last time (ms) drawn per series
ALARMS = "device-alarms"
ALARMS_SHOWN = "device-alarms-shown"  # dcc.Store: what the alarm list on the page shows (alarm_signature)
ACK = "ack"  # pattern-matching id: {"type": ACK, "code": int}

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
REFILL_EXPECTED = "refill-expected"  # the live expected residual beside the refill form
IMPEDANCE_CHECK = "impedance-check"
REVIEW = "program-review"  # the pending-against-current table of the command about to be sent
REVIEWED = "program-reviewed"  # dcc.Store: the reviewed form (action and values) that Send sends
CONFIRM_SEND = "confirm-send"
CANCEL_SEND = "cancel-send"
EXPORT = "export-link"
