"""DeviceClient over an in-memory link to a served endpoint: requests, retries, typed errors, pushes.

SPEC.md 4 (stop-and-wait, same command id on retry, exactly once), 3.6 (re-open on NO_SESSION) and
5 (schema fingerprint). Waits are bounded and on real conditions; fault injection goes through
``LoopbackPort.manipulator``.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from dataclasses import replace

import pytest
from cobs import cobs

from protocols.auth import write_pairing_key
from protocols.client import DeviceClient
from protocols.codec import SCHEMA_FINGERPRINT, decode_payload, encode_payload
from protocols.endpoint import DeviceEndpoint
from protocols.errors import (
    AuthError,
    DeviceRejected,
    ErrorCode,
    FrameError,
    LinkError,
    LinkTimeout,
    PairingKeyError,
    ProtocolError,
    SchemaMismatch,
)
from protocols.framing import Frame, FrameDecoder, FrameFlags, encode_frame
from protocols.messages import (
    Actor,
    AlarmState,
    BolusKind,
    BolusReply,
    CommandAck,
    EventCode,
    EventPush,
    EventRecord,
    IdentifyReply,
    MsgType,
    Priority,
    ScsStatus,
    StatusRequest,
)
from protocols.transport import LoopbackPair, line_noise
from tests.conftest import KEY
from tests.fakes import IDENTITY, EndpointThread, FakeDevice

EVENT = EventRecord(
    9, 1_767_225_600_000, EventCode.BATTERY_LOW, Priority.LOW, AlarmState.ACTIVE, 1500, 3600, Actor.DEVICE
)


class FakeClock:
    """A settable link clock for the endpoint thread (session expiry without waiting)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@contextlib.contextmanager
def served(device: FakeDevice | None = None, clock=time.monotonic, pair_timeout: float = 0.02, **endpoint_kwargs):
    """A loopback pair whose device end is served by an endpoint thread; yields (pair, endpoint)."""
    pair = LoopbackPair(timeout=pair_timeout)
    endpoint = DeviceEndpoint(IDENTITY, device or FakeDevice(), KEY, **endpoint_kwargs)
    server = EndpointThread(pair.device, endpoint, clock=clock).start()
    try:
        yield pair, endpoint
    finally:
        pair.close()
        server.stop()


def with_bad_crc(data: bytes) -> bytes:
    """One delimited frame with a bit of its CRC flipped: a certain CrcError, stuffing intact."""
    raw = bytearray(cobs.decode(data[1:-1]))
    raw[-1] ^= 0x01
    return b"\x00" + cobs.encode(bytes(raw)) + b"\x00"


