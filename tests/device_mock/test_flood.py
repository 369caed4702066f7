"""docs/security.md R10 in the emulator: wake-ups cost battery, a flood raises TELEMETRY_FLOOD once.

Sans-IO: a ``Device`` driven with a hand-moved wall clock (the endpoint's ``now``) and a manual
device clock moved in step with it, and a host written like the endpoint tests' one.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import pytest

from device_mock.battery import PrimaryCellConfig
from device_mock.clock import ManualClock
from device_mock.device import Device
from device_mock.pump import Pump, PumpConfig
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.auth import AuthPolicy, Session, host_session_from_challenge, session_open
from protocols.codec import decode_payload, encode_payload
from protocols.framing import Frame, FrameDecoder, FrameFlags, encode_frame
from protocols.messages import (
    AlarmAck,
    AlarmState,
    Area,
    BatteryKind,
    CommandAck,
    EventCode,
    EventPush,
    EventRecord,
    IdentifyRequest,
    Message,
    Priority,
    SessionConfirm,
    StatusRequest,
    StimProgramSet,
    TherapySet,
    Waveform,
)

T0_MS = 1_767_225_600_000
WALL0 = 5000.0  # a whole second: the budget's windows start on it
KEY = bytes(range(32))
TONIC = Area(0b0001, 0b0010, 5000, 300, 50, Waveform.TONIC, 0, 0, 0, 0)
BUDGET = AuthPolicy().flood_frames_per_s


@dataclass
class Rig:
    """A device with its two clocks moved together (1 device ms per wall ms), and a paired host."""

    device: Device
    clock: ManualClock
    wall: list[float] = field(default_factory=lambda: [WALL0])
    session: Session | None = None
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    pushes: list[EventRecord] = field(default_factory=list)
    next_id: int = 0x100

    @classmethod
    def of(cls, model) -> Rig:
        clock = ManualClock(model.now_ms)
        wall = [WALL0]
        return cls(Device(model, clock, KEY, rng=random.Random(7).randbytes, wall=lambda: wall[0]), clock, wall)

    def advance(self, ms: int) -> None:
        self.wall[0] += ms / 1000
        self.clock.advance(ms)

    def exchange(self, data: bytes) -> list[Frame]:
        """Bytes in; the replies out (pushes are verified and kept aside)."""
        replies = []
        for frame in self.decoder.feed(self.device.receive(data)):
            if frame.authenticated and self.session is not None:
                self.session.verify(frame, self.wall[0])  # in arrival order: counters only go up
            if frame.flags & FrameFlags.PUSH:
                push = decode_payload(frame.msg_type, frame.payload)
                assert isinstance(push, EventPush)
                self.pushes.append(push.event)
            else:
                replies.append(frame)
        return replies

    def request(self, message: Message) -> Message:
        """One authenticated request in the session; its verified reply."""
        assert self.session is not None
        self.next_id += 1
        frame = self.session.seal(message.TYPE, self.next_id, encode_payload(message))
        replies = [f for f in self.exchange(encode_frame(frame)) if f.command_id == self.next_id]
        assert len(replies) == 1, replies
        return decode_payload(replies[0].msg_type, replies[0].payload)

    def pair(self) -> None:
        nonce = bytes(16)
        request = session_open(KEY, nonce)
        opened = self.exchange(encode_frame(Frame(request.TYPE, 0, 0, 0, 1, encode_payload(request))))
        challenge = decode_payload(opened[0].msg_type, opened[0].payload)
        self.session = host_session_from_challenge(KEY, nonce, challenge.device_nonce, opened[0], self.wall[0])
        assert isinstance(self.request(SessionConfirm()), CommandAck)

    def tick(self) -> None:
        self.decoder.feed(self.device.tick())

    def flood_events(self) -> list[EventRecord]:
        return [e for e in self.device.model.events.read(1, 1_000_000) if e.code == EventCode.TELEMETRY_FLOOD]


def flood(rig: Rig | None, seconds: float, rate: int = 1000, twin: Rig | None = None, stop_at: float = -1.0) -> int:
    """Send unauthenticated identify requests at ``rate`` per second, 10 every 10 ms; return how many.

    ``twin`` is moved through the same times with no flood. At ``stop_at`` s both get a therapy stop.
    """
    sent, batch = 0, max(1, rate // 100)
    for step in range(round(seconds * 100)):
        if step == round(stop_at * 100):
            for r in (rig, twin):
                if r is not None:
                    assert isinstance(r.request(TherapySet(False)), CommandAck)
        if rig is not None:
            data = b"".join(
                encode_frame(Frame(IdentifyRequest.TYPE, 0, 0, 0, 0x5000_0000 + sent + i, b"")) for i in range(batch)
            )
            rig.exchange(data)
            sent += batch
        for r in (rig, twin):
            if r is not None:
                r.advance(10)
                r.tick()
    return sent


def therapy_on(rig: Rig) -> None:
    rig.request(StimProgramSet(1, True, (TONIC,), 6000, 2))
    assert isinstance(rig.request(TherapySet(True)), CommandAck)


def cell_j(model) -> float:
    if isinstance(model, Pump):
        return model.battery.remaining_j
    battery = model.cell.battery
    return battery.remaining_j if model.cell.kind is BatteryKind.PRIMARY else battery.charge_j


MODELS = {
    "scs rechargeable": lambda: Stimulator(ScsConfig(), T0_MS, 1),
    "scs primary": lambda: Stimulator(ScsConfig(battery_kind=BatteryKind.PRIMARY), T0_MS, 1),
    "pump": lambda: Pump(PumpConfig(), T0_MS, 1),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_r10_flood_of_60_s_stays_within_the_battery_budget_and_the_stop_gets_through(kind):
    """R10's test: 1,000 frames/s for 60 s. The stop is served, the loss is at most budget x wake_j x s."""
    rig, twin = Rig.of(MODELS[kind]()), Rig.of(MODELS[kind]())
    for r in (rig, twin):
        r.pair()
        if not isinstance(r.device.model, Pump):
            therapy_on(r)
    before, wakes_before = cell_j(rig.device.model), rig.device.model.wakeups
    assert before == cell_j(twin.device.model)
    sent = flood(rig, 60.0, twin=twin, stop_at=30.0)
    model = rig.device.model
    assert sent == 60_000
    assert rig.device.model.now_ms == twin.device.model.now_ms
    loss_j = cell_j(twin.device.model) - cell_j(model)
    budget_j = BUDGET * model.config.wake_j * 60
    assert 0 < loss_j <= budget_j * (1 + 1e-9)
    assert model.wakeups == BUDGET * 60  # every window admitted its 50 (the handshake's 2 in the first), no more
    assert loss_j == pytest.approx(model.wake_energy_j - twin.device.model.wake_energy_j, rel=1e-6)
    assert rig.device.endpoint.stats.rate_limited == sent - (BUDGET * 60 - wakes_before)
    raised = rig.flood_events()
    assert [(e.state, e.priority, e.arg0) for e in raised] == [(AlarmState.ACTIVE, Priority.LOW, BUDGET)]
    assert raised[0].seq in [p.seq for p in rig.pushes]  # pushed to the open session like any event
    status = rig.request(StatusRequest())
    assert not (status.infusing if isinstance(model, Pump) else status.therapy_on)


