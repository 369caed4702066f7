"""The device endpoint, sans-IO: bytes in, bytes out, driven by hand-built frames (no threads).

SPEC.md 3.5-3.6 (handshake, session state machine), 4 (exactly once, error replies) and R8 (only
the mutating requests a device implements can change its state, whatever arrives).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from cobs import cobs

from protocols.auth import AuthPolicy, Session, host_session_from_challenge, session_open
from protocols.codec import REGISTRY, SCHEMA_FINGERPRINT, decode_payload, encode_payload
from protocols.endpoint import DeviceEndpoint
from protocols.errors import DeviceRejected, ErrorCode
from protocols.fields import Blob, Bool, Enum, FixedBytes, Int, ListOf, Record, Text, WireType, layout_of
from protocols.framing import HEADER_SIZE, MAX_PAYLOAD, PROTOCOL_VERSION, Frame, FrameDecoder, FrameFlags, encode_frame
from protocols.messages import (
    Actor,
    AlarmState,
    Bolus,
    BolusKind,
    BolusReply,
    ClockSet,
    CommandAck,
    ErrorReply,
    EventCode,
    EventPush,
    EventRecord,
    IdentifyReply,
    IdentifyRequest,
    Message,
    MsgType,
    Priority,
    ScsStatus,
    SessionChallenge,
    SessionClose,
    SessionConfirm,
    SessionOpen,
    StatusRequest,
    TherapySet,
)
from tests.fakes import IDENTITY, FakeDevice, scs_status

KEY = bytes(range(32))
T0 = 1000.0


@dataclass
class Host:
    """A host written from the spec, talking to an endpoint by calling ``receive`` directly."""

    endpoint: DeviceEndpoint
    now: float = T0
    session: Session | None = None
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    next_id: int = 0x1000

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def exchange(self, data: bytes) -> list[Frame]:
        """Send raw bytes; return the frames the endpoint answered with."""
        return self.decoder.feed(self.endpoint.receive(data, self.now))

    def send_plain(self, message: Message, command_id: int | None = None) -> list[Frame]:
        cid = self.new_id() if command_id is None else command_id
        return self.exchange(encode_frame(Frame(message.TYPE, FrameFlags(0), 0, 0, cid, encode_payload(message))))

    def sealed(self, msg_type: int, payload: bytes, command_id: int | None = None) -> Frame:
        assert self.session is not None
        cid = self.new_id() if command_id is None else command_id
        return self.session.seal(msg_type, cid, payload)

    def send(self, message: Message, command_id: int | None = None) -> list[Frame]:
        return self.exchange(encode_frame(self.sealed(message.TYPE, encode_payload(message), command_id)))

    def reply(self, frames: list[Frame]) -> Message:
        """The single reply among ``frames``, verified against the session when tagged."""
        assert len(frames) == 1, frames
        frame = frames[0]
        assert frame.flags & FrameFlags.FROM_DEVICE
        if frame.authenticated:
            assert self.session is not None
            self.session.verify(frame, self.now)
        return decode_payload(frame.msg_type, frame.payload)

    def handshake(self) -> CommandAck:
        host_nonce = random.Random(self.next_id).randbytes(16)
        frames = self.send_plain(session_open(KEY, host_nonce))
        assert len(frames) == 1 and frames[0].authenticated
        challenge = decode_payload(frames[0].msg_type, frames[0].payload)
        assert isinstance(challenge, SessionChallenge)
        self.session = host_session_from_challenge(KEY, host_nonce, challenge.device_nonce, frames[0], self.now)
        ack = self.reply(self.send(SessionConfirm()))
        assert isinstance(ack, CommandAck)
        return ack


class EventSink:
    """Records the session events an endpoint reports; returns made-up event sequence numbers."""

    def __init__(self) -> None:
        self.events: list[tuple[EventCode, int]] = []
        self.actors: list[Actor] = []

    def __call__(self, code: EventCode, arg: int, actor: Actor) -> int:
        self.events.append((code, arg))
        self.actors.append(actor)
        return len(self.events)

    def codes(self) -> list[EventCode]:
        return [code for code, _ in self.events]


def make_endpoint(handler=None, policy: AuthPolicy | None = None, **kwargs) -> tuple[DeviceEndpoint, EventSink]:
    sink = EventSink()
    endpoint = DeviceEndpoint(
        IDENTITY,
        handler if handler is not None else FakeDevice(),
        KEY,
        policy=policy,
        rng=random.Random(42).randbytes,
        on_session_event=sink,
        **kwargs,
    )
    return endpoint, sink


@pytest.fixture
def device() -> FakeDevice:
    return FakeDevice()


@pytest.fixture
def ep(device) -> tuple[DeviceEndpoint, EventSink]:
    return make_endpoint(device)


@pytest.fixture
def host(ep) -> Host:
    """A host with a confirmed session on ``ep``."""
    h = Host(ep[0])
    h.handshake()
    return h


def error_of(frames: list[Frame]) -> tuple[ErrorReply, Frame]:
    assert len(frames) == 1, frames
    reply = decode_payload(frames[0].msg_type, frames[0].payload)
    assert isinstance(reply, ErrorReply), reply
    return reply, frames[0]


# --- without a session ---------------------------------------------------------------------------


def test_identify_without_session_carries_schema_fingerprint(ep):
    """IdentifyRequest is answered untagged, with this codec's protocol version, fingerprint and limits."""
    endpoint, _ = ep
    frames = Host(endpoint).send_plain(IdentifyRequest(), command_id=0x77)
    assert len(frames) == 1
    frame = frames[0]
    assert not frame.authenticated and frame.flags == FrameFlags.FROM_DEVICE
    assert frame.command_id == 0x77 and frame.session_id == 0 and frame.counter == 0
    reply = decode_payload(frame.msg_type, frame.payload)
    assert isinstance(reply, IdentifyReply)
    assert reply.schema_fingerprint == SCHEMA_FINGERPRINT
    assert reply.protocol_version == PROTOCOL_VERSION
    assert reply.max_payload == MAX_PAYLOAD
    assert (reply.kind, reply.model, reply.serial) == (IDENTITY.kind, IDENTITY.model, IDENTITY.serial)