def wait_for(condition, timeout: float = 2.0) -> bool:
    """Poll ``condition`` until true or ``timeout`` passes (a bounded wait on a real condition)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


# --- the basic requests --------------------------------------------------------------------------


def test_identify_returns_the_device_identity(client):
    reply = client.identify()
    assert isinstance(reply, IdentifyReply)
    assert reply.schema_fingerprint == SCHEMA_FINGERPRINT
    assert (reply.model, reply.serial) == (IDENTITY.model, IDENTITY.serial)
    assert client.identity == reply
    assert client.session is None  # identify needs no session


def test_open_session_runs_the_handshake(client, link):
    _, endpoint = link
    client.open_session()
    assert client.session is not None and client.session.confirmed
    assert client.session_limits == (300, 3600)
    active = endpoint.sessions.active
    assert active is not None and active.session_id == client.session.session_id


def test_status_returns_the_device_snapshot(client, fake_device):
    status = client.status()  # opens the session on demand
    assert isinstance(status, ScsStatus)
    assert status == fake_device(StatusRequest())
    assert client.stats.requests >= 3 and client.stats.timeouts == 0


def test_commands_are_applied(client, fake_device):
    assert isinstance(client.set_therapy(False), CommandAck)
    reply = client.bolus(BolusKind.CLINICIAN, 200, 10)
    assert reply == BolusReply(2, 200, 0)
    assert fake_device.applied == ["therapy False", "bolus 200"]


def test_bolus_refused_raises_device_rejected_with_its_fields(client, fake_device):
    with pytest.raises(DeviceRejected) as info:
        client.bolus(BolusKind.CLINICIAN, 2000, 10)
    exc = info.value
    assert exc.code == ErrorCode.OUT_OF_RANGE
    assert (exc.field, exc.value, exc.limit) == ("volume_ul", 2000, 1000)
    assert exc.reason == "bolus above 1000 µL"
    assert "OUT_OF_RANGE" in str(exc)
    assert isinstance(exc, ProtocolError)
    assert fake_device.boluses == 0
    assert client.stats.rejected == 1


def test_unsupported_request_raises_device_rejected(client):
    with pytest.raises(DeviceRejected) as info:
        client.read_clock()
    assert info.value.code == ErrorCode.UNSUPPORTED


def test_schema_mismatch_is_refused(client, link, monkeypatch):
    """SPEC 5: a device whose schema fingerprint differs is refused with SchemaMismatch."""
    _, endpoint = link
    monkeypatch.setattr(endpoint, "identity", replace(endpoint.identity, schema_fingerprint=SCHEMA_FINGERPRINT ^ 1))
    with pytest.raises(SchemaMismatch) as info:
        client.identify()
    assert f"{SCHEMA_FINGERPRINT:08x}" in str(info.value)
    assert client.identity is None


def test_forged_untagged_identify_reply_inside_a_session_is_dropped(link):
    """SPEC 4: a host accepts an untagged frame only as an ErrorReply or the reply to an untagged request.

    Inside a session identify is sent tagged, so an untagged IdentifyReply with the right command id
    (anyone on the line can forge one) must be dropped and the device's tagged reply used.
    """
    pair, endpoint = link

    def forge_identity(data: bytes) -> bytes:
        frames = FrameDecoder().feed(data)
        if frames and frames[0].msg_type == MsgType.IDENTIFY_REPLY and frames[0].authenticated:
            fake = replace(endpoint.identity, model="Forged", serial="EVIL")
            forged = Frame(
                MsgType.IDENTIFY_REPLY, FrameFlags.FROM_DEVICE, 0, 0, frames[0].command_id, encode_payload(fake)
            )
            return encode_frame(forged) + data
        return data

    with DeviceClient(pair.host, KEY, timeout=0.3) as client:
        client.open_session()
        pair.device.manipulator = forge_identity
        reply = client.identify()
    assert (reply.model, reply.serial) == (IDENTITY.model, IDENTITY.serial)


def test_close_ends_the_session_on_the_device(link):
    pair, endpoint = link
    client = DeviceClient(pair.host, KEY, timeout=0.3)
    client.open_session()
    assert endpoint.sessions.active is not None
    client.close()
    assert endpoint.sessions.active is None
    client.close()  # idempotent
    with pytest.raises(LinkError):
        client.identify()


def test_client_with_another_pairing_key_does_not_trust_the_device(link):
    """Another key's open proof does not verify: the device refuses it with BAD_MAC, no session."""
    pair, _ = link
    with DeviceClient(pair.host, bytes(32), timeout=0.3) as other:
        with pytest.raises(DeviceRejected) as refused:
            other.open_session()
        assert refused.value.code == ErrorCode.BAD_MAC and "proof" in str(refused.value)
        assert other.session is None


def test_session_requests_need_a_key(link):
    pair, _ = link
    with DeviceClient(pair.host, None, timeout=0.3) as keyless:
        assert keyless.identify().schema_fingerprint == SCHEMA_FINGERPRINT
        with pytest.raises(AuthError):
            keyless.status()
        with pytest.raises(PairingKeyError):
            keyless.open_session()
    with pytest.raises(PairingKeyError):
        DeviceClient(pair.host, b"short")


def test_command_ids_start_random_increment_and_skip_zero(link):
    """SPEC 4: a random first command id, +1 per new request, wrapping past 0xFFFFFFFF to 1 (never 0)."""
    pair, _ = link
    ids: list[int] = []

    def trace(direction: str, item: object) -> None:
        if direction == "tx" and isinstance(item, Frame):
            ids.append(item.command_id)

    with DeviceClient(pair.host, KEY, timeout=0.3, rng=lambda n: b"\xff" * n, trace=trace) as client:
        client.identify()
        client.identify()
        client.identify()
    assert ids[:3] == [0xFFFFFFFF, 1, 2]


