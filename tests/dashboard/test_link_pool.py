"""LinkPool: a few threads drive many DeviceLinks with every guarantee a link has on its own thread.

The guarantee tests of test_link.py run again here with each link in a pool of two workers (the
``make_link`` fixture below replaces theirs); the tests that name the link's own thread stay there.
Then what only a pool does: many links on a fixed set of threads, pushes found through the port's
descriptor on real ptys (an idle link holds no thread), one step of a link at a time, and a stop
of the whole pool that is prompt.
"""

from __future__ import annotations

import threading
import time

import pytest

from dashboard.link import DeviceLink, LinkState
from dashboard.link_pool import LinkPool
from device_mock.clock import ManualClock, SimClock
from device_mock.device import Device
from device_mock.faults import Action, Scenario
from device_mock.pump import Pump, PumpConfig
from device_mock.server import PtyTransport, Served, Server
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.auth import write_pairing_key
from protocols.messages import Bolus, BolusKind, EventCode, TherapySet
from tests.dashboard.test_link import (  # noqa: F401  (collected here again, with this module's make_link)
    KEY,
    T0,
    FakeClient,
    FakeStore,
    in_state,
    served,
    test_a_command_the_device_never_heard_is_unknown_then_settled_as_not_applied,
    test_a_command_whose_reply_is_lost_is_asked_about_and_reported_applied,
    test_a_restarted_device_log_is_read_again_from_its_first_seq,
    test_an_applied_command_the_device_cannot_be_asked_about_is_settled_after_reconnecting,
    test_backoff_doubles_from_half_a_second_to_a_30_s_cap,
    test_backoff_starts_again_at_half_a_second_after_a_good_session,
    test_commands_while_offline_or_stopped_are_refused_at_once_and_audited,
    test_events_have_no_gap_across_a_pulled_cable,
    test_pushed_events_are_stored_before_the_next_poll,
    test_schema_mismatch_is_a_technical_alarm_not_a_retry_storm_and_stop_is_prompt,
    test_stale_data_raises_a_technical_alarm_while_the_thread_is_blocked,
    test_status_and_events_flow_into_the_store_and_the_snapshot,
    test_submit_to_the_emulated_device_gives_ids_read_back_and_typed_refusals,
    test_the_real_emulator_killed_and_restarted_leaves_no_gap,
    test_the_real_store_gets_a_gapless_log_statuses_and_the_audit,
    wait_until,
)

del test_status_and_events_flow_into_the_store_and_the_snapshot  # it checks for the link's own thread


@pytest.fixture
def pool():
    with LinkPool(workers=2, name="test-links") as running:
        yield running


@pytest.fixture
def make_link(pool):
    """As test_link.py's, but every link is driven by a two-worker pool."""
    links: list[DeviceLink] = []

    def make(url: str = "loop://", key_file=None, store=None, **options) -> DeviceLink:
        link = DeviceLink("scs", url, key_file, store if store is not None else FakeStore(), pool=pool, **options)
        links.append(link)
        return link

    yield make
    for link in links:
        link.stop()