def test_unsigned_status_request_gets_no_session_and_handler_is_not_called():
    calls = []
    endpoint, _ = make_endpoint(lambda m, role: calls.append(m) or scs_status())
    host = Host(endpoint)
    for message in (StatusRequest(), Bolus(BolusKind.CLINICIAN, 10, 1), SessionConfirm(), SessionClose()):
        reply, frame = error_of(host.send_plain(message, command_id=5))
        assert reply.code == ErrorCode.NO_SESSION
        assert not frame.authenticated and frame.command_id == 5
    assert calls == []


def test_frames_claiming_to_come_from_the_device_are_dropped(ep):
    """A frame with FROM_DEVICE or PUSH set, or a reply type, is not a request: no answer, counted malformed."""
    endpoint, _ = ep
    host = Host(endpoint)
    for flags, msg_type in ((FrameFlags.FROM_DEVICE, 0x01), (FrameFlags.PUSH, 0x01), (FrameFlags(0), 0x81)):
        assert host.exchange(encode_frame(Frame(msg_type, flags, 0, 0, 1, b""))) == []
    assert endpoint.stats.malformed == 3


# --- handshake -----------------------------------------------------------------------------------


def test_full_handshake_by_hand(ep):
    """SessionOpen -> tagged SessionChallenge (counter 1) -> SessionConfirm -> tagged CommandAck (counter 2)."""
    endpoint, sink = ep
    host = Host(endpoint)
    host_nonce = bytes(range(16))
    frames = host.send_plain(session_open(KEY, host_nonce), command_id=9)
    assert len(frames) == 1
    challenge_frame = frames[0]
    assert challenge_frame.authenticated and challenge_frame.counter == 1 and challenge_frame.command_id == 9
    assert challenge_frame.session_id != 0
    challenge = decode_payload(challenge_frame.msg_type, challenge_frame.payload)
    assert isinstance(challenge, SessionChallenge)
    assert (challenge.idle_timeout_s, challenge.absolute_timeout_s) == (300, 3600)
    assert endpoint.sessions.pending is not None and endpoint.sessions.active is None
    host.session = host_session_from_challenge(KEY, host_nonce, challenge.device_nonce, challenge_frame, T0)
    frames = host.send(SessionConfirm(), command_id=10)
    assert frames[0].counter == 2 and frames[0].command_id == 10
    ack = host.reply(frames)
    assert isinstance(ack, CommandAck) and ack.event_seq == 1
    assert sink.events == [(EventCode.SESSION_OPENED, challenge_frame.session_id)]
    assert endpoint.sessions.active is not None and endpoint.sessions.active.confirmed
    status = host.reply(host.send(StatusRequest()))
    assert status == scs_status(True, 0)


