"""Copies a device's patient diary (SPEC 4.7) into the history store without gaps.

The event log's cursor rule, for the diary: the store holds entries 1..cursor-1 of the device
without a gap, so ``store.last_diary_seq(name) + 1`` is a safe place to resume after a restart of
either side. The status's ``diary_seq`` says when there is more to read; pushed entries are kept
only when they extend the run, anything else is read by ``DiaryRead``. Pain (NRS) and Ashworth scores
also go in as series (``pain_nrs``, ``spasticity_mas``), which the device page charts. A device whose diary starts
again below the cursor (a replaced device) is read again from its oldest entry. Only devices that
announce ``Capability.DIARY`` are asked.

Used by ``dashboard.link``; must not import Dash, the views or ``device_mock``.
"""

from __future__ import annotations

import logging
from typing import Protocol

from protocols.client import DeviceClient
from protocols.messages import Capability, DiaryRecord, IdentifyReply, PumpStatus, ScsStatus

from .series import DIARY_SERIES

log = logging.getLogger(__name__)
PAGE_SIZE = 8  # entries a DiaryRead asks for, the most a page holds


class DiaryStore(Protocol):
    """What the copy writes to (``dashboard.store.HistoryStore`` provides it)."""

    def add_diary(self, device: str, entries: list[DiaryRecord]) -> None: ...

    def add_series(self, device: str, name: str, times_ms: list[int], values: list[float]) -> None: ...

    def last_diary_seq(self, device: str) -> int: ...


class DiaryCopy:
    """One device's diary cursor; called from its link's thread only."""

    def __init__(self, name: str, store: DiaryStore) -> None:
        self.name, self.store = name, store
        self.enabled = False
        self.cursor: int | None = None
        self.device_seq = 0

    def begin(self, identity: IdentifyReply) -> None:
        """A session opened: read the diary if the device serves one, from where the store ends."""
        self.enabled = bool(identity.capabilities & Capability.DIARY)
        stored_next = self.store.last_diary_seq(self.name) + 1
        self.cursor = stored_next if self.cursor is None else min(self.cursor, stored_next)

    def saw_status(self, status: ScsStatus | PumpStatus) -> None:
        """A status arrived: its ``diary_seq`` is the newest entry the device holds."""
        self.device_seq = status.diary_seq

    @property
    def behind(self) -> bool:
        """The device holds entries the store does not."""
        return self.enabled and self.cursor is not None and self.device_seq > self.cursor - 1

    def read_page(self, client: DeviceClient) -> None:
        """One page from the cursor on (or a restart of the cursor)."""
        cursor = self.cursor or 1
        page = client.read_diary(cursor, PAGE_SIZE)
        self.device_seq = page.last_seq
        if page.last_seq < cursor - 1:
            log.warning("%s: the device's diary restarted (newest #%d): re-reading it", self.name, page.last_seq)
            self.cursor = page.first_seq or 1
            return
        if not page.entries:
            self.cursor = page.last_seq + 1  # the device no longer keeps them
            return
        self._store(list(page.entries))

    def take_pushes(self, pushed: list[DiaryRecord]) -> None:
        """Store pushed entries that extend the stored run; a gap is left for ``read_page``."""
        if not self.enabled or self.cursor is None:
            return
        run: list[DiaryRecord] = []
        for entry in sorted(pushed, key=lambda e: e.seq):
            if entry.seq == self.cursor + len(run):
                run.append(entry)
            self.device_seq = max(self.device_seq, entry.seq)
        if run:
            self._store(run)

    def _store(self, entries: list[DiaryRecord]) -> None:
        self.store.add_diary(self.name, entries)
        for kind, series in DIARY_SERIES.items():  # scores chart beside the therapy on the device page
            scored = [e for e in entries if int(e.kind) == kind]
            if scored:
                self.store.add_series(self.name, series, [e.time_ms for e in scored], [float(e.value) for e in scored])
        self.cursor = entries[-1].seq + 1
