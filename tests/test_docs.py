"""The tester docs stay complete and self-contained.

docs/scenarios.md names every fault a device model registers and its worked examples load;
SPEC section 9 lists every event code; no committed file points outside the repository.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from device_mock.faults import Scenario
from device_mock.pump import Pump
from device_mock.stimulator import Stimulator
from protocols.messages import EventCode

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS_DOC = ROOT / "docs" / "scenarios.md"
SPEC = ROOT / "protocols" / "SPEC.md"
KINDS = {"scs": Stimulator, "pump": Pump}


def _doc() -> str:
    return SCENARIOS_DOC.read_text(encoding="utf-8")


def _fault_rows(text: str) -> set[str]:
    """Fault names in the first column of the docs' fault tables."""
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_registered_fault_is_documented(kind: str) -> None:
    """A fault added to a model's FAULTS must get a row (arguments, effect) in docs/scenarios.md."""
    missing = set(KINDS[kind].FAULTS) - _fault_rows(_doc())
    assert not missing, f"docs/scenarios.md has no row for {kind} fault(s) {sorted(missing)}"


def _event_table(spec: str) -> str:
    start = spec.index("## 9. Event-log arguments")
    return spec[start : spec.index("\n## ", start + 1)]


def test_every_event_code_has_its_own_row_in_spec_section_9() -> None:
    """The one event table (SPEC section 9, linked from docs/scenarios.md) names every EventCode."""
    names = re.findall(r"^\| ([A-Z_0-9]+) \|", _event_table(SPEC.read_text(encoding="utf-8")), re.MULTILINE)
    missing = {code.name for code in EventCode} - set(names)
    assert not missing, f"SPEC section 9 has no row for {sorted(missing)}"
    twice = sorted({name for name in names if names.count(name) > 1})
    assert not twice, f"SPEC section 9 has more than one row for {twice}"


def test_scenarios_doc_links_to_the_event_table() -> None:
    """The docs point at the event table rather than keep a second copy."""
    assert "../protocols/SPEC.md#9-event-log-arguments" in _doc()
    assert not any(f"| {code.name} |" in _doc() for code in EventCode)


def _examples() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", _doc(), re.DOTALL)


def test_the_doc_has_worked_examples() -> None:
    """The format block plus at least two runnable examples."""
    assert len(_examples()) >= 3


@pytest.mark.parametrize("index", range(1, 4))
def test_worked_example_loads(index: int, tmp_path: Path) -> None:
    """Each worked example (after the format block) is a valid scenario for its device kind."""
    path = tmp_path / f"example{index}.toml"
    path.write_text(_examples()[index], encoding="utf-8")
    scenario = Scenario.load(path)
    assert scenario.actions
    for kind in [scenario.device] if scenario.device else sorted(KINDS):
        scenario.check_faults(KINDS[kind].FAULTS, kind)


def test_the_format_block_loads(tmp_path: Path) -> None:
    """The annotated format block is itself a loadable scenario."""
    path = tmp_path / "format.toml"
    path.write_text(_examples()[0], encoding="utf-8")
    assert Scenario.load(path).device == "pump"


# Built from pieces so that this file does not match itself.
OUTSIDE = re.compile(
    "|".join(["DOMAIN" + r"\.md", r"\bDOMAIN \d", "SECURITY" + r"\.md", r"\.\./shared", "/wo" + "rk/"])
)


def test_no_committed_file_points_outside_the_repository() -> None:
    """A clone has only the repository: no citation of the lead's private notes or machine paths."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        offenders += [f"{name}:{i}" for i, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not offenders, f"references outside the repository: {offenders}"


def test_every_test_docs_security_md_names_exists() -> None:
    """docs/security.md says which tests check each requirement; each named test must exist."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    cited = re.findall(r"`([a-z_/]+\.py)::(test_\w+)`", text)
    assert len(cited) > 30
    missing = [
        f"{name}::{func}"
        for name, func in cited
        if not re.search(rf"^(async )?def {func}\(", (ROOT / "tests" / name).read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert not missing, f"docs/security.md cites tests that do not exist: {missing}"


def test_every_requirement_has_a_row_in_docs_security_md() -> None:
    """R1 to R25 each have a row, met or not."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| (R\d+) \|", text, re.MULTILINE))
    assert rows == {f"R{i}" for i in range(1, 26)}
