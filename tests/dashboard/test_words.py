"""The words pages show: every field, event and refusal without a wire name or wire unit."""

from __future__ import annotations

import dataclasses
import re
import typing

import pytest

from dashboard.words import EVENTS, event_args, event_title, field_label, field_value, readback_rows, refusal_text
from protocols.messages import MESSAGES, EventCode

WIRE = re.compile(r"[A-Z]+_[A-Z_]+|_ua\b|_ul\b|_ms\b|_x100\b|\b1[67]\d{11}\b|µA|µL")


def _fields(cls, prefix: str = "") -> list[tuple[str, type]]:
    """Every field path of a message or record, nested records and lists included."""
    out = []
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        base = (
            typing.get_args(hints[f.name])[0] if typing.get_origin(hints[f.name]) is typing.Annotated else hints[f.name]
        )
        path = f"{prefix}{f.name}"
        item = typing.get_args(base)[0] if typing.get_origin(base) is tuple else base
        if dataclasses.is_dataclass(item):
            out += _fields(item, f"{path}[0]." if typing.get_origin(base) is tuple else f"{path}.")
        else:
            out.append((path, item))
    return out


ALL_FIELDS = sorted({(path, item) for message in MESSAGES for path, item in _fields(message)}, key=str)


@pytest.mark.parametrize(("path", "kind"), ALL_FIELDS, ids=[p for p, _ in ALL_FIELDS])
def test_every_message_field_has_a_label_and_a_value_in_words(path, kind):
    label = field_label(path)
    assert "_" not in label and not WIRE.search(label), label
    sample = 1_767_225_600_000 if path.endswith("_ms") else 25_000
    if kind is int or (isinstance(kind, type) and issubclass(kind, int)):
        assert not WIRE.search(field_value(path, sample)), field_value(path, sample)


def test_every_event_code_has_a_title_and_its_arguments_in_words():
    assert set(EventCode) <= set(EVENTS), sorted(c.name for c in set(EventCode) - set(EVENTS))
    for code in EventCode:
        assert not WIRE.search(event_title(code)), code
        assert not WIRE.search(event_args(code, 2_500, 3_500)), code


def test_the_issues_examples_read_as_a_person_says_them():
    assert event_title("LOW_RESERVOIR") == "Low reservoir"
    assert event_args("BATTERY_LOW", 2_500, 3_500) == "battery 25 %, 3.50 V"
    assert event_args("LOW_RESERVOIR", 1_998, 2_000) == "reservoir 1.998 mL, alarm at 2 mL"
    assert event_args("SESSION_OPENED", 7, 0) == "session 00000007"
    amp = refusal_text(
        "OUT_OF_RANGE",
        "areas[0].amplitude_ua 30000 µA is above the maximum 25500 µA",
        "areas[0].amplitude_ua",
        30000,
        25500,
    )
    assert amp == "Amplitude (area 1) 30 mA is above the maximum 25.5 mA"
    patient = refusal_text(
        "OUT_OF_RANGE", "patient_amp_max_ua 2000 µA is below the minimum 3000 µA", "patient_amp_max_ua", 2000, 3000
    )
    assert patient.startswith("Patient maximum 2 mA is below the amplitude 3 mA")
    confirm = refusal_text("STATE_CONFLICT", "confirm the new concentrations", "concentration_confirmed", 0, 0)
    assert confirm == "Confirm the new concentrations"
    band = refusal_text("STATE_CONFLICT", "outside the ±725 µL flow-accuracy band", "withdrawn_ul", 13_000, 14_275)
    assert band == "Withdrawn residual 13 mL is below the minimum 14.275 mL: outside the ±0.725 mL flow-accuracy band"
    assert refusal_text("UNSUPPORTED", "StimProgramSet is not a PUMP command", "", 0, 0) == (
        "A stimulation program is not a pump command"
    )


def test_a_read_back_lists_each_changed_setting_before_and_after_in_the_forms_units():
    before = {"areas": [{"amplitude_ua": 3_000, "pulse_width_us": 300}], "next_refill_ms": 1_772_326_147_166}
    after = {"areas": [{"amplitude_ua": 3_500, "pulse_width_us": 300}], "next_refill_ms": 1_772_326_147_166}
    assert readback_rows(before, after) == [("Amplitude (area 1)", "3 mA", "3.5 mA")]
    ptm = readback_rows({"patient_bolus": {"lockout_min": 60}}, {"patient_bolus": {"lockout_min": 90}})
    assert ptm == [("Lockout (patient bolus)", "60 min", "90 min")]
