"""Exactly-once (SPEC 4, 4.2): the reply memory, CommandQuery at the endpoint, and the client's resolve."""

from __future__ import annotations

import pytest

from protocols.client import DeviceClient
from protocols.codec import decode_payload, encode_payload, max_payload_size
from protocols.endpoint import DeviceEndpoint
from protocols.errors import CommandNotHandled, CommandUnresolved, DeviceRejected, ErrorCode, LinkTimeout
from protocols.messages import (
    MAX_STORED_REPLY,
    MESSAGES,
    Bolus,
    BolusKind,
    BolusReply,
    CommandFate,
    CommandQuery,
    ErrorReply,
    MsgType,
    TherapySet,
)
from protocols.replies import ReplyMemory, request_digest
from protocols.transport import LoopbackPair
from tests.fakes import IDENTITY, EndpointThread, FakeDevice

KEY = bytes(range(32))
BOLUS = Bolus(BolusKind.CLINICIAN, 77, 10)
REPLY = (int(MsgType.BOLUS_REPLY), encode_payload(BolusReply(3, 77, 0)))


def _query(command_id: int, message=BOLUS) -> CommandQuery:
    payload = encode_payload(message)
    return CommandQuery(command_id, int(message.TYPE), request_digest(message.TYPE, payload))


# --- the memory ----------------------------------------------------------------------------------
def test_same_request_under_the_same_id_is_answered_a_different_one_is_not():
    memory = ReplyMemory()
    payload = encode_payload(BOLUS)
    memory.remember(5, BOLUS.TYPE, payload, REPLY)
    assert memory.answer(5, BOLUS.TYPE, payload) == REPLY
    assert memory.answer(5, BOLUS.TYPE, encode_payload(Bolus(BolusKind.CLINICIAN, 78, 10))) is None
    assert memory.answer(6, BOLUS.TYPE, payload) is None


def test_query_of_a_handled_request_returns_its_reply():
    memory = ReplyMemory()
    memory.remember(5, BOLUS.TYPE, encode_payload(BOLUS), REPLY)
    outcome = memory.query(_query(5))
    assert (outcome.fate, outcome.reply_type, outcome.reply) == (CommandFate.HANDLED, *REPLY)
    assert memory.query(_query(5)) == outcome  # asking again changes nothing


def test_query_of_an_unknown_request_retires_its_id():
    memory = ReplyMemory()
    outcome = memory.query(_query(9))
    assert (outcome.fate, outcome.reply_type, outcome.reply) == (CommandFate.NOT_HANDLED, 0, b"")
    # A late copy of the request is refused from the memory, never handed to the device.
    reply_type, payload = memory.answer(9, BOLUS.TYPE, encode_payload(BOLUS))
    refusal = decode_payload(reply_type, payload)
    assert isinstance(refusal, ErrorReply) and refusal.code == ErrorCode.STATE_CONFLICT
    assert "new command id" in refusal.message
    assert memory.query(_query(9)).fate == CommandFate.NOT_HANDLED


def test_query_naming_another_request_under_a_known_id_is_not_handled():
    memory = ReplyMemory()
    memory.remember(5, BOLUS.TYPE, encode_payload(BOLUS), REPLY)
    assert memory.query(_query(5, TherapySet(False))).fate == CommandFate.NOT_HANDLED


def test_memory_keeps_the_newest_entries_and_survives_a_round_trip_through_json():
    memory = ReplyMemory(capacity=4)
    for command_id in range(10):
        memory.remember(command_id, BOLUS.TYPE, encode_payload(BOLUS), REPLY)
    memory.query(_query(99))
    assert len(memory) == 4
    restored = ReplyMemory.from_state(memory.to_state(), capacity=4)
    assert restored.to_state() == memory.to_state()
    assert restored.answer(9, BOLUS.TYPE, encode_payload(BOLUS)) == REPLY
    assert restored.answer(5, BOLUS.TYPE, encode_payload(BOLUS)) is None
    assert restored.query(_query(99)).fate == CommandFate.NOT_HANDLED


def test_version_moves_with_every_new_entry():
    memory = ReplyMemory()
    versions = [memory.version]
    memory.remember(1, BOLUS.TYPE, encode_payload(BOLUS), REPLY)
    versions.append(memory.version)
    memory.query(_query(1))  # handled: nothing new to save
    versions.append(memory.version)
    memory.query(_query(2))  # retires id 2: must be saved
    versions.append(memory.version)
    assert versions == [0, 1, 1, 2]