class PtyFleet:
    """``count`` emulated stimulators served in-process on real ptys by one device_mock Server."""

    def __init__(self, count: int, key_file) -> None:
        self.key_file = key_file
        self.items = [
            Served(f"scs-{i}", Device(Stimulator(ScsConfig(), T0, i), ManualClock(T0), KEY), PtyTransport())
            for i in range(count)
        ]
        self.server = Server(self.items)
        self.thread = threading.Thread(target=self.server.run, name="test-server", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.stop()
        self.thread.join(timeout=5)


@pytest.fixture
def pty_fleet(tmp_path):
    fleets: list[PtyFleet] = []

    def make(count: int) -> PtyFleet:
        fleets.append(PtyFleet(count, write_pairing_key(tmp_path / "k.key", KEY)))
        return fleets[-1]

    yield make
    for fleet in fleets:
        fleet.close()


def test_forty_links_on_real_ptys_run_on_the_pool_threads_only(pool, pty_fleet):
    fleet = pty_fleet(40)
    store = FakeStore()
    before = {t.name for t in threading.enumerate()}
    links = [
        DeviceLink(item.name, item.transport.path, fleet.key_file, store, poll_s=0.2, pool=pool).start()
        for item in fleet.items
    ]
    try:
        for link in links:
            wait_until(in_state(link, LinkState.ONLINE), timeout_s=20, what=f"{link.name} ONLINE")
        assert {t.name for t in threading.enumerate()} - before == set()  # no thread per link
        assert len({t.name for t in pool.threads}) == 3  # the poller and two workers
        polled = {name for name, _, _ in store.statuses}
        wait_until(lambda: len({n for n, _, _ in store.statuses}) == 40, what="a status from every device")
        assert polled <= {item.name for item in fleet.items}
        counts = {name: sum(n == name for n, _, _ in store.statuses) for name in polled}
        time.sleep(0.5)
        later = {name: sum(n == name for n, _, _ in store.statuses) for name in polled}
        assert all(later[name] > counts[name] for name in polled)  # every link keeps polling
    finally:
        for link in links:
            link.stop()


def test_a_push_on_a_pty_is_taken_through_its_descriptor_before_the_next_poll(pool, tmp_path):
    # A pump whose motor stalls 1 h of device time in (0.36 s at 10,000x): the device pushes the alarm.
    scenario = Scenario("stall", None, [Action(3_600_000, "fault", {"name": "motor_stall"}, "test")])
    scenario.resume(T0, 0)
    device = Device(Pump(PumpConfig(), T0, 1), SimClock(T0, 10_000), KEY, scenario=scenario)
    item = Served("pump-1", device, PtyTransport())
    server = Server([item])
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    store = FakeStore()
    key_file = write_pairing_key(tmp_path / "k.key", KEY)
    link = DeviceLink("pump-1", item.transport.path, key_file, store, poll_s=60.0, pool=pool)
    try:
        link.start()
        wait_until(lambda: store.statuses, what="first poll")
        stall = wait_until(
            lambda: [e for e in store.events.get("pump-1", {}).values() if e.code is EventCode.MOTOR_STALL],
            timeout_s=5.0,
            what="the pushed motor stall",
        )
        assert stall and len(store.statuses) == 1  # no poll in between: the push brought it
        assert link.wait_fd() is not None  # the pool waited on the pty, not on a timer
    finally:
        link.stop()
        server.stop()
        thread.join(timeout=5)


class OneAtATime(FakeClient):
    """A fake client that fails the test if two threads use it at once."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = threading.Lock()
        self.overlaps = 0

    def _enter(self) -> None:
        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            return
        time.sleep(0.002)  # long enough for a second thread to try
        self.busy.release()

    def status(self):
        self._enter()
        return super().status()

    def request(self, message):
        self._enter()
        return super().request(message)


def test_a_link_runs_one_step_at_a_time_even_with_commands_from_many_threads(make_link, pool):
    clients: list[OneAtATime] = []

    def connect(url, key_file, **options):
        clients.append(OneAtATime())
        return clients[-1]

    link = make_link(connect=connect, poll_s=0.001).start()
    wait_until(in_state(link, LinkState.ONLINE), what="ONLINE")
    results: list = []
    senders = [
        threading.Thread(target=lambda: results.append(link.submit(TherapySet(True), "ann", "clinician")))
        for _ in range(8)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=10)
    assert len(results) == 8 and all(r.ok for r in results)
    assert clients[0].overlaps == 0
    assert clients[0].threads <= {t.name for t in pool.threads}
    refused = link.submit(Bolus(BolusKind.CLINICIAN, 5000, 10), "ann", "clinician")
    assert not refused.ok and refused.error_code is not None


def test_stopping_the_pool_stops_every_link_promptly(pty_fleet):
    fleet = pty_fleet(20)
    pool = LinkPool(workers=2, name="stop-links").start()
    store = FakeStore()
    links = [
        DeviceLink(item.name, item.transport.path, fleet.key_file, store, poll_s=0.1, pool=pool).start()
        for item in fleet.items
    ]
    for link in links:
        wait_until(in_state(link, LinkState.ONLINE), timeout_s=20, what=f"{link.name} ONLINE")
    started = time.monotonic()
    pool.stop()
    assert time.monotonic() - started < 2.0
    assert not any(t.is_alive() for t in pool.threads)
    for link in links:
        snap = link.snapshot()
        assert snap.state is LinkState.OFFLINE and not snap.session_open and not link.running
    assert all(item.device.model is not None for item in fleet.items)
    assert len(pool) == 0


def test_a_pool_needs_a_worker():
    with pytest.raises(ValueError, match="at least one worker"):
        LinkPool(workers=0)
