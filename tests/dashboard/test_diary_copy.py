"""The diary copy keeps the store gap-free: pages from the cursor, pushes only when they extend it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from dashboard.diary_copy import DiaryCopy
from protocols.messages import Capability, DiaryKind, DiaryPage, DiaryRecord, DiarySource
from tests.fakes import IDENTITY, scs_status

T0 = 1_767_225_600_000


def entry(seq: int) -> DiaryRecord:
    return DiaryRecord(seq, T0 + seq * 1000, DiaryKind.NRS, seq % 11, DiarySource.CONTROLLER)


@dataclass
class Store:
    rows: dict[int, DiaryRecord] = field(default_factory=dict)
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def add_series(self, device, name, times_ms, values):
        self.series.setdefault(name, []).extend(zip(times_ms, values, strict=True))

    def add_diary(self, device, entries):
        self.rows.update({e.seq: e for e in entries})

    def last_diary_seq(self, device):
        return max(self.rows, default=0)


@dataclass
class Client:
    """A device's diary of ``first..last``."""

    first: int
    last: int
    asked: list[int] = field(default_factory=list)

    def read_diary(self, from_seq, max_count):
        self.asked.append(from_seq)
        start = max(from_seq, self.first)
        entries = tuple(entry(s) for s in range(start, min(self.last, start + max_count - 1) + 1))
        return DiaryPage(self.first, self.last, entries)


def copy_of(store: Store, capabilities: int) -> DiaryCopy:
    copy = DiaryCopy("scs a", store)
    copy.begin(replace(IDENTITY, capabilities=capabilities))
    return copy


def test_pages_are_read_from_where_the_store_ends_until_it_has_what_the_status_said():
    store = Store({1: entry(1), 2: entry(2)})
    copy = copy_of(store, Capability.DIARY)
    copy.saw_status(scs_status())
    copy.device_seq = 19
    client = Client(1, 19)
    while copy.behind:
        copy.read_page(client)
    assert sorted(store.rows) == list(range(1, 20)) and client.asked == [3, 11, 19]
    assert store.series["pain_nrs"] == [(T0 + s * 1000, float(s % 11)) for s in range(3, 20)]  # charted too


def test_a_push_that_leaves_a_gap_waits_for_the_read_and_one_that_extends_is_kept():
    store = Store({1: entry(1)})
    copy = copy_of(store, Capability.DIARY)
    copy.take_pushes([entry(3)])  # 2 is missing: not stored, but the device is known to hold 3
    assert sorted(store.rows) == [1] and copy.behind
    copy.take_pushes([entry(2), entry(3)])
    assert sorted(store.rows) == [1, 2, 3] and not copy.behind


def test_a_device_whose_diary_starts_again_is_read_from_its_oldest_entry():
    store = Store({s: entry(s) for s in range(1, 11)})
    copy = copy_of(store, Capability.DIARY)
    copy.device_seq = 4
    client = Client(1, 4)  # a replaced device: its diary holds 1..4 only
    copy.read_page(client)
    assert copy.cursor == 1
    copy.read_page(client)
    assert client.asked == [11, 1]


def test_a_device_without_a_diary_is_never_asked():
    copy = copy_of(Store(), 0)
    copy.device_seq = 5
    assert not copy.behind
    copy.take_pushes([entry(1)])
    assert copy.cursor == 1
