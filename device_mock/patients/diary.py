"""The diary a patient keeps: numbered entries at device time, each a score of one instrument.

Instruments [V: TRIAL-STIM protocol, PMC6240171; Provenzano 2021]: pain on the 0-10 NRS (twice a
day), analgesics taken (morphine milligram equivalents per day), the Patient Global Impression of
Change (1-7, at the end of a trial), the Oswestry Disability Index (0-100), the Modified Ashworth
Scale for spasticity (grades 0, 1, 1+, 2, 3, 4 kept as index 0-5), a side-effect burden (0-10)
and the relief the patient reports (%). Entries are numbered from 1 without gaps, like the event
log, so a host reads from a sequence number and misses nothing.

Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class DiaryKind(IntEnum):
    """Which instrument an entry scores (its value's unit follows)."""

    NRS = 1  # pain now, 0-10
    MEDICATION = 2  # analgesics taken today, mg morphine equivalents
    PGIC = 3  # 1 no change (or worse) .. 7 a great deal better
    ODI = 4  # 0-100
    MAS = 5  # Modified Ashworth index: 0, 1, 1+, 2, 3, 4 as 0-5
    SIDE_EFFECTS = 6  # burden 0-10
    RELIEF = 7  # relief the patient reports, % (0-100)


VALUE_RANGES = {
    DiaryKind.NRS: (0, 10),
    DiaryKind.MEDICATION: (0, 10_000),
    DiaryKind.PGIC: (1, 7),
    DiaryKind.ODI: (0, 100),
    DiaryKind.MAS: (0, 5),
    DiaryKind.SIDE_EFFECTS: (0, 10),
    DiaryKind.RELIEF: (0, 100),
}


class DiarySource(IntEnum):
    """Who wrote an entry: the (virtual) patient, or a person typing it into a host."""

    PATIENT = 1
    CLINICIAN = 2


@dataclass(frozen=True, slots=True)
class DiaryEntry:
    """One diary entry."""

    seq: int
    time_ms: int
    kind: DiaryKind
    value: int
    source: DiarySource = DiarySource.PATIENT

    def to_json(self) -> list[int]:
        """``[seq, time_ms, kind, value, source]``: compact, for the device's saved state."""
        return [self.seq, self.time_ms, int(self.kind), self.value, int(self.source)]

    @classmethod
    def from_json(cls, row: list[int]) -> DiaryEntry:
        """Rebuild from ``to_json``."""
        seq, time_ms, kind, value, source = row
        return cls(seq, time_ms, DiaryKind(kind), value, DiarySource(source))


def check_value(kind: DiaryKind, value: Any) -> int:
    """``value`` as an int within ``kind``'s range, or ``ValueError`` saying the range."""
    low, high = VALUE_RANGES[kind]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"a {kind.name.lower()} diary value is a whole number from {low} to {high}, not {value!r}")
    return value


def scores(entries: list[DiaryEntry], kind: DiaryKind, start_ms: int, end_ms: int) -> list[int]:
    """Values of ``kind`` written in ``[start_ms, end_ms)``."""
    return [e.value for e in entries if e.kind is kind and start_ms <= e.time_ms < end_ms]