def test_without_the_budget_the_same_flood_would_cost_20_times_more():
    """The bound is the budget's doing: with no limit every frame of the flood is a paid wake-up."""
    rig = Rig.of(Stimulator(ScsConfig(), T0_MS, 1))
    rig.device.endpoint.budget.limit = 10**9
    sent = flood(rig, 2.0)
    assert rig.device.model.wakeups == sent == 2000
    assert rig.device.model.wake_energy_j == pytest.approx(2000 * ScsConfig().wake_j)
    assert rig.flood_events() == []


def test_flood_alarm_is_raised_once_per_episode_and_clears_after_a_quiet_window():
    rig = Rig.of(Stimulator(ScsConfig(), T0_MS, 1))
    rig.pair()
    alarms = rig.device.model.alarms
    flood(rig, 3.0)
    assert len(rig.flood_events()) == 1
    # Latching (ALARMS table): the condition ends after a whole quiet window, the alarm stays until acknowledged.
    flood(None, 1.0, twin=rig)
    assert [(a.code, a.state) for a in alarms.active() if a.code == EventCode.TELEMETRY_FLOOD] == [
        (EventCode.TELEMETRY_FLOOD, AlarmState.ACTIVE)
    ]
    assert isinstance(rig.request(AlarmAck(EventCode.TELEMETRY_FLOOD)), CommandAck)
    assert not alarms.is_active(EventCode.TELEMETRY_FLOOD)  # the condition had ended: the ack clears it
    # A second flood is a second episode: a second alarm, acknowledged while it lasts this time.
    flood(rig, 2.0)
    rig.request(AlarmAck(EventCode.TELEMETRY_FLOOD))
    flood(rig, 1.0)
    flood(None, 2.0, twin=rig)
    states = [(e.state, e.arg0, e.arg1) for e in rig.flood_events()]
    dropped = 3 * (1000 - BUDGET)
    assert states == [
        (AlarmState.ACTIVE, BUDGET, 0),
        (AlarmState.CLEARED, 0, 0),  # the acknowledgement cleared the first (its condition had ended)
        (AlarmState.ACTIVE, BUDGET, 0),
        (AlarmState.ACKNOWLEDGED, 0, 0),
        (AlarmState.CLEARED, dropped, 3),  # the condition's end: frames dropped in the episode, its seconds
    ]
    assert not alarms.is_active(EventCode.TELEMETRY_FLOOD)


