"""DeviceLink: status and events into the store without gaps, backoff, staleness, commands on the link thread.

Most tests run a real emulated stimulator in-process (``Device`` on a ``ManualClock``) behind a
``LoopbackPair``; each connect gets a fresh pair, so closing it is a pulled cable. One test runs the
real ``implant-mock`` on a pty and kills and restarts it from the same state directory. Backoff and
thread placement use a fake client. Every link, thread, pty and process is stopped by its test.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import tty

import pytest

from dashboard.commands import touched_fields
from dashboard.link import DeviceLink, LinkState, backoff_delays
from device_mock.clock import ManualClock
from device_mock.device import Device
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.client import ClientStats, DeviceClient
from protocols.errors import DeviceRejected, ErrorCode, LinkError, LinkTimeout, SchemaMismatch
from protocols.framing import FrameDecoder, LinkStats
from protocols.messages import (
    Actor,
    AlarmState,
    Area,
    Bolus,
    BolusKind,
    CommandAck,
    EventCode,
    EventLogPage,
    EventRecord,
    ImpedanceCheck,
    MsgType,
    Priority,
    ScsStatus,
    SessionClose,
    StimProgramSet,
    TherapySet,
    Waveform,
)
from protocols.transport import LoopbackPair
from tests.fakes import IDENTITY, scs_status
from tests.integration.mock_process import MockProcess

T0 = 1_767_225_600_000
KEY = bytes(range(32))
TONIC = Area(0b0001, 0b0010, 3000, 300, 50, Waveform.TONIC, 0, 0, 0, 0)


def wait_until(predicate, timeout_s: float = 5.0, what: str = "the condition"):
    """Poll ``predicate`` until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def caught_up(link: DeviceLink, served: ServedDevice):
    """A predicate: the link's snapshot once it is online and has stored the device's whole log.

    Only then is the link idle until its next poll or command: straight after ONLINE it still reads
    the log the first status announced, and a test that silences the device then fails that read,
    not the command it means to test.
    """

    def check():
        snap = link.snapshot()
        last = served.log()[-1].seq
        return snap if snap.state is LinkState.ONLINE and snap.last_event_seq == last else None

    return check


def in_state(link: DeviceLink, state: LinkState):
    """A predicate: the link's snapshot when it is in ``state``."""

    def check():
        snap = link.snapshot()
        return snap if snap.state is state else None

    return check


