"""Session handling under attack (issue 8, item 7): forged opens and confirms cannot keep a key
holder out, a recorded open cannot be replayed, and a failed re-open keeps the client's session."""

from __future__ import annotations

import random

import pytest

from protocols.auth import session_open
from protocols.client import DeviceClient
from protocols.codec import encode_payload
from protocols.endpoint import DeviceEndpoint
from protocols.errors import ErrorCode, LinkTimeout
from protocols.framing import Frame, FrameFlags, encode_frame
from protocols.messages import EventCode, MsgType, ScsStatus, SessionOpen, StatusRequest
from protocols.transport import LoopbackPair
from tests.fakes import IDENTITY, EndpointThread, FakeDevice
from tests.test_endpoint import KEY, Host, error_of, make_endpoint


def _forged_status(victim: Host, attacker: random.Random) -> bytes:
    """A frame that claims the victim's session (its id is on the line) with a guessed tag."""
    good = victim.sealed(StatusRequest.TYPE, b"")
    command_id = 0x7A00 + attacker.randrange(255)
    return encode_frame(
        Frame(good.msg_type, good.flags, good.session_id, good.counter, command_id, b"", attacker.randbytes(16))
    )


def test_a_flood_of_forged_frames_never_keeps_the_key_holder_out():
    """10 forged opens and confirms a second for 20 s; the host re-opens its session every second."""
    endpoint, sink = make_endpoint()
    legit = Host(endpoint, now=0.0)
    legit.handshake()
    attacker, stranger = random.Random(1), Host(endpoint)
    refused = 0
    for second in range(20):
        for tenth in range(10):
            stranger.now = legit.now = second + tenth / 10
            guess = attacker.randbytes(16)
            reply, _ = error_of(stranger.send_plain(SessionOpen(guess, attacker.randbytes(16))))
            refused += reply.code in (ErrorCode.BAD_MAC, ErrorCode.LOCKED_OUT)
            error_of(legit.exchange(_forged_status(legit, attacker)))
        legit.now = second + 0.95
        assert legit.handshake() is not None  # every open of the key holder is served
        assert isinstance(legit.reply(legit.send(StatusRequest())), ScsStatus)
    assert refused == 200
    assert EventCode.LOCKOUT in sink.codes()  # the lockout engaged, and still the host got through
    assert sink.codes().count(EventCode.SESSION_OPENED) == 21


def test_a_recorded_open_sent_again_is_a_replay_and_is_not_counted():
    endpoint, sink = make_endpoint()
    host = Host(endpoint, now=0.0)
    recorded = encode_frame(
        Frame(MsgType.SESSION_OPEN, FrameFlags(0), 0, 0, 5, encode_payload(session_open(KEY, b"r" * 16)))
    )
    assert [f.msg_type for f in host.exchange(recorded)] == [MsgType.SESSION_CHALLENGE]
    host.handshake()  # the host moves on with a new nonce
    for _ in range(10):
        reply, frame = error_of(host.exchange(recorded))
        assert reply.code == ErrorCode.REPLAY and not frame.authenticated
    assert EventCode.AUTH_FAILURE not in sink.codes() and EventCode.LOCKOUT not in sink.codes()


def test_a_failed_re_open_keeps_the_clients_session():
    pair = LoopbackPair(timeout=0.02)
    endpoint = DeviceEndpoint(IDENTITY, FakeDevice(), KEY)
    server = EndpointThread(pair.device, endpoint).start()
    try:
        with DeviceClient(pair.host, KEY, timeout=0.2, retries=1) as client:
            client.open_session()
            kept = client.session
            pair.device.manipulator = lambda data: b""  # the challenge never arrives
            with pytest.raises(LinkTimeout):
                client.open_session()
            pair.device.manipulator = None
            assert client.session is kept
            assert isinstance(client.status(), ScsStatus)  # and it still works
    finally:
        pair.close()
        server.stop()
