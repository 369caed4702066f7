"""Dashboard view logic without a browser: form parsing, chart ticks, rendering of results."""

from __future__ import annotations

from dataclasses import dataclass, replace
from dataclasses import field as dc_field

import numpy as np
import pytest
from dash import no_update

from dashboard import figures, ids
from dashboard.commands import readback_mismatches, settle
from dashboard.series import info, series_from_status
from dashboard.views.device import extend_charts
from dashboard.views.programming import FormError, build_command, contacts_mask, render_result
from protocols.codec import to_json
from protocols.errors import CommandUnresolved, DeviceRejected, ErrorCode
from protocols.messages import BolusKind, PatientBolusSettings, StimProgramSet, TherapySet
from tests.fakes import scs_status

SCS_VALUES = dict(program=1, amp="4.25", pw=300, rate=50, anodes="0", cathodes="1+2", pmax="6")


def test_program_form_becomes_a_program_in_device_units():
    command = build_command(ids.SEND_PROGRAM, SCS_VALUES)
    assert isinstance(command, StimProgramSet)
    area = command.areas[0]
    assert (area.amplitude_ua, area.anode_mask, area.cathode_mask, command.patient_amp_max_ua) == (4250, 1, 6, 6000)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amp": ""}, "Amplitude is empty"),
        ({"amp": "four"}, "not a number"),
        ({"cathodes": "1,2"}, "not a contact list"),
        ({"anodes": "40"}, "contact 40 does not exist"),
    ],
)
def test_bad_form_values_are_named_and_nothing_is_sent(changes, message):
    with pytest.raises(FormError, match=message):
        build_command(ids.SEND_PROGRAM, {**SCS_VALUES, **changes})


def test_contact_ranges():
    assert contacts_mask("0-3", "x") == 0b1111
    assert contacts_mask("", "x") == 0


def test_pump_forms_convert_millilitres_to_microlitres():
    ptm = PatientBolusSettings(False, 0, 0, 0, 0)
    dosing = build_command(ids.SEND_DOSING, {"rate_ml": "0.75", "alarm_ml": "2", "ptm": ptm})
    assert (dosing.rate_ul_per_day, dosing.alarm_volume_ul) == (750, 2000)
    bolus = build_command(ids.SEND_BOLUS, {"bolus_ml": "0.1", "bolus_min": "30"})
    assert (bolus.kind, bolus.volume_ul, bolus.duration_min) == (BolusKind.CLINICIAN, 100, 30)
    refill = build_command(
        ids.SEND_REFILL,
        {"withdrawn_ml": "1.5", "added_ml": "18", "drugs": "morphine:10, bupivacaine:20", "confirm": True},
    )
    assert [(d.drug.name, d.conc_ng_per_ml) for d in refill.drugs] == [
        ("MORPHINE", 10_000_000),
        ("BUPIVACAINE", 20_000_000),
    ]
    assert not refill.discrepancy_accepted  # a discrepancy is accepted only when the clinician ticks it
    accepted = build_command(
        ids.SEND_REFILL,
        {"withdrawn_ml": "1.5", "added_ml": "18", "drugs": "morphine:10", "confirm": True, "accept": True},
    )
    assert accepted.discrepancy_accepted and accepted.concentration_confirmed
    with pytest.raises(FormError, match="unknown drug 'aspirin'"):
        build_command(ids.SEND_REFILL, {"withdrawn_ml": 1, "added_ml": 1, "drugs": "aspirin:1", "confirm": True})
    assert build_command(ids.THERAPY_OFF, {}) == TherapySet(False)


@dataclass
class FakeResult:
    ok: bool
    error_code: str | None = None
    message: str = ""
    field: str = ""
    value: int = 0
    limit: int = 0
    audit_id: int | None = 7
    before: dict = dc_field(default_factory=dict)
    after: dict = dc_field(default_factory=dict)


def _text(component) -> str:
    """The visible text of a component tree, cells joined by spaces."""
    children = getattr(component, "children", component)
    if isinstance(children, (list, tuple)):
        return " ".join(_text(child) for child in children)
    if hasattr(children, "children"):
        return _text(children)
    return "" if children is None else str(children)


