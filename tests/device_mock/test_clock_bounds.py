"""Device time under stress: the bounded clock step, capped pushes, and the crash heartbeat (issue 8)."""

from __future__ import annotations

import json

import pytest

from device_mock.clock import ManualClock
from device_mock.device import MAX_CLOCK_STEP_MS, MAX_PENDING_PUSHES, Device
from device_mock.state import StateStore
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.errors import DeviceRejected, ErrorCode
from protocols.framing import Frame, FrameFlags, encode_frame
from protocols.messages import ClockRead, ClockSet, EventCode, MsgType

T0 = 1_767_225_600_000
KEY = bytes(range(32))


class Wall:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scs(tmp_path=None, wall=None) -> tuple[Device, ManualClock]:
    clock = ManualClock(T0, speed=1000)
    store = StateStore(tmp_path / "scs") if tmp_path else None
    device = Device(Stimulator(ScsConfig(), T0, 1), clock, KEY, store=store, wall=wall or Wall())
    return device, clock


def test_a_clock_set_beyond_the_maximum_step_is_out_of_range_and_changes_nothing():
    device, _ = scs()
    before = device.model.events.last_seq
    with pytest.raises(DeviceRejected) as refused:
        device.handle(ClockSet(T0 + MAX_CLOCK_STEP_MS + 1))
    error = refused.value
    assert (error.code, error.field, error.value) == (ErrorCode.OUT_OF_RANGE, "time_ms", T0 + MAX_CLOCK_STEP_MS + 1)
    assert error.limit == T0 + MAX_CLOCK_STEP_MS and "366 days" in str(error)
    assert device.handle(ClockRead()).time_ms == T0 and device.model.events.last_seq == before


def test_the_maximum_step_is_accepted_and_logged():
    device, _ = scs()
    ack = device.handle(ClockSet(T0 + MAX_CLOCK_STEP_MS))
    assert device.model.events.read(ack.event_seq, 1)[0].code == EventCode.CLOCK_SET
    assert device.handle(ClockRead()).time_ms == T0 + MAX_CLOCK_STEP_MS


def test_only_the_newest_events_of_a_burst_wait_to_be_pushed():
    """Pushes are a fast path: a burst keeps the newest MAX_PENDING_PUSHES, the log keeps them all."""
    device, _ = scs()
    first = device.model.events.last_seq + 1
    for _ in range(3 * MAX_PENDING_PUSHES):
        device.model.events.append(T0, EventCode.COMM_ERROR)
    pending = list(device._pending_pushes)
    assert len(pending) == MAX_PENDING_PUSHES
    assert pending[-1].seq == device.model.events.last_seq
    assert len(device.model.events.read(first, 3 * MAX_PENDING_PUSHES)) == 3 * MAX_PENDING_PUSHES


def test_the_heartbeat_keeps_device_time_a_reply_revealed_past_the_last_full_save(tmp_path):
    wall = Wall()
    device, clock = scs(tmp_path, wall)
    device.save()
    store = device.store
    clock.advance(3_600_000)
    wall.now += 0.01  # well inside the save interval: no full save
    identify = encode_frame(Frame(MsgType.IDENTIFY_REQUEST, FrameFlags(0), 0, 0, 1, b""))
    assert device.receive(identify)  # a reply leaves, and the time it may reveal is recorded first
    saved = json.loads(store.state_path.read_text())
    assert saved["device_time_ms"] == T0
    assert store.last_beat() == T0 + 3_600_000
    assert StateStore(store.directory).resume_time_ms(saved) == T0 + 3_600_000
    clock.advance(60_000)
    wall.now += 0.2  # a tick past the heartbeat interval records it too
    device.tick()
    assert store.last_beat() == T0 + 3_660_000
    device.close()


def test_a_damaged_heartbeat_is_ignored_and_the_full_save_is_used(tmp_path):
    store = StateStore(tmp_path / "dev")
    store.directory.mkdir()
    store.clock_path.write_bytes(b"\x01" * 16)
    assert store.last_beat() is None
    store.clock_path.write_bytes(b"short")
    assert store.resume_time_ms({"device_time_ms": T0}) == T0