def test_resent_session_open_gets_the_same_challenge(ep):
    """SPEC 3.5 retries: the same host nonce again -> same session id and device nonce, next counter."""
    endpoint, _ = ep
    host = Host(endpoint)
    first = host.send_plain(session_open(KEY, b"n" * 16), command_id=3)[0]
    second = host.send_plain(session_open(KEY, b"n" * 16), command_id=3)[0]
    assert second.session_id == first.session_id
    assert (first.counter, second.counter) == (1, 2)
    assert decode_payload(second.msg_type, second.payload) == decode_payload(first.msg_type, first.payload)
    # Whichever challenge the host uses, it is the right one.
    challenge = decode_payload(second.msg_type, second.payload)
    host.session = host_session_from_challenge(KEY, b"n" * 16, challenge.device_nonce, second, T0)
    assert isinstance(host.reply(host.send(SessionConfirm())), CommandAck)


def test_resent_confirm_on_an_active_session_gets_ack_0_and_changes_nothing(host, ep):
    """SPEC 3.5: a re-sent SessionConfirm (its ack was lost) gets CommandAck(0), no second SESSION_OPENED."""
    endpoint, sink = ep
    active = endpoint.sessions.active
    assert host.reply(host.send(SessionConfirm())) == CommandAck(0)
    assert endpoint.sessions.active is active
    assert sink.codes().count(EventCode.SESSION_OPENED) == 1


def test_identify_inside_a_session_is_answered_tagged(host):
    """SPEC 3.5: IdentifyRequest may be sent tagged inside a session; the reply is tagged too."""
    frames = host.send(IdentifyRequest())
    assert frames[0].authenticated
    reply = host.reply(frames)
    assert isinstance(reply, IdentifyReply) and reply.schema_fingerprint == SCHEMA_FINGERPRINT


def test_pending_session_accepts_only_confirm(ep, device):
    """SPEC 3.6: PENDING + any other request -> ErrorReply(NO_SESSION), not applied."""
    endpoint, _ = ep
    host = Host(endpoint)
    host_nonce = bytes(16)
    frames = host.send_plain(session_open(KEY, host_nonce))
    challenge = decode_payload(frames[0].msg_type, frames[0].payload)
    host.session = host_session_from_challenge(KEY, host_nonce, challenge.device_nonce, frames[0], T0)
    for message in (TherapySet(False), SessionClose()):
        frames = host.send(message)
        assert len(frames) == 1
        reply = decode_payload(frames[0].msg_type, frames[0].payload)
        assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.NO_SESSION
    assert device.applied == []
    assert isinstance(host.reply(host.send(SessionConfirm())), CommandAck)


def test_stranger_session_open_does_not_end_the_active_session(host):
    """A SessionOpen from someone else replaces only the pending slot; the working session goes on."""
    stranger = Host(host.endpoint)
    stranger.send_plain(session_open(KEY, b"s" * 16))
    assert isinstance(host.reply(host.send(StatusRequest())), ScsStatus)


def test_session_close_ends_the_session(host, ep):
    endpoint, sink = ep
    ack = host.reply(host.send(SessionClose()))
    assert isinstance(ack, CommandAck)
    assert endpoint.sessions.active is None
    assert sink.codes()[-1] == EventCode.SESSION_CLOSED
    reply, _ = error_of(host.send(StatusRequest()))
    assert reply.code == ErrorCode.NO_SESSION


# --- refusals inside a session -------------------------------------------------------------------


def test_unknown_message_type_in_a_session_is_unsupported(host):
    for msg_type in (0x05, 0x1F, 0x7F):
        frame = host.sealed(msg_type, b"\x01\x02", command_id=0x55)
        frames = host.exchange(encode_frame(frame))
        reply = host.reply(frames)
        assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.UNSUPPORTED
        assert frames[0].command_id == 0x55 and frames[0].authenticated  # tagged inside a session


def test_malformed_payload_in_a_session_is_malformed(host, device):
    for msg_type, payload in ((TherapySet.TYPE, b"\x02"), (Bolus.TYPE, b"\x01\x00"), (StatusRequest.TYPE, b"\x00")):
        reply = host.reply(host.exchange(encode_frame(host.sealed(msg_type, payload))))
        assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.MALFORMED
    assert device.applied == []


def test_bad_tag_gets_bad_mac_and_an_auth_failure_event(host, ep, device):
    endpoint, sink = ep
    frame = host.sealed(TherapySet.TYPE, encode_payload(TherapySet(False)), command_id=0x66)
    forged = Frame(
        frame.msg_type, frame.flags, frame.session_id, frame.counter, frame.command_id, frame.payload, bytes(16)
    )
    reply, reply_frame = error_of(host.exchange(encode_frame(forged)))
    assert reply.code == ErrorCode.BAD_MAC
    assert not reply_frame.authenticated and reply_frame.command_id == 0x66
    assert sink.events[-1] == (EventCode.AUTH_FAILURE, frame.session_id)
    assert endpoint.stats.mac_errors == 1
    assert device.applied == []
    # R5 at the endpoint: the forged frame did not move the counter, the real one is accepted.
    assert isinstance(host.reply(host.exchange(encode_frame(frame))), CommandAck)
    assert device.applied == ["therapy False"]


