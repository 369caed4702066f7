"""What the largest ClockSet costs the emulator's loop (issue 8: no stalls from one command).

A stimulator with a power-hungry program (10 kHz, so it needs recharging every few days and logs
charging sessions all year) and a pump are each moved forward by the largest step a ClockSet
accepts (``device.MAX_CLOCK_STEP_MS``, 366 days) in one command. Printed per device: the wall time
of that one command (the longest the loop that serves every device of the process is held), the
events it logged and the size of the state written after it. The peer, measured in the same run,
is the same year reached the way a running clock reaches it at 10,000,000x: in one-day advances
(one tick each). Equal totals show that one command costs what the year costs anyway, O(events),
not more. Also printed: the refusal of one millisecond more.

Run: ``python bench/clock_step.py``.
"""

from __future__ import annotations

import json
import sys
import time

from device_mock.clock import ManualClock
from device_mock.device import MAX_CLOCK_STEP_MS, Device
from device_mock.model import DeviceModel
from device_mock.pump import Pump, PumpConfig
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.errors import DeviceRejected
from protocols.messages import Area, ClockSet, StimProgramSet, TherapySet, Waveform

T0 = 1_767_225_600_000
DAY_MS = 86_400_000
KEY = bytes(32)
HF10 = Area(0x1, 0x6, 3_000, 30, 10_000, Waveform.HIGH_FREQUENCY, 0, 0, 0, 0)


def _stimulator() -> Stimulator:
    model = Stimulator(ScsConfig(), T0, 1)
    model.apply(StimProgramSet(1, True, (HF10,), 4_000, 2))
    model.apply(TherapySet(True))
    return model


def _device(model: DeviceModel) -> tuple[Device, ManualClock]:
    clock = ManualClock(T0, speed=10_000_000)
    return Device(model, clock, KEY), clock


def one_step(model: DeviceModel) -> tuple[float, int, int]:
    """(seconds, events logged, state bytes) for one ClockSet of the largest step."""
    device, _ = _device(model)
    before = model.events.last_seq
    started = time.perf_counter()
    device.handle(ClockSet(T0 + MAX_CLOCK_STEP_MS))
    elapsed = time.perf_counter() - started
    size = len(json.dumps(model.to_state(), separators=(",", ":")))
    return elapsed, model.events.last_seq - before, size


def by_days(model: DeviceModel) -> tuple[float, float]:
    """(total seconds, longest single advance) reaching the same time one day per tick."""
    device, clock = _device(model)
    longest = total = 0.0
    for _ in range(MAX_CLOCK_STEP_MS // DAY_MS):
        clock.advance(DAY_MS)
        started = time.perf_counter()
        device.sync()
        spent = time.perf_counter() - started
        total, longest = total + spent, max(longest, spent)
    return total, longest


def main() -> int:
    days = MAX_CLOCK_STEP_MS // DAY_MS
    for name, make in (
        ("stimulator, 10 kHz program", _stimulator),
        ("pump, default dosing", lambda: Pump(PumpConfig(), T0, 1)),
    ):
        step_s, events, size = one_step(make())
        peer_s, peer_longest = by_days(make())
        print(
            f"{name}: one ClockSet of {days} days: {step_s * 1000:.1f} ms, {events} events, state {size / 1024:.0f} KiB"
        )
        print(
            f"  peer, the same {days} days one day per tick: {peer_s * 1000:.1f} ms in all "
            f"(longest tick {peer_longest * 1000:.2f} ms); one command / peer total = {step_s / peer_s:.2f}x"
        )
    device, _ = _device(_stimulator())
    try:
        device.handle(ClockSet(T0 + MAX_CLOCK_STEP_MS + 1))
    except DeviceRejected as refused:
        print(f"one millisecond more: {refused.code.name} {refused.field} limit {refused.limit} ({refused.reason})")
        return 0
    print("one millisecond more was accepted")
    return 1


if __name__ == "__main__":
    sys.exit(main())