# --- retries and exactly once --------------------------------------------------------------------


def test_lost_reply_is_retried_with_the_same_command_id_and_applied_once(link, fake_device):
    """The first bolus reply is dropped: the client re-sends the same command id, the device applies it once."""
    pair, _ = link
    sent: list[Frame] = []
    state = {"armed": False, "dropped": 0}

    def drop_first(data: bytes) -> bytes:
        if state["armed"]:
            state["armed"] = False
            state["dropped"] += 1
            return b""
        return data

    def trace(direction: str, item: object) -> None:
        if direction == "tx" and isinstance(item, Frame):
            sent.append(item)

    with DeviceClient(pair.host, KEY, timeout=0.3, retries=3, trace=trace) as client:
        client.open_session()
        pair.device.manipulator = drop_first
        state["armed"] = True
        reply = client.bolus(BolusKind.CLINICIAN, 100, 5)
    assert state["dropped"] == 1
    assert reply == BolusReply(1, 100, 0)
    assert fake_device.boluses == 1
    assert fake_device.applied == ["bolus 100"]
    assert client.stats.retries == 1
    boluses = [f for f in sent if f.msg_type == MsgType.BOLUS]
    assert len(boluses) == 2
    assert boluses[0].command_id == boluses[1].command_id
    assert boluses[1].counter > boluses[0].counter and boluses[0].tag != boluses[1].tag


def test_replay_refusal_of_a_late_copy_does_not_fail_a_request_its_retry_applied(link, fake_device):
    """The first bolus frame arrives after its retry; the retry's reply is lost, the late copy is refused as a
    replay: the client keeps waiting, retries, and gets the applied bolus from the exactly-once cache."""
    pair, _ = link
    held: list[bytes] = []
    state = {"host": "hold", "device": "armed"}

    def host_side(data: bytes) -> bytes:
        if state["host"] == "hold":
            held.append(data)
            state["host"] = "release"
            return b""
        if state["host"] == "release":
            state["host"] = "done"
            return data + held[0]  # the retry, then the late original
        return data

    def device_side(data: bytes) -> bytes:
        runs = [run for run in data.split(b"\0") if run]
        if state["host"] == "done" and state["device"] == "armed" and len(runs) == 2:
            state["device"] = "done"
            return b"\0" + runs[1] + b"\0"  # the retry's tagged reply is lost, the REPLAY refusal arrives
        return data

    with DeviceClient(pair.host, KEY, timeout=0.3, retries=3) as client:
        client.open_session()
        pair.host.manipulator, pair.device.manipulator = host_side, device_side
        reply = client.bolus(BolusKind.CLINICIAN, 100, 5)
    assert state == {"host": "done", "device": "done"}
    assert reply == BolusReply(1, 100, 0)
    assert fake_device.applied == ["bolus 100"]
    assert client.stats.retries == 2 and client.stats.rejected == 0


def test_late_challenge_is_still_the_right_one(link):
    """SPEC 3.5 retries: the first challenge arrives only after the re-sent open; the handshake still works."""
    pair, endpoint = link
    held: list[bytes] = []
    state = {"armed": False}

    def delay_first(data: bytes) -> bytes:
        if state["armed"]:
            state["armed"] = False
            held.append(data)
            return b""
        return b"".join(held) + data  # the held challenge lands just before the second one

    pair.device.manipulator = delay_first
    state["armed"] = True
    with DeviceClient(pair.host, KEY, timeout=0.2, retries=3) as client:
        client.open_session()
        assert held and client.stats.retries == 1
        assert client.session.session_id == endpoint.sessions.active.session_id
        assert isinstance(client.status(), ScsStatus)


def test_lost_confirm_ack_is_retried_and_the_session_works(link):
    """The CommandAck of SessionConfirm is lost: the re-sent confirm is acknowledged, the session is usable."""
    pair, _ = link
    state = {"count": 0}

    def drop_second(data: bytes) -> bytes:  # 1st device write: challenge; 2nd: the confirm's ack
        state["count"] += 1
        return b"" if state["count"] == 2 else data

    pair.device.manipulator = drop_second
    with DeviceClient(pair.host, KEY, timeout=0.2, retries=3) as client:
        client.open_session()
        assert client.stats.retries == 1
        assert isinstance(client.status(), ScsStatus)