def test_replayed_frame_gets_replay_and_is_not_applied_again(host, ep, device):
    endpoint, _ = ep
    wire = encode_frame(host.sealed(Bolus.TYPE, encode_payload(Bolus(BolusKind.CLINICIAN, 100, 5))))
    assert isinstance(host.reply(host.exchange(wire)), BolusReply)
    reply, frame = error_of(host.exchange(wire))
    assert reply.code == ErrorCode.REPLAY
    assert not frame.authenticated
    assert device.boluses == 1
    assert endpoint.stats.replays == 1


def test_duplicate_command_id_with_identical_request_gets_the_stored_reply(host, device):
    """A repeated bolus (same command id, same request, new counter) is one bolus, same reply."""
    bolus = Bolus(BolusKind.CLINICIAN, 250, 10)
    first = host.reply(host.send(bolus, command_id=0xB0))
    second = host.reply(host.send(bolus, command_id=0xB0))
    assert first == second == BolusReply(1, 250, 0)
    assert device.boluses == 1
    assert device.applied == ["bolus 250"]


def test_same_command_id_with_a_different_request_is_applied_as_new(host, device):
    first = host.reply(host.send(Bolus(BolusKind.CLINICIAN, 250, 10), command_id=0xB0))
    second = host.reply(host.send(Bolus(BolusKind.CLINICIAN, 300, 10), command_id=0xB0))
    third = host.reply(host.send(TherapySet(False), command_id=0xB0))
    assert first != second
    assert isinstance(third, CommandAck)
    assert device.applied == ["bolus 250", "bolus 300", "therapy False"]


def test_refusal_is_cached_too_and_nothing_is_applied(host, device):
    """A refused mutating request repeated under its command id gets the same refusal, unapplied."""
    for _ in range(2):
        reply = host.reply(host.send(Bolus(BolusKind.CLINICIAN, 5000, 10), command_id=0xC0))
        assert isinstance(reply, ErrorReply)
        assert (reply.code, reply.field, reply.value, reply.limit) == (ErrorCode.OUT_OF_RANGE, "volume_ul", 5000, 1000)
    assert device.boluses == 0


def test_exactly_once_cache_remembers_the_last_16_command_ids(host, device):
    """SPEC 4: the last 16 command ids are remembered; an older one is applied again."""
    bolus = Bolus(BolusKind.CLINICIAN, 1, 1)
    for cid in range(1, 18):
        host.reply(host.send(bolus, command_id=cid))
    assert device.boluses == 17
    host.reply(host.send(bolus, command_id=17))  # newest: cached
    host.reply(host.send(bolus, command_id=2))  # 16th newest: cached
    assert device.boluses == 17
    host.reply(host.send(bolus, command_id=1))  # evicted: applied again
    assert device.boluses == 18


def test_non_mutating_requests_are_not_cached(host):
    """A status request repeated under one command id is answered fresh each time."""
    calls = []
    endpoint = host.endpoint
    endpoint.handler = lambda m, role: calls.append(m) or scs_status(seq=len(calls))
    a = host.reply(host.send(StatusRequest(), command_id=0xD0))
    b = host.reply(host.send(StatusRequest(), command_id=0xD0))
    assert (a.last_event_seq, b.last_event_seq) == (1, 2)


def test_handler_exception_becomes_device_fault_and_endpoint_keeps_working(host, device, caplog):
    def broken(message, role):
        if isinstance(message, TherapySet):
            raise ZeroDivisionError("model bug")
        return device(message)

    host.endpoint.handler = broken
    reply = host.reply(host.send(TherapySet(True)))
    assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.DEVICE_FAULT
    assert "model bug" in reply.message
    assert "handler failed" in caplog.text
    assert isinstance(host.reply(host.send(StatusRequest())), ScsStatus)
    assert isinstance(host.reply(host.send(Bolus(BolusKind.CLINICIAN, 1, 1))), BolusReply)


def test_handler_answering_with_the_wrong_reply_type_is_a_device_fault(host):
    host.endpoint.handler = lambda m, role: CommandAck(1)
    reply = host.reply(host.send(StatusRequest()))
    assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.DEVICE_FAULT


