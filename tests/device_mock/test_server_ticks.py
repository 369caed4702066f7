"""A large fleet is ticked a slice at a time: every device in turn, a bounded number a second."""

from __future__ import annotations

from collections import Counter

from device_mock.server import DEVICE_TICKS_PER_S, Served, Server
from tests.device_mock.test_server_stop import ClosedCounter


class CountedDevice:
    """Just what the server's tick uses of a device: ``tick()``, which here only counts."""

    def __init__(self, name: str, ticks: Counter) -> None:
        self.name, self.ticks = name, ticks

    def tick(self) -> bytes:
        self.ticks[self.name] += 1
        return b""  # nothing to push


def fleet(n: int) -> tuple[list[Served], Counter]:
    ticks: Counter = Counter()
    return [Served(f"d{i}", CountedDevice(f"d{i}", ticks), ClosedCounter()) for i in range(n)], ticks  # type: ignore[arg-type]


def test_a_small_fleet_is_ticked_whole_at_every_tick():
    served, ticks = fleet(20)
    server = Server(served, tick_s=0.05)
    for round_ in range(3):
        server._tick_slice(round_ * 0.05)
    assert set(ticks.values()) == {3} and len(ticks) == 20


def test_a_large_fleet_is_ticked_in_slices_each_device_in_turn():
    served, ticks = fleet(1000)
    server = Server(served, tick_s=0.05)
    per_tick = round(DEVICE_TICKS_PER_S * 0.05)
    assert per_tick < 1000
    rounds = -(-1000 // per_tick)  # ticks of the loop to go round the fleet once
    for round_ in range(rounds):
        server._tick_slice(round_ * 0.05)
        assert sum(ticks.values()) == min(1000, (round_ + 1) * per_tick)  # a bounded slice each tick
    assert set(ticks.values()) == {1} and len(ticks) == 1000  # every device once, none twice
    server._tick_slice(rounds * 0.05)
    assert ticks["d0"] == 2  # and round again from the first
