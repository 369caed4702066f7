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


def _headings(text: str) -> set[str]:
    import re

    return set(re.findall(r"^#{2,4} (\d+(?:\.\d+)?)[. ]", text, flags=re.MULTILINE))


def test_every_section_reference_names_a_section_that_exists():
    """'section 3.5', 'see 4.1', '(3.7)': each number is a heading of SPEC.md."""
    import re

    text = SPEC_PATH.read_text(encoding="utf-8")
    headings = _headings(text)
    assert {"2.4", "3.5", "4.1", "6", "10"} <= headings
    pattern = r"(?:[Ss]ections? |[Ss]ee |SPEC )(\d+(?:\.\d+)?)|\((\d+\.\d+)\)"
    cited = {a or b for a, b in re.findall(pattern, text)}
    assert cited, "the pattern finds the document's references"
    assert sorted(cited - headings) == []