def test_handler_reply_that_cannot_be_encoded_is_a_device_fault(host):
    """An unencodable reply is the device failing internally (DEVICE_FAULT), not the host's MALFORMED request."""
    host.endpoint.handler = lambda m, role: CommandAck(-1)
    reply = host.reply(host.send(TherapySet(True)))
    assert isinstance(reply, ErrorReply)
    assert reply.code == ErrorCode.DEVICE_FAULT
    host.endpoint.handler = FakeDevice()
    assert isinstance(host.reply(host.send(StatusRequest())), ScsStatus)


def test_device_rejected_becomes_a_typed_error_reply(host):
    reply = host.reply(host.send(Bolus(BolusKind.CLINICIAN, 1001, 1)))
    assert isinstance(reply, ErrorReply)
    assert (reply.code, reply.field, reply.value, reply.limit) == (ErrorCode.OUT_OF_RANGE, "volume_ul", 1001, 1000)
    assert reply.message == "bolus above 1000 µL"


def test_long_rejection_texts_are_clipped_to_their_fields(host):
    def refuse(message, role):
        raise DeviceRejected(ErrorCode.STATE_CONFLICT, "é" * 200, "f" * 50, -(2**63), 2**63 - 1, 2**32 - 1)

    host.endpoint.handler = refuse
    reply = host.reply(host.send(TherapySet(True)))
    assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.STATE_CONFLICT
    assert reply.message == "é" * 80 and reply.field == "f" * 32
    assert (reply.value, reply.limit, reply.retry_after_ms) == (-(2**63), 2**63 - 1, 2**32 - 1)


# --- link-level errors and expiry ----------------------------------------------------------------


def test_crc_corrupted_frame_gets_plain_crc_error_with_command_id_0(host, device):
    good = encode_frame(host.sealed(TherapySet.TYPE, encode_payload(TherapySet(False)), 0x99))
    raw = bytearray(cobs.decode(good[1:-1]))
    raw[HEADER_SIZE] ^= 0x01  # the payload byte: therapy off becomes therapy on
    reply, frame = error_of(host.exchange(b"\x00" + cobs.encode(bytes(raw)) + b"\x00"))
    assert reply.code == ErrorCode.CRC
    assert frame.command_id == 0 and not frame.authenticated and frame.session_id == 0
    assert host.endpoint.stats.crc_errors == 1
    assert device.applied == []


def test_unknown_version_gets_plain_unsupported_with_command_id_0(ep):
    endpoint, _ = ep
    frame = Frame(0x01, FrameFlags(0), 0, 0, 0x42, b"", version=2)
    reply, reply_frame = error_of(Host(endpoint).exchange(encode_frame(frame)))
    assert reply.code == ErrorCode.UNSUPPORTED
    assert reply_frame.command_id == 0 and not reply_frame.authenticated
    assert endpoint.stats.bad_version == 1


def test_expired_session_gets_no_session(host, ep, device):
    _endpoint, sink = ep
    host.now += 301.0
    reply, frame = error_of(host.send(TherapySet(False)))
    assert reply.code == ErrorCode.NO_SESSION
    assert not frame.authenticated
    assert (EventCode.SESSION_EXPIRED, host.session.session_id) in sink.events
    assert device.applied == []
    host.handshake()
    assert isinstance(host.reply(host.send(TherapySet(False))), CommandAck)


def test_tick_expires_sessions_and_reports_them(host, ep):
    endpoint, sink = ep
    endpoint.tick(T0 + 300.0)
    assert endpoint.sessions.active is not None
    endpoint.tick(T0 + 300.5)
    assert endpoint.sessions.active is None
    assert sink.events[-1] == (EventCode.SESSION_EXPIRED, host.session.session_id)


def test_repeated_bad_tags_lock_out_session_opening_except_for_a_key_holder(host, ep):
    """5 BAD_MAC frames -> LOCKOUT event; an open without a valid proof then gets LOCKED_OUT with
    retry_after_ms, and one with a valid proof is served (SPEC 3.6)."""
    endpoint, sink = ep
    for _ in range(5):
        good = host.sealed(StatusRequest.TYPE, b"")
        forged = Frame(good.msg_type, good.flags, good.session_id, good.counter, good.command_id, b"", b"\x01" * 16)
        reply, _ = error_of(host.exchange(encode_frame(forged)))
        assert reply.code == ErrorCode.BAD_MAC
    assert sink.codes().count(EventCode.AUTH_FAILURE) == 5
    assert sink.codes()[-1] == EventCode.LOCKOUT
    stranger = Host(endpoint, now=host.now + 0.25)
    reply, frame = error_of(stranger.send_plain(SessionOpen(b"x" * 16, bytes(16))))
    assert reply.code == ErrorCode.LOCKED_OUT
    assert reply.retry_after_ms == 750
    assert not frame.authenticated
    frames = stranger.send_plain(session_open(KEY, b"y" * 16))
    assert [f.msg_type for f in frames] == [MsgType.SESSION_CHALLENGE]
    # The lockout is for opening only: the working session still answers.
    assert isinstance(host.reply(host.send(StatusRequest())), ScsStatus)