def test_a_short_pause_does_not_end_the_episode():
    rig = Rig.of(Pump(PumpConfig(), T0_MS, 1))
    rig.pair()
    flood(rig, 1.5)
    flood(None, 0.6, twin=rig)  # less than a whole quiet window after the last drop
    flood(rig, 1.0)
    assert len(rig.flood_events()) == 1
    rig.request(AlarmAck(EventCode.TELEMETRY_FLOOD))  # the condition is still present: acknowledged, not cleared
    assert [e.state for e in rig.flood_events()] == [AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED]


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_state_round_trip_keeps_the_wake_energy(kind):
    model = MODELS[kind]()
    model.advance_to(T0_MS + 1000)
    model.charge_wakeups(1234)
    saved = json.loads(json.dumps(model.to_state()))
    restored = type(model).from_state(saved)
    assert restored.wakeups == 1234
    assert restored.wake_energy_j == pytest.approx(1234 * model.config.wake_j)
    assert cell_j(restored) == cell_j(model)
    for m in (model, restored):
        m.advance_to(T0_MS + 30 * 86_400_000)
    assert restored.status() == model.status()
    assert json.dumps(restored.to_state()) == json.dumps(model.to_state())


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_wake_energy_is_taken_once_and_the_rest_of_the_physics_is_unchanged(kind):
    """A lump at t: the cell is that much lower ever after; drain before and after is the model's own."""
    flooded, quiet = MODELS[kind](), MODELS[kind]()
    for m in (flooded, quiet):
        m.advance_to(T0_MS + 3_600_000)
    flooded.charge_wakeups(100)
    for m in (flooded, quiet):
        m.advance_to(T0_MS + 7 * 86_400_000)
    assert cell_j(quiet) - cell_j(flooded) == pytest.approx(100 * flooded.config.wake_j, rel=1e-6)


def test_states_saved_before_the_wake_budget_still_resume():
    for model in (Stimulator(ScsConfig(), T0_MS, 1), Pump(PumpConfig(), T0_MS, 1)):
        data = json.loads(json.dumps(model.to_state()))
        data.pop("wakeups", None), data.pop("wake_energy_j", None)
        data.get("totals", {}).pop("wakeups", None)
        data["config"].pop("wake_j")
        restored = type(model).from_state(data)
        assert restored.wakeups == 0 and restored.wake_energy_j == 0.0
        assert restored.status() == model.status()


def test_a_lump_that_crosses_eri_raises_it_at_that_millisecond():
    """The cached next breakpoint is stale after a lump: the crossing it caused is handled at once."""
    cell = PrimaryCellConfig(capacity_j=100.0, nominal_power_w=1e-6)
    stim = Stimulator(ScsConfig(battery_kind=BatteryKind.PRIMARY, primary=cell, wake_j=1.0), T0_MS, 1)
    # The pump's ERI reserve is 90 days at its programmed drain (about 760 J): a cell well above that.
    pump = Pump(PumpConfig(cell=PrimaryCellConfig(capacity_j=2_000.0, nominal_power_w=1e-6), wake_j=1.0), T0_MS, 1)
    for model in (stim, pump):
        model.advance_to(T0_MS + 60_000)
        reserve = model._eri_level_j() if model is pump else cell.nominal_power_w * cell.eri_reserve_days * 86_400
        model.charge_wakeups(int(cell_j(model) - reserve) + 1)
        eri = [e for e in model.events.read(1, 100) if e.code == EventCode.BATTERY_ERI]
        assert [(e.time_ms, e.state) for e in eri] == [(T0_MS + 60_000, AlarmState.ACTIVE)], type(model).__name__
        model.charge_wakeups(10_000)  # far more than is left: the cell gives what it has
        assert cell_j(model) == 0.0
        model.advance_to(T0_MS + 60_001)
        assert any(e.code == EventCode.BATTERY_EOS for e in model.events.read(1, 100))


def test_negative_wake_energy_is_refused():
    with pytest.raises(ValueError, match="wake_j"):
        ScsConfig(wake_j=-1e-6)
    with pytest.raises(ValueError, match="wake_j"):
        PumpConfig(wake_j=-1e-6)