def test_results_say_applied_or_which_limit_broke():
    before = {"rate_ul_per_day": 500, "next_refill_ms": 1_772_326_147_166}
    after = {"rate_ul_per_day": 700, "next_refill_ms": 1_772_926_147_166}
    applied = render_result(FakeResult(True, before=before, after=after))
    text = _text(applied)
    assert "audit entry 7" in text
    assert "Rate 0.5 mL/day → 0.7 mL/day" in text and "Next refill 2026-03-01 00:49:07 UTC → 2026-03-07" in text
    refused = render_result(FakeResult(False, "OUT_OF_RANGE", "too high", "areas[0].amplitude_ua", 30000, 25500))
    text = _text(refused)
    assert "Amplitude (area 1) 30 mA is above the maximum 25.5 mA" in text and "Nothing was changed" in text


class FakeStore:
    """Series in memory: enough of the store's read interface for a chart tick."""

    def __init__(self, rows: int) -> None:
        self.t = np.arange(rows, dtype=np.int64) * 1000
        self.v = np.linspace(100, 50, rows)
        self.asked: list[int] = []

    def series_names(self, device):
        return ["battery_pct"]

    def series_after(self, device, name, after_ms, limit=10_000):
        self.asked.append(after_ms)
        start = int(np.searchsorted(self.t, after_ms, side="right"))
        return self.t[start : start + limit], self.v[start : start + limit]


def test_a_tick_sends_only_points_after_the_cursor():
    store = FakeStore(100)
    out, cursor = extend_charts(store, "scs-1", {"battery_pct": {"battery_pct": 97_000}}, ["battery_pct"])
    data, traces, cap = out[0]
    assert traces == [0] and cap == figures.MAX_LIVE_POINTS
    assert len(data["y"][0]) == 2 and cursor["battery_pct"]["battery_pct"] == 99_000
    again, _ = extend_charts(store, "scs-1", cursor, ["battery_pct"])
    assert again == [no_update]


def test_series_from_status_and_labels():
    values = series_from_status(scs_status())
    assert values["amplitude_ma"] == 3.5 and values["battery_pct"] == 82.5
    assert info("impedance_3_ohm").unit == "Ω" and info("dose_morphine_mg_day").unit == "mg/day"
    with pytest.raises(KeyError):
        info("nonsense")


def test_gauge_marks_the_threshold():
    fig = figures.gauge("Reservoir", 3.2, "mL", 20, 2.0)
    assert fig.data[0].gauge.threshold.value == 2.0 and fig.data[0].value == 3.2


def test_read_back_that_disagrees_with_the_command_is_flagged():
    """docs/security.md R12: a program applied but read back different is shown as a medium alarm."""
    command = build_command(ids.SEND_PROGRAM, SCS_VALUES)
    good = {"active_program": 1, "areas": to_json(command.areas)}
    assert readback_mismatches(command, good) == []
    bad = {**good, "areas": to_json((replace(command.areas[0], amplitude_ua=3000),))}
    problems = readback_mismatches(command, bad)
    assert problems == ["Amplitude (area 1): sent 4.25 mA, read back 3 mA"]
    shown = render_result(FakeResult(True), problems)
    assert shown.id == "result-mismatch" and "alarm-medium" in shown.className
    assert readback_mismatches(TherapySet(True), {"therapy_on": False}) == ["Therapy: sent on, read back off"]


def test_an_unknown_outcome_never_says_nothing_was_changed():
    unknown = str(
        render_result(FakeResult(False, "UNKNOWN", "no reply, so it may have been applied: timeout")).children
    )
    assert "may have been applied" in unknown and "Nothing was changed" not in unknown
    fault = str(render_result(FakeResult(False, "DEVICE_FAULT", "motor driver")).children)
    assert "may have been partly applied" in fault and "Nothing was changed" not in fault
    confirmed = str(render_result(FakeResult(False, "NOT_APPLIED", "the device confirmed it")).children)
    assert "Not applied" in confirmed and "Nothing was changed" in confirmed


def test_settle_treats_a_refused_session_as_not_asked_yet():
    """A lockout or lost session while asking says nothing of the command: its fate stays unknown."""

    class Refusing:
        def resolve(self, command_id, request):
            raise DeviceRejected(ErrorCode.LOCKED_OUT, "locked out", "", 0, 0, 1000)

    lost = CommandUnresolved("no reply", 7, TherapySet(True))
    assert settle(Refusing(), lost) == (None, lost)


def test_a_page_or_a_command_that_takes_over_300_ms_shows_a_loading_indication():
    from dash import dcc

    from dashboard.app import shell

    loaders = [c for c in shell(1.0).children if isinstance(c, dcc.Loading)]
    assert [(c.delay_show, c.target_components) for c in loaders] == [(300, {ids.PAGE: "children"})]