# --- pushes --------------------------------------------------------------------------------------


EVENT = EventRecord(
    5, 1_767_225_600_000, EventCode.LOW_RESERVOIR, Priority.MEDIUM, AlarmState.ACTIVE, 2000, 0, Actor.DEVICE
)


def test_push_without_a_session_is_empty(ep):
    endpoint, _ = ep
    assert endpoint.push(EventPush(EVENT), T0) == b""


def test_push_in_a_session_is_a_verifiable_push_frame(host):
    data = host.endpoint.push(EventPush(EVENT), host.now)
    frames = FrameDecoder().feed(data)
    assert len(frames) == 1
    frame = frames[0]
    assert frame.flags == FrameFlags.AUTH | FrameFlags.FROM_DEVICE | FrameFlags.PUSH
    assert frame.command_id == 0 and frame.msg_type == MsgType.EVENT_PUSH
    host.session.verify(frame, host.now)
    assert decode_payload(frame.msg_type, frame.payload) == EventPush(EVENT)


def test_push_after_expiry_is_empty(host):
    assert host.endpoint.push(EventPush(EVENT), host.now + 301.0) == b""


# --- R8: nothing but the implemented mutating requests changes the device -------------------------


def _random_value(wire: WireType, rng: random.Random):
    if isinstance(wire, Bool):
        return rng.random() < 0.5
    if isinstance(wire, Enum):
        return rng.choice(list(wire.enum_cls))
    if isinstance(wire, Int):
        return rng.choice(
            [wire.low, wire.high, 0, 1, rng.randint(wire.low, wire.high), min(rng.randint(0, 2000), wire.high)]
        )
    if isinstance(wire, FixedBytes):
        return rng.randbytes(wire.size)
    if isinstance(wire, Text):
        return "t" * rng.randint(0, wire.max_bytes)
    if isinstance(wire, Blob):
        return rng.randbytes(rng.randint(0, wire.max_bytes))
    if isinstance(wire, ListOf):
        count = rng.randint(0, wire.max_count)
        if isinstance(wire.item, type):
            return tuple(_random_message(wire.item, rng) for _ in range(count))
        return tuple(_random_value(wire.item, rng) for _ in range(count))
    if isinstance(wire, Record):
        return _random_message(wire.cls, rng)
    raise TypeError(wire)


def _random_message(cls: type, rng: random.Random):
    return cls(**{f.name: _random_value(f.wire, rng) for f in layout_of(cls).fields})


def test_r8_only_allowlisted_mutating_types_change_device_state():
    """R8: every type byte 0-255 with random and valid payloads, in an open session: the fake device's
    state changes only through the mutating types it implements (THERAPY_SET, BOLUS)."""
    rng = random.Random(8)
    device = FakeDevice()
    # Thousands of frames at one instant, many outside the session: no wake-up budget here (R10 has its tests).
    endpoint, _ = make_endpoint(device, AuthPolicy(flood_frames_per_s=1_000_000))
    host = Host(endpoint)
    host.handshake()
    allowlist = {MsgType.THERAPY_SET, MsgType.BOLUS}
    changed_by: set[int] = set()
    frames_sent = 0
    for msg_type in range(256):
        payloads = [b"", rng.randbytes(1), rng.randbytes(rng.randint(2, 40)), rng.randbytes(rng.randint(40, 255))]
        if msg_type in REGISTRY:
            payloads += [encode_payload(_random_message(REGISTRY[msg_type], rng)) for _ in range(6)]
        if msg_type == MsgType.THERAPY_SET:
            payloads.append(encode_payload(TherapySet(not device.therapy_on)))
        for payload in payloads:
            if endpoint.sessions.active is None or endpoint.sessions.active.session_id != host.session.session_id:
                host.handshake()  # a SessionClose or a replaced session: open a new one
            before = (device.therapy_on, device.boluses, list(device.applied))
            for flags in (FrameFlags.AUTH, FrameFlags.AUTH | FrameFlags.FROM_DEVICE):
                frame = host.sealed(msg_type, payload)
                if flags != frame.flags:  # a reply-direction frame from the host: must never act
                    frame = Frame(
                        frame.msg_type,
                        flags,
                        frame.session_id,
                        frame.counter,
                        frame.command_id,
                        frame.payload,
                        frame.tag,
                    )
                endpoint.receive(encode_frame(frame), host.now)
                frames_sent += 1
            after = (device.therapy_on, device.boluses, list(device.applied))
            if after != before:
                changed_by.add(msg_type)
    assert frames_sent > 2 * 256 * 4
    assert changed_by <= allowlist, sorted(hex(t) for t in changed_by - allowlist)
    assert changed_by == allowlist  # the check itself can see a change
    # Unsigned frames of every type never change anything either.
    before = (device.therapy_on, device.boluses, list(device.applied))
    for msg_type in range(256):
        payload = encode_payload(TherapySet(False)) if msg_type == MsgType.THERAPY_SET else b"\x01" * 7
        endpoint.receive(encode_frame(Frame(msg_type, FrameFlags(0), 0, 0, 1, payload)), host.now)
    assert (device.therapy_on, device.boluses, list(device.applied)) == before