class FakeStore:
    """The store interface, in memory, recording every call (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: list[tuple[str, object, float]] = []
        self.events: dict[str, dict[int, EventRecord]] = {}
        self.diaries: dict[str, dict[int, object]] = {}
        self.audits: list[dict] = []

    def add_status(self, device, status, received_at_s):
        with self.lock:
            self.statuses.append((device, status, received_at_s))

    def add_events(self, device, events):
        with self.lock:
            stored = self.events.setdefault(device, {})
            for event in events:
                stored[event.seq] = event

    def last_event_seq(self, device):
        with self.lock:
            return max(self.events.get(device, {}), default=0)

    def add_diary(self, device, entries):
        with self.lock:
            self.diaries.setdefault(device, {}).update({e.seq: e for e in entries})

    def last_diary_seq(self, device):
        with self.lock:
            return max(self.diaries.get(device, {}), default=0)

    def add_audit(self, user, role, device, action, before, after, result, command_id):
        with self.lock:
            self.audits.append(dict(user=user, role=role, device=device, action=action, before=before, after=after))
            self.audits[-1].update(result=result, command_id=command_id)
            return len(self.audits)

    def seqs(self, device):
        with self.lock:
            return sorted(self.events.get(device, {}))


class ServedDevice:
    """A real emulated stimulator served in-process; every connect() gets a fresh LoopbackPair."""

    def __init__(self) -> None:
        self.device = Device(Stimulator(ScsConfig(), T0, 1), ManualClock(T0), KEY)
        self.lock = threading.Lock()  # the device is not thread-safe: the server and the test share it
        self.pair: LoopbackPair | None = None
        self.answering = threading.Event()
        self.answering.set()
        self.lose_replies = 0  # the device handles programming requests, but this many of their answers are lost
        self.client_options = {"timeout": 0.3, "retries": 2}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-device", daemon=True)
        self._thread.start()

    def connect(self, url, key_file, **options):
        with self.lock:
            if self.pair is not None:
                self.pair.close()
            self.pair = LoopbackPair(timeout=0.02)
            port = self.pair.host
        return DeviceClient(port, KEY, owns_port=True, **self.client_options, **options)

    def drop(self) -> None:
        """Pull the cable: both ends of the current pair close."""
        with self.lock:
            self.pair.close()

    def add_events(self, count: int) -> int:
        with self.lock:
            for i in range(count):
                self.device.model.events.append(T0, EventCode.COMM_ERROR, arg0=i)
            return self.device.model.events.last_seq

    def log(self) -> list[EventRecord]:
        with self.lock:
            return self.device.model.events.read(1, 1_000_000)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.pair is not None:
            self.pair.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            pair = self.pair
            if pair is None:
                time.sleep(0.01)
                continue
            try:
                data = pair.device.read(4096)
            except LinkError:
                time.sleep(0.01)
                continue
            if not self.answering.is_set():
                continue  # a silent device: requests vanish
            with self.lock:
                out = self.device.receive(data) if data else self.device.tick()
                if out and self.lose_replies > 0 and _carries(data, MsgType.STIM_PROGRAM_SET, MsgType.COMMAND_QUERY):
                    self.lose_replies -= 1
                    continue
            if out:
                try:
                    pair.device.write(out)
                except LinkError:
                    pass


def _carries(data: bytes, *types: MsgType) -> bool:
    """Whether ``data`` holds a frame of one of ``types`` (header only: no key needed)."""
    return any(frame.msg_type in types for frame in FrameDecoder().feed(data))


class FakeClient:
    """A DeviceClient stand-in that records which thread called it."""

    counters = DeviceClient.counters  # the real flattening, over this stand-in's own counters

    def __init__(self, identify_error: Exception | None = None, good_statuses: int | None = None) -> None:
        self.identify_error = identify_error
        self.good_statuses = good_statuses
        self.stats = ClientStats()
        self.link_stats = LinkStats()
        self.session: object | None = None
        self.therapy_on = False
        self.statuses = 0
        self.threads: set[str] = set()
        self.closed = False

    def identify(self):
        if self.identify_error is not None:
            raise self.identify_error
        return IDENTITY

    def open_session(self):
        self.session = object()

    def status(self):
        self.threads.add(threading.current_thread().name)
        self.statuses += 1
        if self.good_statuses is not None and self.statuses > self.good_statuses:
            raise LinkTimeout("no valid reply to StatusRequest within 0.3 s after 3 tries")
        return scs_status(self.therapy_on, seq=0)

    def read_events(self, from_seq, max_count=8):
        return EventLogPage(1, 0, ())

    def poll_pushes(self, wait_s=0.0):
        time.sleep(wait_s)
        return []

    def request(self, message):
        self.threads.add(threading.current_thread().name)
        if isinstance(message, TherapySet):
            self.therapy_on = message.on
            return CommandAck(9)
        raise DeviceRejected(ErrorCode.OUT_OF_RANGE, "bolus above 1000 µL", "volume_ul", message.volume_ul, 1000)

    def close(self):
        self.closed = True
        self.session = None


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served():
    device = ServedDevice()
    yield device
    device.close()


@pytest.fixture
def make_link():
    """Factory of links named ``scs``; every link made is stopped at teardown (before the device)."""
    links: list[DeviceLink] = []

    def make(url: str = "loop://", key_file=None, store=None, **options) -> DeviceLink:
        link = DeviceLink("scs", url, key_file, store if store is not None else FakeStore(), **options)
        links.append(link)
        return link

    yield make
    for link in links:
        link.stop()


# --- telemetry and the event log -----------------------------------------------------------------
def test_status_and_events_flow_into_the_store_and_the_snapshot(served, make_link):
    store = FakeStore()
    link = make_link(store=store, connect=served.connect, poll_s=0.05).start()
    assert "link-scs" in {t.name for t in threading.enumerate()}
    wait_until(in_state(link, LinkState.ONLINE), what="ONLINE")
    wait_until(lambda: len(store.statuses) >= 3, what="three polls")
    snap = link.snapshot()
    assert snap.identity.serial == served.device.model.serial
    assert isinstance(snap.status, ScsStatus) and snap.status.time_ms == T0
    assert snap.session_open and snap.technical_alarm is None and snap.next_retry_in_s is None
    assert 0 <= snap.age_s < 1.0 and abs(snap.last_seen_wall - time.time()) < 5 and snap.rtt_ms is not None
    assert snap.counters["frames_ok"] >= 3 and snap.counters["requests"] >= 3 and snap.counters["crc_errors"] == 0
    assert {device for device, _, _ in store.statuses} == {"scs"}
    log = wait_until(lambda: (log := served.log()) and store.seqs("scs") == [e.seq for e in log] and log)
    assert [store.events["scs"][e.seq] for e in log] == log
    assert link.snapshot().last_event_seq == log[-1].seq


def test_pushed_events_are_stored_before_the_next_poll(served, make_link):
    store, clients = FakeStore(), []

    def connect(url, key_file, **options):
        clients.append(served.connect(url, key_file, **options))
        return clients[-1]

    link = make_link(store=store, connect=connect, poll_s=30.0).start()
    wait_until(lambda: store.statuses and store.last_event_seq("scs") == served.log()[-1].seq, what="first poll")
    requests = clients[0].stats.requests
    last = served.add_events(3)
    wait_until(lambda: store.last_event_seq("scs") == last, timeout_s=1.0, what="the pushed events")
    assert len(store.statuses) == 1  # no poll in between: the pushes brought them
    assert clients[0].stats.requests == requests  # stored as pushed, without reading the log
    assert store.seqs("scs") == list(range(1, last + 1))
    assert link.snapshot().state is LinkState.ONLINE


def test_events_have_no_gap_across_a_pulled_cable(served, make_link):
    store = FakeStore()
    link = make_link(store=store, connect=served.connect, poll_s=0.05, backoff=(0.3, 1.0)).start()
    wait_until(in_state(link, LinkState.ONLINE))
    last = served.add_events(20)
    wait_until(lambda: store.last_event_seq("scs") >= last, what="the first 20 events")
    served.drop()
    down = wait_until(in_state(link, LinkState.OFFLINE), what="OFFLINE")
    assert "closed" in down.technical_alarm and down.next_retry_in_s is not None and not down.session_open
    served.add_events(15)  # while the cable is out: nothing can be pushed, the log read must fetch them
    wait_until(lambda: link.snapshot().reconnects == 1 and link.snapshot().state is LinkState.ONLINE)
    log = wait_until(lambda: (log := served.log()) and store.seqs("scs") == [e.seq for e in log] and log)
    assert [e.seq for e in log] == list(range(1, len(log) + 1)) and len(log) >= 36
    assert [store.events["scs"][e.seq] for e in log] == log
    assert link.snapshot().technical_alarm is None


def test_a_restarted_device_log_is_read_again_from_its_first_seq(served, make_link, caplog):
    store = FakeStore()
    stale = [
        EventRecord(s, T0 - 1000, EventCode.COMM_ERROR, Priority.NONE, AlarmState.NONE, 0, 0, Actor.DEVICE)
        for s in range(1, 51)
    ]
    store.add_events("scs", stale)  # a log up to #50 from the device's previous life
    link = make_link(store=store, connect=served.connect, poll_s=0.05).start()

    def replaced():
        log = served.log()
        return all(store.events["scs"].get(e.seq) == e for e in log) and log

    log = wait_until(replaced, what="the new log stored over the old one")
    assert log[0].seq == 1 and "event log restarted" in caplog.text
    assert link.snapshot().last_event_seq == log[-1].seq
    assert [store.events["scs"][e.seq] for e in log] == log


def test_the_real_emulator_killed_and_restarted_leaves_no_gap(tmp_path, make_link):
    pty_link = tmp_path / "scs.pty"
    args = ["--device", "scs", "--link", str(pty_link), "--speed", "1000"]
    mock = MockProcess(args, tmp_path / "state")
    try:
        store = FakeStore()
        key = mock.devices["scs-1"].key
        link = make_link(url=str(pty_link), key_file=key, store=store, poll_s=0.1, backoff=(0.1, 0.4)).start()
        wait_until(in_state(link, LinkState.ONLINE), timeout_s=10)
        first = link.submit(ImpedanceCheck(), "alice", "clinician")
        assert first.ok and first.command_id is not None
        wait_until(lambda: store.last_event_seq("scs") >= first.reply.event_seq)
        mock.kill9()
        wait_until(in_state(link, LinkState.OFFLINE), what="OFFLINE after kill -9")
        mock = MockProcess(args, tmp_path / "state")
        wait_until(lambda: link.snapshot().reconnects == 1 and link.snapshot().state is LinkState.ONLINE, 10)
        second = link.submit(ImpedanceCheck(), "alice", "clinician")
        assert second.ok and second.reply.event_seq > first.reply.event_seq
        wait_until(
            lambda: store.last_event_seq("scs") >= max(second.reply.event_seq, link.snapshot().status.last_event_seq)
        )
        seqs = store.seqs("scs")
        assert seqs == list(range(1, seqs[-1] + 1))
        assert {EventCode.IMPEDANCE_MEASURED} <= {store.events["scs"][s].code for s in seqs}
    finally:
        mock.stop()


# --- backoff, stale data, stopping --------------------------------------------------------------
def test_backoff_doubles_from_half_a_second_to_a_30_s_cap(make_link):
    assert [d for d, _ in zip(backoff_delays(0.5, 30.0), range(9), strict=False)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    clock = FakeClock(100.0)
    delays, seen = [], []

    def refuse(url, key_file, **options):
        raise LinkError(f"cannot open port {url!r}: [Errno 2] No such file or directory")

    def sleep(delay):
        seen.append(link.snapshot())
        delays.append(delay)
        clock.now += delay
        if len(delays) >= 10:
            time.sleep(0.01)

    link = make_link(url="/dev/ttyGONE", connect=refuse, clock=clock, sleep=sleep)
    link.start()  # after the assignment: sleep() reads ``link``
    wait_until(lambda: len(delays) >= 10)
    link.stop()
    assert delays[:10] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
    assert [s.next_retry_in_s for s in seen[:10]] == pytest.approx(delays[:10])
    assert all(s.state is LinkState.OFFLINE for s in seen)
    assert seen[0].technical_alarm == "cannot open port '/dev/ttyGONE': [Errno 2] No such file or directory"
    assert seen[9].technical_alarm.endswith(f"(no data from scs for {sum(delays[:9]):.0f} s)")


def test_backoff_starts_again_at_half_a_second_after_a_good_session(make_link):
    outcomes = [LinkError("cannot open port"), LinkError("cannot open port"), FakeClient(good_statuses=1)]
    outcomes += [LinkError("cannot open port")] * 2
    delays = []

    def connect(url, key_file, **options):
        outcome = outcomes.pop(0) if outcomes else LinkError("cannot open port")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def sleep(delay):
        delays.append(delay)
        time.sleep(0.01 if len(delays) < 6 else 0.05)

    link = make_link(connect=connect, poll_s=0.01, sleep=sleep).start()
    wait_until(lambda: len(delays) >= 5)
    link.stop()
    assert delays[:5] == [0.5, 1.0, 0.5, 1.0, 2.0]


def test_schema_mismatch_is_a_technical_alarm_not_a_retry_storm_and_stop_is_prompt(make_link):
    calls = []

    def connect(url, key_file, **options):
        calls.append(url)
        return FakeClient(identify_error=SchemaMismatch("device schema 0x00000001, ours 0x12345678"))

    link = make_link(connect=connect).start()
    snap = wait_until(in_state(link, LinkState.OFFLINE))
    assert snap.technical_alarm.startswith("schema mismatch: device schema 0x00000001")
    assert snap.next_retry_in_s > 29
    time.sleep(0.3)
    assert len(calls) == 1
    started = time.monotonic()
    link.stop()
    assert time.monotonic() - started < 2.0  # prompt: no 30 s retry wait; slack for a loaded 2-core CI box


def test_stale_data_raises_a_technical_alarm_while_the_thread_is_blocked(served, make_link):
    served.client_options = {"timeout": 2.0, "retries": 1}  # a silent device blocks a request for 4 s
    link = make_link(connect=served.connect, poll_s=0.2, stale_after_s=0.6).start()
    wait_until(in_state(link, LinkState.ONLINE))
    served.answering.clear()
    silenced = time.monotonic()
    snap = wait_until(in_state(link, LinkState.STALE), timeout_s=3, what="STALE")
    assert time.monotonic() - silenced <= 0.6 + 0.2 + 0.7  # stale_after + one poll, plus scheduling slack
    assert snap.technical_alarm.startswith(f"no data from {link.name} for ") and snap.technical_alarm.endswith(" s")
    assert snap.age_s > 0.6 and snap.status is not None
    served.answering.set()  # the blocked request's re-send is answered
    back = wait_until(in_state(link, LinkState.ONLINE), timeout_s=5, what="ONLINE again")
    assert back.technical_alarm is None and back.reconnects == 0


def test_stop_is_prompt_while_connecting_to_a_dead_port(tmp_path, make_link):
    master, slave = os.openpty()
    tty.setraw(slave)
    key_file = tmp_path / "pairing.key"
    key_file.write_text(KEY.hex())
    try:
        link = make_link(url=os.ttyname(slave), key_file=key_file).start()  # the real client: 1 s x 4 tries
        time.sleep(0.3)  # now waiting for an identify reply that never comes
        assert link.snapshot().state is LinkState.CONNECTING
        started = time.monotonic()
        link.stop()
        assert time.monotonic() - started < 2.0  # the blocked identify alone would take 4 s
        assert "link-scs" not in {t.name for t in threading.enumerate()}
        assert link.snapshot().state is LinkState.OFFLINE
        link.stop()  # idempotent
    finally:
        os.close(master)
        os.close(slave)


# --- commands ------------------------------------------------------------------------------------
def test_submit_runs_on_the_link_thread_and_audits_before_and_after(make_link):
    client, store = FakeClient(), FakeStore()
    link = make_link(store=store, connect=lambda url, key_file, **options: client, poll_s=0.05).start()
    wait_until(in_state(link, LinkState.ONLINE))
    done = link.submit(TherapySet(True), "alice", "clinician")
    assert done.ok and done.reply == CommandAck(9) and done.error_code is None
    assert (done.before, done.after) == ({"therapy_on": False}, {"therapy_on": True})
    assert client.threads == {"link-scs"}
    audit = store.audits[done.audit_id - 1]
    assert (audit["user"], audit["role"], audit["device"]) == ("alice", "clinician", "scs")
    assert audit["action"] == 'TherapySet {"on":true}' and audit["result"].startswith("applied: CommandAck")
    assert (audit["before"], audit["after"]) == (done.before, done.after)
    refused = link.submit(Bolus(BolusKind.CLINICIAN, 5000, 10), "bob", "clinician")
    assert not refused.ok and refused.reply is None
    assert (refused.error_code, refused.field, refused.value, refused.limit) == (
        "OUT_OF_RANGE",
        "volume_ul",
        5000,
        1000,
    )
    assert refused.audit_id == done.audit_id + 1
    assert store.audits[-1]["result"] == "rejected: OUT_OF_RANGE bolus above 1000 µL (volume_ul=5000, limit 1000)"
    assert client.threads == {"link-scs"}
    with pytest.raises(ValueError, match="SessionClose"):
        link.submit(SessionClose(), "alice", "clinician")


def test_submit_to_the_emulated_device_gives_ids_read_back_and_typed_refusals(served, make_link):
    store = FakeStore()
    link = make_link(store=store, connect=served.connect, poll_s=0.1).start()
    wait_until(in_state(link, LinkState.ONLINE))
    done = link.submit(StimProgramSet(1, True, (TONIC,), 6000, 2), "alice", "clinician")
    assert done.ok and isinstance(done.reply, CommandAck) and done.command_id > 0
    assert done.before == {"therapy_on": False, "active_program": 0, "areas": [], "patient_amp_max_ua": 0}
    assert done.after["active_program"] == 1 and done.after["areas"][0]["amplitude_ua"] == 3000
    assert store.audits[-1]["command_id"] == done.command_id
    assert served.log()[done.reply.event_seq - 1].code == EventCode.PROGRAM_CHANGED
    too_high = dataclasses.replace(TONIC, amplitude_ua=30_000)
    refused = link.submit(StimProgramSet(1, True, (too_high,), 30_000, 2), "alice", "clinician")
    assert (refused.ok, refused.error_code, refused.field) == (False, "OUT_OF_RANGE", "areas[0].amplitude_ua")
    assert (refused.value, refused.limit) == (30_000, ScsConfig().amplitude_ua[1])
    assert refused.before == refused.after == done.after  # refused: nothing changed
    assert len(store.audits) == 2 and store.audits[-1]["result"].startswith("rejected: OUT_OF_RANGE")


PROGRAM = StimProgramSet(1, True, (TONIC,), 6000, 2)


def _programmings(served) -> int:
    return sum(1 for e in served.log() if e.code == EventCode.PROGRAM_CHANGED)


def test_a_command_the_device_never_heard_is_unknown_then_settled_as_not_applied(served, make_link):
    served.client_options = {"timeout": 0.2, "retries": 1}
    store = FakeStore()
    link = make_link(store=store, connect=served.connect, poll_s=30.0, backoff=(0.1, 0.2)).start()
    wait_until(caught_up(link, served), what="caught up with the log")
    served.answering.clear()
    lost = link.submit(TherapySet(True), "alice", "clinician")
    assert (lost.ok, lost.error_code) == (False, "UNKNOWN") and "may have been applied" in lost.message
    assert lost.command_id is not None and store.audits[-1]["result"] == lost.message
    served.answering.set()
    wait_until(lambda: "settled" in store.audits[-1]["result"])
    assert store.audits[-1]["result"] == (
        "settled after its reply was lost: no reply, and the device confirmed it did not apply it"
    )
    assert store.audits[-1]["command_id"] == lost.command_id and _programmings(served) == 0


def test_a_command_whose_reply_is_lost_is_asked_about_and_reported_applied(served, make_link):
    """The device applied it and its reply was lost: the link asks (SPEC 4.2) and reports it applied."""
    served.client_options = {"timeout": 0.2, "retries": 0}
    store = FakeStore()
    link = make_link(store=store, connect=served.connect, poll_s=30.0).start()
    wait_until(caught_up(link, served), what="caught up with the log")
    served.lose_replies = 1
    done = link.submit(PROGRAM, "alice", "clinician")
    assert done.ok and isinstance(done.reply, CommandAck), done.message
    assert done.after["active_program"] == 1 and _programmings(served) == 1
    assert store.audits[-1]["result"].startswith("applied: CommandAck")


def test_an_applied_command_the_device_cannot_be_asked_about_is_settled_after_reconnecting(served, make_link):
    served.client_options = {"timeout": 0.2, "retries": 1}
    store = FakeStore()
    link = make_link(store=store, connect=served.connect, poll_s=30.0, backoff=(0.1, 0.2)).start()
    wait_until(caught_up(link, served), what="caught up with the log")
    served.lose_replies = 1_000_000
    lost = link.submit(PROGRAM, "alice", "clinician")
    assert (lost.ok, lost.error_code) == (False, "UNKNOWN") and "may have been applied" in lost.message
    served.lose_replies = 0
    wait_until(lambda: "settled" in store.audits[-1]["result"])
    assert store.audits[-1]["result"].startswith("settled after its reply was lost: applied: CommandAck")
    assert _programmings(served) == 1  # asked about, never applied twice


def test_commands_while_offline_or_stopped_are_refused_at_once_and_audited(make_link):
    store = FakeStore()

    def refuse(url, key_file, **options):
        raise LinkError(f"cannot open port {url!r}: gone")

    link = make_link(store=store, connect=refuse, backoff=(5.0, 5.0))
    early = link.submit(TherapySet(False), "alice", "clinician")
    assert (early.ok, early.error_code, early.message) == (False, "LINK", "not sent: link not running")
    link.start()
    wait_until(in_state(link, LinkState.OFFLINE))
    started = time.monotonic()
    offline = link.submit(TherapySet(False), "alice", "clinician")
    assert time.monotonic() - started < 1.5  # at once, not after the 5 s retry wait
    assert offline.error_code == "LINK" and offline.message.startswith("not sent: link offline: cannot open port")
    assert [a["result"] for a in store.audits] == [early.message, offline.message]
    assert all(a["command_id"] is None for a in store.audits)


def test_touched_fields_keep_the_audit_small():
    status = scs_status(therapy_on=True)
    assert touched_fields(status, TherapySet(False)) == {"therapy_on": True}
    assert touched_fields(status, ImpedanceCheck()) == {"impedance_ohm": list(status.impedance_ohm)}
    assert touched_fields(None, TherapySet(False)) == {}


# --- with the real history store ------------------------------------------------------------------
def test_the_real_store_gets_a_gapless_log_statuses_and_the_audit(served, make_link, tmp_path):
    store_module = pytest.importorskip("dashboard.store")
    store = store_module.open_store(f"sqlite:///{tmp_path / 'history.db'}")
    try:
        link = make_link(store=store, connect=served.connect, poll_s=0.05).start()
        wait_until(in_state(link, LinkState.ONLINE))
        last = served.add_events(12)
        done = link.submit(StimProgramSet(1, True, (TONIC,), 6000, 2), "alice", "clinician")
        assert done.ok and isinstance(done.audit_id, int)

        def caught_up():
            store.flush()
            return store.last_event_seq("scs") >= max(last, done.reply.event_seq)

        wait_until(caught_up)
        link.stop()
        store.flush()
        assert store.event_seq_gaps("scs") == []
        assert store.latest_status("scs") is not None
        entry = store.audit(limit=1)[0]
        assert (entry["id"], entry["command_id"], entry["user"]) == (done.audit_id, done.command_id, "alice")
        assert entry["after"]["active_program"] == 1 and store.verify_audit() is None
    finally:
        store.close()