def test_no_device_gives_link_timeout_after_retries():
    """Nothing answers: retries+1 identical requests (one command id), then LinkTimeout (a TimeoutError)."""
    pair = LoopbackPair(timeout=0.01)
    client = DeviceClient(pair.host, KEY, timeout=0.05, retries=2)
    started = time.monotonic()
    with pytest.raises(LinkTimeout) as info:
        client.identify()
    elapsed = time.monotonic() - started
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, ProtocolError)
    assert 0.15 <= elapsed < 2.0
    assert client.stats.retries == 2 and client.stats.timeouts == 1
    frames = FrameDecoder().feed(pair.device.read(10_000))
    assert len(frames) == 3
    assert len({f.command_id for f in frames}) == 1
    pair.close()


def test_crc_hint_from_the_device_triggers_an_immediate_resend(link, fake_device):
    """A request corrupted on the way gets a CRC ErrorReply (command id 0); the client re-sends at once."""
    pair, endpoint = link
    state = {"armed": False}

    def corrupt_first(data: bytes) -> bytes:
        if not state["armed"]:
            return data
        state["armed"] = False
        return with_bad_crc(data)

    with DeviceClient(pair.host, KEY, timeout=5.0, retries=3) as client:
        client.open_session()
        pair.host.manipulator = corrupt_first
        state["armed"] = True
        started = time.monotonic()
        client.set_therapy(False)
        assert time.monotonic() - started < 2.5  # far below the 5 s timeout: no waiting for it
        assert client.stats.retries == 1
    assert endpoint.stats.crc_errors == 1
    assert fake_device.applied == ["therapy False"]


def test_port_closed_raises_link_error(client, link):
    """A closed port is a LinkError (also a ConnectionError), on write and on read."""
    pair, _ = link
    client.open_session()
    pair.close()
    with pytest.raises(LinkError) as info:
        client.status()
    assert isinstance(info.value, ConnectionError)
    with pytest.raises(ConnectionError):
        client.poll_pushes()


def test_port_closed_while_waiting_for_a_reply_raises_link_error():
    pair = LoopbackPair(timeout=0.01)
    client = DeviceClient(pair.host, KEY, timeout=5.0, retries=0)
    closer = threading.Timer(0.1, pair.device.close)
    closer.start()
    try:
        with pytest.raises(LinkError):
            client.identify()
    finally:
        closer.join()


# --- session expiry ------------------------------------------------------------------------------


def test_expired_session_is_reopened_and_the_request_succeeds():
    """SPEC 3.6: after the device's idle limit the client gets NO_SESSION, re-opens, and repeats the request."""
    clock = FakeClock()
    device = FakeDevice()
    with served(device, clock=clock) as (pair, endpoint):
        with DeviceClient(pair.host, KEY, timeout=0.3) as client:
            assert isinstance(client.status(), ScsStatus)
            first_session = client.session.session_id
            clock.advance(301.0)
            assert client.status() == device(StatusRequest())
            assert client.stats.reopened == 1
            assert client.session.session_id != first_session
            assert endpoint.sessions.active.session_id == client.session.session_id


def test_bolus_after_expiry_is_applied_exactly_once():
    """The request refused for NO_SESSION is repeated (same command id) in the new session: one bolus."""
    clock = FakeClock()
    device = FakeDevice()
    with served(device, clock=clock) as (pair, _):
        with DeviceClient(pair.host, KEY, timeout=0.3) as client:
            client.open_session()
            clock.advance(3601.0)  # past the absolute limit
            assert client.bolus(BolusKind.CLINICIAN, 50, 1) == BolusReply(1, 50, 0)
            assert client.stats.reopened == 1
    assert device.boluses == 1


