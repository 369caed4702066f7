"""The generated encoder and decoder of each layout agree with the generic, field-by-field path.

``fields.Layout`` compiles a straight-line encoder and decoder per message for speed; the class's
own ``encode_into`` / ``decode_from`` methods are the readable reference. Both must give the same
bytes, the same values, and the same error class for any input.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import CodecError
from protocols.fields import Layout, layout_of
from protocols.messages import MESSAGES
from tests.test_codec import record_strategy


def _generic_encode(layout: Layout, obj) -> bytes | type:
    out = bytearray()
    try:
        Layout.encode_into(layout, obj, out)
    except CodecError as exc:
        return type(exc)
    return bytes(out)


def _generated_encode(layout: Layout, obj) -> bytes | type:
    out = bytearray()
    try:
        layout.encode_into(obj, out)
    except CodecError as exc:
        return type(exc)
    return bytes(out)


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_generated_and_generic_paths_agree(cls, data):
    layout = layout_of(cls)
    message = data.draw(record_strategy(cls))
    generated = _generated_encode(layout, message)
    assert generated == _generic_encode(layout, message)
    assert layout.decode_from(generated, 0) == Layout.decode_from(layout, generated, 0)


@pytest.mark.parametrize("cls", MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(payload=st.binary(max_size=300))
def test_both_decoders_refuse_the_same_garbage_the_same_way(cls, payload):
    layout = layout_of(cls)

    def outcome(decode):
        try:
            return decode(payload, 0)
        except CodecError as exc:
            return type(exc)

    assert outcome(layout.decode_from) == outcome(lambda buf, pos: Layout.decode_from(layout, buf, pos))


@pytest.mark.parametrize("cls", [c for c in MESSAGES if layout_of(c).fields], ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), bad=st.sampled_from([True, False, None, "7", 2**70, -1, 1.5, b"x", ()]))
def test_both_encoders_treat_a_wrong_value_the_same_way(cls, data, bad):
    """Any field given a wrong value: both paths refuse it (or both accept it) with the same outcome."""
    layout = layout_of(cls)
    message = data.draw(record_strategy(cls))
    name = data.draw(st.sampled_from([f.name for f in layout.fields]))
    broken = replace(message, **{name: bad})
    assert _generated_encode(layout, broken) == _generic_encode(layout, broken)
