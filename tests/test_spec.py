"""SPEC.md's generated message tables match the message classes."""

from __future__ import annotations

from protocols.codec import REGISTRY
from protocols.specgen import SPEC_PATH, spliced


def test_spec_tables_are_current():
    text = SPEC_PATH.read_text(encoding="utf-8")
    assert spliced(text) == text, "run `make vectors` to regenerate SPEC.md's tables"


def test_spec_names_every_message_type():
    text = SPEC_PATH.read_text(encoding="utf-8")
    for msg_type, cls in REGISTRY.items():
        assert f"### 0x{msg_type:02X} {cls.__name__}" in text
