"""Generates the message tables of SPEC.md from the message classes, so the two cannot drift.

``python -m protocols.specgen --write`` rewrites the part of SPEC.md between the
``BEGIN GENERATED`` and ``END GENERATED`` markers; ``--check`` fails when it is stale.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from enum import IntEnum
from pathlib import Path

from .codec import REGISTRY, max_payload_size
from .errors import ErrorCode
from .fields import Enum, FieldInfo, ListOf, Record, layout_of
from .messages import (
    ActiveAlarm,
    AlarmState,
    Area,
    BatteryKind,
    BatteryState,
    BolusKind,
    Capability,
    DeviceKind,
    DosingMode,
    Drug,
    DrugConcentration,
    DrugLevel,
    EventCode,
    EventRecord,
    FlexStep,
    MotorState,
    PatientBolusSettings,
    Priority,
    Waveform,
)

SPEC_PATH = Path(__file__).with_name("SPEC.md")
BEGIN = "<!-- BEGIN GENERATED: python -m protocols.specgen --write -->"
END = "<!-- END GENERATED -->"
RECORDS = (Area, ActiveAlarm, EventRecord, DrugLevel, DrugConcentration, FlexStep, PatientBolusSettings)
ENUMS: tuple[type[IntEnum], ...] = (
    DeviceKind,
    Priority,
    AlarmState,
    BatteryKind,
    BatteryState,
    Waveform,
    DosingMode,
    BolusKind,
    MotorState,
    Drug,
    EventCode,
    ErrorCode,
)


def _type_cell(info: FieldInfo) -> str:
    wire = info.wire
    if isinstance(wire, Enum):
        return f"{wire.spec().split(' ')[0]} `{wire.enum_cls.__name__}`"
    if isinstance(wire, Record):
        return f"record `{wire.cls.__name__}`"
    if isinstance(wire, ListOf):
        item = wire.item.__name__ if isinstance(wire.item, type) else wire.item.spec()
        return f"u8 count + ≤{wire.max_count} × `{item}`"
    return wire.spec()


def _table(cls: type) -> list[str]:
    infos = layout_of(cls).fields
    if not infos:
        return ["Empty payload (0 bytes).", ""]
    lines = ["| # | field | type | meaning, unit |", "|---|---|---|---|"]
    for index, info in enumerate(infos):
        lines.append(f"| {index} | `{info.name}` | {_type_cell(info)} | {info.doc} |")
    return [*lines, ""]


def generate() -> str:
    """The generated part of SPEC.md."""
    out = [BEGIN, "", "### Message index", "", "| type | message | direction | max payload |", "|---|---|---|---|"]
    for msg_type in sorted(REGISTRY):
        cls = REGISTRY[msg_type]
        direction = "device → host" if msg_type >= 0x80 else "host → device"
        out.append(f"| 0x{msg_type:02X} | `{cls.__name__}` | {direction} | {max_payload_size(msg_type)} |")
    out.append("")
    for msg_type in sorted(REGISTRY):
        cls = REGISTRY[msg_type]
        out += [f"### 0x{msg_type:02X} {cls.__name__}", "", inspect.cleandoc(cls.__doc__ or ""), ""]
        if msg_type < 0x80:
            replies = ", ".join(f"`{REGISTRY[int(r)].__name__}`" for r in cls.REPLIES)
            session = "needs a session" if cls.NEEDS_SESSION else "allowed without a session"
            once = "; exactly-once (mutating)" if cls.MUTATING else ""
            patient = "; patient may (3.8)" if cls.MUTATING and cls.PATIENT_MAY else ""
            out += [f"Reply: {replies} or `ErrorReply`; {session}{once}{patient}.", ""]
        out += _table(cls)
    out += ["### Records", ""]
    for cls in RECORDS:
        out += [
            f"#### {cls.__name__} ({layout_of(cls).max_size()} bytes max)",
            "",
            inspect.cleandoc(cls.__doc__ or ""),
            "",
        ]
        out += _table(cls)
    out += ["### Enumerations", ""]
    for enum_cls in ENUMS:
        out += [f"#### {enum_cls.__name__}", "", "| value | name |", "|---|---|"]
        out += [f"| {member.value} (0x{member.value:02X}) | `{member.name}` |" for member in enum_cls]
        out.append("")
    out += ["#### Capability (bits of `IdentifyReply.capabilities`)", "", "| bit | name |", "|---|---|"]
    out += [f"| 0x{int(flag):02X} | `{flag.name}` |" for flag in Capability]
    out += ["", END]
    return "\n".join(out)


def spliced(text: str) -> str:
    """``text`` (SPEC.md) with its generated part replaced by ``generate()``."""
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError("SPEC.md lacks the generated-section markers")
    return head + generate() + tail


def main(argv: list[str] | None = None) -> int:
    """Rewrite or check the generated part of SPEC.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite SPEC.md's generated part")
    args = parser.parse_args(argv)
    current = SPEC_PATH.read_text(encoding="utf-8")
    wanted = spliced(current)
    if args.write:
        SPEC_PATH.write_text(wanted, encoding="utf-8")
        return 0
    if current != wanted:
        print("SPEC.md's message tables are out of date: run `make vectors`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