def test_bolus_applied_just_before_expiry_is_not_applied_twice():
    """SPEC 3.6: the bolus is applied, its reply lost, and the session expires before the retry.

    The retry gets NO_SESSION, the client re-opens and repeats the same command id, and the device
    answers from its command-id memory (which outlives sessions): one bolus.
    """
    clock = FakeClock()
    device = FakeDevice()
    state = {"armed": False}
    with served(device, clock=clock) as (pair, _):

        def lose_reply_and_expire(data: bytes) -> bytes:
            if state["armed"] and device.boluses:
                state["armed"] = False
                clock.advance(301.0)
                return b""
            return data

        pair.device.manipulator = lose_reply_and_expire
        with DeviceClient(pair.host, KEY, timeout=0.2, retries=3) as client:
            client.open_session()
            state["armed"] = True
            reply = client.bolus(BolusKind.CLINICIAN, 75, 1)
            assert reply == BolusReply(1, 75, 0)
            assert client.stats.reopened == 1
    assert device.boluses == 1
    assert device.applied == ["bolus 75"]


def test_without_auto_reopen_expiry_is_device_rejected():
    clock = FakeClock()
    with served(clock=clock) as (pair, _):
        with DeviceClient(pair.host, KEY, timeout=0.3, auto_reopen=False) as client:
            client.open_session()
            clock.advance(301.0)
            with pytest.raises(DeviceRejected) as info:
                client.status()
            assert info.value.code == ErrorCode.NO_SESSION


# --- noisy line ----------------------------------------------------------------------------------


def test_noisy_link_polls_succeed_or_time_out_and_never_return_wrong_data():
    """Bit flips, drops and duplicates both ways: 200 polls each return the true status or raise LinkTimeout."""
    device = FakeDevice()
    expected = device(StatusRequest())
    with served(device, pair_timeout=0.005) as (pair, endpoint):
        with DeviceClient(pair.host, KEY, timeout=0.05, retries=4, rng=random.Random(3).randbytes) as client:
            client.open_session()
            pair.host.manipulator = line_noise(random.Random(11), flip_rate=1e-3, drop_rate=3e-4, duplicate_rate=3e-4)
            pair.device.manipulator = line_noise(random.Random(12), flip_rate=1e-3, drop_rate=3e-4, duplicate_rate=3e-4)
            ok = timeouts = 0
            for _ in range(200):
                try:
                    status = client.status()
                except LinkTimeout:
                    timeouts += 1
                    continue
                assert status == expected
                ok += 1
            pair.host.manipulator = pair.device.manipulator = None
            damaged = client.link_stats.crc_errors + client.link_stats.malformed + endpoint.stats.crc_errors
    assert ok + timeouts == 200
    assert ok >= 180
    assert damaged > 0  # the noise really reached the decoders
    assert client.stats.retries > 0


# --- trace and pushes ----------------------------------------------------------------------------


def test_trace_sees_tx_and_rx_frames_and_rx_errors(link):
    pair, _ = link
    seen: list[tuple[str, object]] = []
    state = {"armed": False}

    def corrupt_first(data: bytes) -> bytes:
        if not state["armed"]:
            return data
        state["armed"] = False
        return with_bad_crc(data)

    with DeviceClient(pair.host, KEY, timeout=0.2, trace=lambda d, item: seen.append((d, item))) as client:
        client.identify()
        client.status()
        pair.device.manipulator = corrupt_first
        state["armed"] = True
        client.status()
    tx = [item.msg_type for d, item in seen if d == "tx" and isinstance(item, Frame)]
    rx = [item.msg_type for d, item in seen if d == "rx" and isinstance(item, Frame)]
    assert tx[:4] == [MsgType.IDENTIFY_REQUEST, MsgType.SESSION_OPEN, MsgType.SESSION_CONFIRM, MsgType.STATUS_REQUEST]
    assert rx[:4] == [MsgType.IDENTIFY_REPLY, MsgType.SESSION_CHALLENGE, MsgType.COMMAND_ACK, MsgType.SCS_STATUS]
    assert {d for d, _ in seen} == {"tx", "rx"}
    assert any(d == "rx" and isinstance(item, FrameError) for d, item in seen)


def test_pushed_events_are_returned_by_poll_pushes(client, link):
    pair, endpoint = link
    assert endpoint.push(EventPush(EVENT), time.monotonic()) == b""  # no session yet
    client.open_session()
    pair.device.write(endpoint.push(EventPush(EVENT), time.monotonic()))
    assert client.poll_pushes(wait_s=2.0) == [EVENT]
    assert client.poll_pushes() == []