def test_clock_set_unsupported_by_the_fake_leaves_it_unchanged(host, device):
    """A mutating request the device does not implement is refused (UNSUPPORTED) and changes nothing."""
    reply = host.reply(host.send(ClockSet(5)))
    assert isinstance(reply, ErrorReply) and reply.code == ErrorCode.UNSUPPORTED
    assert device.applied == []


# --- R10: the wake-up budget ---------------------------------------------------------------------


class Floods:
    """Records what an endpoint reports of wake-ups and flood episodes."""

    def __init__(self) -> None:
        self.wakes = 0
        self.episodes: list[tuple[bool, int, int]] = []

    def wake(self, count: int) -> None:
        self.wakes += count

    def flood(self, flooding: bool, frames: int, seconds: int) -> None:
        self.episodes.append((flooding, frames, seconds))


@pytest.fixture
def budgeted(device) -> tuple[DeviceEndpoint, EventSink, Floods]:
    floods = Floods()
    endpoint, sink = make_endpoint(device, on_wake=floods.wake, on_flood=floods.flood)
    return endpoint, sink, floods


def plain_identifies(count: int, first_id: int = 0x7000) -> bytes:
    """``count`` unauthenticated identify requests, back to back: what a wake-up flood looks like."""
    return b"".join(
        encode_frame(Frame(IdentifyRequest.TYPE, FrameFlags(0), 0, 0, first_id + i, b"")) for i in range(count)
    )


def test_budget_admits_50_frames_a_second_and_drops_the_rest_unanswered(budgeted):
    endpoint, _, floods = budgeted
    host = Host(endpoint)
    replies = host.exchange(plain_identifies(80))
    assert [f.command_id for f in replies] == [0x7000 + i for i in range(50)]  # the first 50, nothing after
    assert endpoint.stats.rate_limited == 30
    assert floods.wakes == 50
    host.now += 0.999  # same window
    assert host.exchange(plain_identifies(5)) == []
    assert endpoint.stats.rate_limited == 35 and floods.wakes == 50


def test_budget_window_resets_each_second(budgeted):
    endpoint, _, floods = budgeted
    host = Host(endpoint)
    assert len(host.exchange(plain_identifies(60))) == 50
    host.now += 1.0
    assert len(host.exchange(plain_identifies(60, 0x8000))) == 50
    assert endpoint.stats.rate_limited == 20 and floods.wakes == 100


def test_crc_errors_and_garbage_beyond_the_budget_get_no_hint(budgeted):
    endpoint, _, floods = budgeted
    host = Host(endpoint)
    assert len(host.exchange(plain_identifies(50))) == 50
    raw = bytearray(cobs.decode(plain_identifies(1)[1:-1]))
    raw[HEADER_SIZE - 3] ^= 0x01  # a command_id bit: the CRC no longer matches
    bad_crc = b"\x00" + cobs.encode(bytes(raw)) + b"\x00"
    garbage = b"\x00\x05\x99\x98\x97\x96\x00"
    assert host.exchange(bad_crc + garbage) == []
    assert endpoint.stats.rate_limited == 2
    assert endpoint.stats.crc_errors == 1  # the decoder still counts what it saw
    assert floods.wakes == 50


def test_the_paired_host_is_served_without_limit_during_a_flood(budgeted, device):
    """Verified frames of the active session neither ask the budget nor cost a wake-up."""
    endpoint, _, floods = budgeted
    host = Host(endpoint)
    host.handshake()  # SessionOpen and SessionConfirm are outside the active session: 2 wake-ups
    assert floods.wakes == 2
    for _ in range(200):  # polls far beyond 50 per second, in the same instant
        assert isinstance(host.reply(host.send(StatusRequest())), ScsStatus)
    assert endpoint.stats.rate_limited == 0 and floods.wakes == 2
    # A flood with the host's stop in the middle of it, in one read.
    stop = encode_frame(host.sealed(TherapySet.TYPE, encode_payload(TherapySet(False)), command_id=0x57))
    frames = host.exchange(plain_identifies(300) + stop + plain_identifies(300, 0x9000))
    ours = [f for f in frames if f.authenticated]
    assert len(ours) == 1 and ours[0].command_id == 0x57
    assert isinstance(host.reply(ours), CommandAck)
    assert device.applied == ["therapy False"]
    assert len(frames) == 1 + 48  # the budget left after the handshake answered the first flood frames
    assert endpoint.stats.rate_limited == 600 - 48