@pytest.mark.parametrize("state", [[[1, 2, "zz", 3, "", False]], [[1, 2]], "nonsense", [None]])
def test_a_damaged_saved_memory_is_refused(state):
    with pytest.raises(ValueError, match="reply memory"):
        ReplyMemory.from_state(state)


def test_every_mutating_reply_fits_the_stored_reply_field():
    for cls in MESSAGES:
        if cls.MUTATING:
            for reply_type in (*cls.REPLIES, MsgType.ERROR_REPLY):
                assert max_payload_size(reply_type) <= MAX_STORED_REPLY, (cls.__name__, reply_type)


# --- over a link ---------------------------------------------------------------------------------
class _Served:
    """A fake device on a loopback pair, whose replies can be swallowed."""

    def __init__(self) -> None:
        self.device = FakeDevice()
        self.pair = LoopbackPair(timeout=0.02)
        self.endpoint = DeviceEndpoint(IDENTITY, self.device, KEY)
        self.server = EndpointThread(self.pair.device, self.endpoint).start()
        self.swallow = False
        original = self.endpoint.receive

        def receive(data: bytes, now: float) -> bytes:
            out = original(data, now)
            return b"" if self.swallow else out

        self.endpoint.receive = receive  # type: ignore[method-assign]

    def close(self) -> None:
        self.pair.close()
        self.server.stop()


@pytest.fixture
def served():
    s = _Served()
    yield s
    s.close()


def test_a_bolus_whose_replies_are_lost_is_unresolved_then_resolved_as_applied(served):
    with DeviceClient(served.pair.host, KEY, timeout=0.2, retries=1) as client:
        client.open_session()
        served.swallow = True
        with pytest.raises(CommandUnresolved) as unresolved:
            client.bolus(BolusKind.CLINICIAN, 77, 10)
        assert isinstance(unresolved.value, LinkTimeout)  # old callers that catch timeouts still do
        served.swallow = False
        reply = client.resolve(unresolved.value.command_id, unresolved.value.request)
        assert isinstance(reply, BolusReply) and reply.volume_ul == 77
        assert served.device.boluses == 1
        client.resolve(unresolved.value.command_id, unresolved.value.request)
        assert served.device.boluses == 1  # resolving never applies


def test_a_request_that_never_arrived_is_resolved_as_not_handled_and_cannot_be_applied_later(served):
    with DeviceClient(served.pair.host, KEY, timeout=0.2) as client:
        client.open_session()
        command_id = 0x7777
        with pytest.raises(CommandNotHandled) as never:
            client.resolve(command_id, BOLUS)
        assert never.value.command_id == command_id
        # The original arriving late under its id is refused, not applied.
        with pytest.raises(DeviceRejected) as late:
            client._checked(BOLUS, client._exchange(BOLUS, command_id))
        assert late.value.code == ErrorCode.STATE_CONFLICT
        assert served.device.boluses == 0


def test_a_refused_request_resolves_to_its_refusal(served):
    with DeviceClient(served.pair.host, KEY, timeout=0.2, retries=0) as client:
        client.open_session()
        served.swallow = True
        big = Bolus(BolusKind.CLINICIAN, 5000, 10)
        with pytest.raises(CommandUnresolved) as unresolved:
            client.request(big)
        served.swallow = False
        with pytest.raises(DeviceRejected) as refused:
            client.resolve(unresolved.value.command_id, big)
        assert refused.value.code == ErrorCode.OUT_OF_RANGE and refused.value.field == "volume_ul"


def test_a_read_only_request_that_times_out_is_a_plain_timeout(served):
    with DeviceClient(served.pair.host, KEY, timeout=0.1, retries=0) as client:
        client.open_session()
        served.swallow = True
        with pytest.raises(LinkTimeout) as timed_out:
            client.status()
        assert not isinstance(timed_out.value, CommandUnresolved)


def test_a_refusal_of_the_request_itself_is_not_unresolved(served):
    with DeviceClient(served.pair.host, KEY, timeout=0.2) as client:
        with pytest.raises(DeviceRejected) as refused:
            client.bolus(BolusKind.CLINICIAN, 5000, 10)
        assert not isinstance(refused.value, CommandUnresolved)