def test_push_arriving_during_a_request_is_queued(client, link):
    pair, endpoint = link
    client.open_session()
    second = replace(EVENT, seq=10)
    pair.device.write(endpoint.push(EventPush(EVENT), time.monotonic()))
    pair.device.write(endpoint.push(EventPush(second), time.monotonic()))
    assert isinstance(client.status(), ScsStatus)
    assert client.poll_pushes(wait_s=1.0) == [EVENT, second]


def test_forged_push_is_dropped(client, link):
    """A push with a bad tag is not queued, and is counted as a MAC error."""
    pair, endpoint = link
    client.open_session()
    frame = FrameDecoder().feed(endpoint.push(EventPush(EVENT), time.monotonic()))[0]
    forged = Frame(frame.msg_type, frame.flags, frame.session_id, frame.counter, 0, frame.payload, bytes(16))
    pair.device.write(encode_frame(forged))
    assert wait_for(lambda: client.poll_pushes() == [] and client.link_stats.mac_errors == 1)
    untagged = Frame(MsgType.EVENT_PUSH, FrameFlags.FROM_DEVICE | FrameFlags.PUSH, 0, 0, 0, frame.payload)
    pair.device.write(encode_frame(untagged))
    assert client.poll_pushes(wait_s=0.1) == []
    assert decode_payload(frame.msg_type, frame.payload) == EventPush(EVENT)


# --- connect -------------------------------------------------------------------------------------


def test_connect_with_a_missing_key_file_is_a_pairing_key_error(tmp_path):
    with pytest.raises(PairingKeyError):
        DeviceClient.connect("loop://", tmp_path / "missing.key")


def test_connect_to_a_missing_port_is_a_link_error(tmp_path):
    key_file = write_pairing_key(tmp_path / "k.key", KEY)
    with pytest.raises(LinkError) as info:
        DeviceClient.connect(str(tmp_path / "no-such-tty"), key_file)
    assert "no-such-tty" in str(info.value)


def test_own_frames_on_a_looped_line_are_dropped(tmp_path):
    """SPEC 2.4: a host drops frames without FROM_DEVICE (on loop:// it reads its own requests)."""
    key_file = write_pairing_key(tmp_path / "k.key", KEY)
    client = DeviceClient.connect("loop://", key_file, timeout=0.05, retries=1)
    try:
        with pytest.raises(LinkTimeout):
            client.identify()
        assert client.link_stats.malformed == 2
    finally:
        client.close()


def test_connect_opens_and_owns_the_port(tmp_path):
    """connect() loads the key and opens the URL; close() closes the port it owns."""
    key_file = write_pairing_key(tmp_path / "k.key", KEY)
    client = DeviceClient.connect("loop://", key_file, timeout=0.05, retries=0)
    try:
        assert client.port.is_open
    finally:
        client.close()
    assert not client.port.is_open


def test_counters_flatten_the_frame_and_the_request_counters(client):
    client.status()
    counters = client.counters()
    assert counters["requests"] == client.stats.requests >= 2  # identify, session, status
    assert counters["frames_ok"] == client.link_stats.frames_ok > 0
    assert set(client.link_stats.as_dict()) | {"requests", "retries", "timeouts", "rejected", "reopened"} == set(
        counters
    )


def test_a_pty_above_descriptor_1024_still_polls(tmp_path):
    """select.select refuses descriptors above 1024; a fleet's ports pass that, so the client polls."""
    from device_mock.clock import ManualClock
    from device_mock.device import Device
    from device_mock.server import PtyTransport, Served, Server
    from device_mock.stimulator import ScsConfig, Stimulator
    from protocols.transport import raise_fd_limit

    raise_fd_limit(1300)
    t0 = 1_767_225_600_000
    transport = PtyTransport()
    server = Server([Served("scs", Device(Stimulator(ScsConfig(), t0, 1), ManualClock(t0), KEY), transport)])
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    filler = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # push the client's port above 1024
    try:
        client = DeviceClient.connect(transport.path, write_pairing_key(tmp_path / "k.key", KEY), timeout=0.5)
        try:
            assert client.port.fileno() > 1024
            client.identify()
            client.open_session()
            assert isinstance(client.status(), ScsStatus)
        finally:
            client.close()
    finally:
        for fd in filler:
            os.close(fd)
        server.stop()
        thread.join(timeout=5)