def test_a_frame_claiming_the_session_that_fails_verification_counts_against_the_budget(budgeted, device):
    endpoint, sink, floods = budgeted
    host = Host(endpoint)
    host.handshake()
    host.now += 1.0  # a fresh window
    good = host.sealed(TherapySet.TYPE, encode_payload(TherapySet(False)), command_id=0x66)
    forged = encode_frame(
        Frame(good.msg_type, good.flags, good.session_id, good.counter, good.command_id, good.payload, bytes(16))
    )
    reply, _ = error_of(host.exchange(forged))  # within the budget: refused as before, and paid for
    assert reply.code == ErrorCode.BAD_MAC
    assert floods.wakes == 3 and sink.codes().count(EventCode.AUTH_FAILURE) == 1
    assert len(host.exchange(plain_identifies(60))) == 49  # the forgery took one of the 50
    assert host.exchange(forged) == []  # beyond it: verified (and counted), then dropped unanswered
    assert endpoint.stats.mac_errors == 2 and endpoint.stats.rate_limited == 12
    assert sink.codes().count(EventCode.AUTH_FAILURE) == 1  # a dropped frame leaves no audit entry
    assert device.applied == []
    assert isinstance(host.reply(host.exchange(encode_frame(good))), CommandAck)  # the real one still passes


def test_a_replayed_session_frame_counts_against_the_budget(budgeted, device):
    endpoint, _, _ = budgeted
    host = Host(endpoint)
    host.handshake()
    wire = encode_frame(host.sealed(Bolus.TYPE, encode_payload(Bolus(BolusKind.CLINICIAN, 100, 5))))
    assert isinstance(host.reply(host.exchange(wire)), BolusReply)
    host.now += 1.0
    assert len(host.exchange(plain_identifies(50))) == 50
    assert host.exchange(wire) == []
    assert endpoint.stats.replays == 1 and endpoint.stats.rate_limited == 1
    assert device.boluses == 1


def test_a_flood_episode_is_reported_once_and_ends_after_a_quiet_window(budgeted):
    endpoint, _, floods = budgeted
    host = Host(endpoint)
    for second in range(3):  # 3 s at 100 frames/s: 50 dropped in each window
        host.now = T0 + second
        for _ in range(10):
            host.exchange(plain_identifies(10))
            host.now += 0.09
    assert floods.episodes == [(True, 50, 0)]
    endpoint.tick(T0 + 3.5)  # the window after the last drop is not over yet
    assert floods.episodes == [(True, 50, 0)]
    endpoint.tick(T0 + 4.0)  # a whole window (3 s to 4 s) without a drop
    assert floods.episodes == [(True, 50, 0), (False, 150, 3)]
    endpoint.tick(T0 + 9.0)
    assert len(floods.episodes) == 2
    host.now = T0 + 10.0
    host.exchange(plain_identifies(51))  # a new episode
    assert floods.episodes[-1] == (True, 50, 0)


def test_traffic_within_the_budget_is_no_flood(budgeted):
    endpoint, _, floods = budgeted
    host = Host(endpoint)
    for step in range(300):  # 30 s at 49 frames per second
        host.now = T0 + step * 0.1
        if step % 10 == 0:
            assert len(host.exchange(plain_identifies(49))) == 49
    endpoint.tick(host.now + 5)
    assert floods.episodes == [] and endpoint.stats.rate_limited == 0 and floods.wakes == 300 // 10 * 49


def test_the_budget_follows_the_policy():
    floods = Floods()
    endpoint, _ = make_endpoint(policy=AuthPolicy(flood_frames_per_s=3), on_wake=floods.wake, on_flood=floods.flood)
    assert len(Host(endpoint).exchange(plain_identifies(10))) == 3
    assert floods.episodes == [(True, 3, 0)]


def test_a_budget_of_no_frames_is_refused():
    """A budget below one frame a second would lock every host out of opening a session."""
    with pytest.raises(ValueError, match="at least 1 frame"):
        make_endpoint(policy=AuthPolicy(flood_frames_per_s=0))
