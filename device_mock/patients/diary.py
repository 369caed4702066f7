"""The diary a patient keeps: numbered entries at device time, each a score of one instrument.

Instruments [V: TRIAL-STIM protocol, PMC6240171; Provenzano 2021]: pain on the 0-10 NRS (twice a
day), analgesics taken (morphine milligram equivalents per day), the Patient Global Impression of
Change (1-7, at the end of a trial), the Oswestry Disability Index (0-100), the Modified Ashworth
Scale for spasticity (grades 0, 1, 1+, 2, 3, 4 kept as index 0-5), a side-effect burden (0-10)
and the relief the patient reports (%). Entries are numbered from 1 without gaps, like the event
log, so a host reads from a sequence number and misses nothing. ``DiarySource`` says who wrote an
entry: the patient through their controller (the emulator plays both), or a person typing into a
host in a patient or a clinician session.

The entry is the wire's ``DiaryRecord`` (``protocols.messages``); imports nothing else of the project.
"""

from __future__ import annotations

from typing import Any

from protocols.messages import DiaryKind, DiaryRecord, DiarySource
from protocols.trials import scores

__all__ = ["VALUE_RANGES", "DiaryEntry", "check_value", "entry_from_json", "entry_to_json", "scores"]

# The wire's own record and enums (SPEC 4.7): one definition of an entry for the patient and the link.
DiaryEntry = DiaryRecord

VALUE_RANGES = {
    DiaryKind.NRS: (0, 10),
    DiaryKind.MEDICATION: (0, 10_000),
    DiaryKind.PGIC: (1, 7),
    DiaryKind.ODI: (0, 100),
    DiaryKind.MAS: (0, 5),
    DiaryKind.SIDE_EFFECTS: (0, 10),
    DiaryKind.RELIEF: (0, 100),
}


def entry_to_json(entry: DiaryEntry) -> list[int]:
    """``[seq, time_ms, kind, value, source]``: compact, for the device's saved state."""
    return [entry.seq, entry.time_ms, int(entry.kind), entry.value, int(entry.source)]


def entry_from_json(row: list[int]) -> DiaryEntry:
    """Rebuild from ``entry_to_json``."""
    seq, time_ms, kind, value, source = row
    return DiaryRecord(seq, time_ms, DiaryKind(kind), value, DiarySource(source))


def check_value(kind: DiaryKind, value: Any) -> int:
    """``value`` as an int within ``kind``'s range, or ``ValueError`` saying the range."""
    low, high = VALUE_RANGES[kind]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"a {kind.name.lower()} diary value is a whole number from {low} to {high}, not {value!r}")
    return value
