"""The attack on the emulator, kept as tests (issue 8): lost replies across kill -9, noisy-line
boluses resolved exactly once, and the bounded clock step, against the real ``implant-mock``."""

from __future__ import annotations

import json
import os
import random
import threading
import time

import pytest

from protocols.client import DeviceClient
from protocols.codec import encode_payload
from protocols.errors import CommandNotHandled, CommandUnresolved, DeviceRejected, ErrorCode, LinkTimeout, ProtocolError
from protocols.framing import Frame, FrameFlags, encode_frame
from protocols.messages import BolusKind, BolusReply, EventCode, MsgType, SessionOpen
from tests.integration.relay import Relay

DAY_MS = 86_400_000
DUE_S = 60.0  # generous: a restart on a loaded 2-core machine takes a few seconds


def _tcp_port(device) -> int:
    return int(device.port.rsplit(":", 1)[1])


def _boluses(client: DeviceClient) -> list:
    return [e for e in client.events_since(1) if e.code == EventCode.BOLUS_STARTED]


@pytest.fixture
def relay_to():
    relays: list[Relay] = []

    def make(port: int) -> Relay:
        relay = Relay(port)
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        relay.close()


def _wait_dropped(relay: Relay) -> None:
    with relay.device_bytes:
        assert relay.device_bytes.wait_for(lambda: relay.dropped > 0, timeout=DUE_S), "the device never answered"


def test_a_bolus_whose_reply_is_lost_and_retried_after_a_kill_9_is_delivered_once(run_mock, relay_to):
    """The attack: reply lost, pump killed and restarted, the client re-opens and re-sends the same id."""
    mock = run_mock("--device", "pump", "--tcp", "127.0.0.1:0")
    device = mock.devices["pump-1"]
    relay = relay_to(_tcp_port(device))
    client = DeviceClient.connect(relay.url, device.key, timeout=1.0, retries=int(DUE_S))
    try:
        client.identify()
        client.open_session()
        relay.drop_replies = True
        outcome: list = []
        sender = threading.Thread(target=lambda: outcome.append(client.bolus(BolusKind.CLINICIAN, 77, 10)))
        sender.start()
        _wait_dropped(relay)  # applied, and its reply lost
        mock.kill9()
        again = run_mock("--device", "pump", "--tcp", "127.0.0.1:0")
        relay.retarget(_tcp_port(again.devices["pump-1"]))
        relay.drop_replies = False
        sender.join(timeout=DUE_S * 2)
        assert not sender.is_alive() and outcome, "the bolus call did not return"
        assert isinstance(outcome[0], BolusReply) and outcome[0].volume_ul == 77
        assert client.stats.reopened >= 1  # it did reach the restarted pump in a new session
        starts = _boluses(client)
        assert [(e.arg0, e.seq) for e in starts] == [(77, outcome[0].event_seq)], "one bolus, the one reported"
    finally:
        client.close()


def test_an_unresolved_bolus_is_resolved_after_a_kill_9_as_applied(run_mock, relay_to):
    mock = run_mock("--device", "pump", "--tcp", "127.0.0.1:0")
    device = mock.devices["pump-1"]
    relay = relay_to(_tcp_port(device))
    client = DeviceClient.connect(relay.url, device.key, timeout=0.5, retries=1)
    try:
        client.identify()
        client.open_session()
        relay.drop_replies = True
        with pytest.raises(CommandUnresolved) as lost:
            client.bolus(BolusKind.CLINICIAN, 77, 10)
        mock.kill9()
        again = run_mock("--device", "pump", "--tcp", "127.0.0.1:0")
        relay.retarget(_tcp_port(again.devices["pump-1"]))
        relay.drop_replies = False
        reply = client.resolve(lost.value.command_id, lost.value.request)
        assert isinstance(reply, BolusReply) and reply.volume_ul == 77
        assert client.resolve(lost.value.command_id, lost.value.request) == reply  # asking again: same answer
        assert [e.arg0 for e in _boluses(client)] == [77]
    finally:
        client.close()


def _settle(client: DeviceClient, lost: CommandUnresolved, tries: int = 40):
    """Ask until the device answers: ("applied", reply), ("refused", code) or ("not applied", None)."""
    for _ in range(tries):
        try:
            return "applied", client.resolve(lost.command_id, lost.request)
        except DeviceRejected as refused:
            if refused.code in (ErrorCode.NO_SESSION, ErrorCode.BAD_MAC, ErrorCode.REPLAY):
                continue
            return "refused", refused.code
        except CommandNotHandled:
            return "not applied", None
        except (LinkTimeout, ProtocolError):
            continue
    raise AssertionError(f"command 0x{lost.command_id:08x} could not be resolved in {tries} tries")


def _until_idle(client: DeviceClient) -> None:
    deadline = time.monotonic() + DUE_S
    while time.monotonic() < deadline:
        try:
            if not client.status().bolus_active:
                return
        except (LinkTimeout, ProtocolError):
            continue
    raise AssertionError("the bolus never ended")


def test_boluses_through_a_noisy_line_are_each_resolved_exactly_once(run_mock, connect):
    """Every bolus call ends applied, refused or confirmed not applied, and the log agrees with each."""
    noise = "flip=0.004,drop=0.004,dup=0.004"
    mock = run_mock("--device", "pump", "--speed", "1000", "--noise", noise, "--seed", "3")
    client = connect(mock.devices["pump-1"], timeout=0.3, retries=8)
    applied, unresolved = [], 0
    for _ in range(12):
        _until_idle(client)
        client.retries = 0  # a lost bolus reply is not retried away here, but resolved
        try:
            applied.append(client.bolus(BolusKind.CLINICIAN, 77, 5))
            continue
        except CommandUnresolved as lost:
            client.retries = 8
            unresolved += 1
            fate, reply = _settle(client, lost)
        except (LinkTimeout, ProtocolError):
            continue  # never sent (the session re-open failed): nothing to resolve
        finally:
            client.retries = 8
        if fate == "applied":
            applied.append(reply)
    print(f"boluses: {len(applied)} applied, {unresolved} unresolved then resolved")
    assert unresolved > 0, "the noise should have lost some bolus replies"
    assert mock.stop() == 0  # saved: the event log is read from the state, not over the noisy line
    state = json.loads((mock.devices["pump-1"].key.parent / "state.json").read_text())
    starts = [seq for seq, _, code, *_ in state["model"]["events"]["entries"] if code == EventCode.BOLUS_STARTED]
    assert starts == sorted(r.event_seq for r in applied), "the log and the reported boluses differ"


def test_a_clock_step_beyond_a_year_is_refused_and_a_year_is_accepted(run_mock, connect):
    mock = run_mock("--device", "scs", "--device", "pump")
    scs, pump = connect(mock.devices["scs-1"]), connect(mock.devices["pump-1"])
    now = scs.read_clock().time_ms
    with pytest.raises(DeviceRejected) as refused:
        scs.set_clock(now + 100 * 365 * DAY_MS)
    assert (refused.value.code, refused.value.field) == (ErrorCode.OUT_OF_RANGE, "time_ms")
    # The limit is a year past the device time when it was refused (its clock runs on meanwhile).
    assert now + 366 * DAY_MS <= refused.value.limit <= scs.read_clock().time_ms + 366 * DAY_MS
    scs.set_clock(now + 366 * DAY_MS)
    assert scs.read_clock().time_ms >= now + 366 * DAY_MS
    assert pump.status().time_ms > 0  # the other device of the process still answers
    state = mock.devices["scs-1"].key.parent / "state.json"
    assert len(json.loads(state.read_text())["model"]["events"]["entries"]) < 5_000


def test_after_a_kill_9_device_time_resumes_at_or_after_what_a_reply_revealed(run_mock, connect):
    """No rollback to the last full save: restarted at 1x, any lost device time would show."""
    mock = run_mock("--device", "pump", "--speed", "100000")
    pump = connect(mock.devices["pump-1"])
    deadline = time.monotonic() + 1.5  # longer than the full-save interval: the last status is past a save
    while time.monotonic() < deadline:
        before = pump.status()
    mock.kill9()
    pump.close()
    again = run_mock("--device", "pump", "--speed", "1")
    after = connect(again.devices["pump-1"]).status()
    assert after.time_ms >= before.time_ms, f"device time ran back {before.time_ms - after.time_ms} ms"
    assert after.reservoir_ul <= before.reservoir_ul, "the reservoir refilled by itself"


def test_forged_frames_on_the_real_pty_never_keep_the_programmer_out(run_mock, connect):
    """An attacker writing to the device's pty (wrong open proofs, guessed tags on the programmer's
    session, 20 a second) drives the lockout; the programmer re-opens its session every half second."""
    mock = run_mock("--device", "pump")
    device = mock.devices["pump-1"]
    programmer = connect(device)
    attacker = os.open(device.port, os.O_WRONLY | os.O_NOCTTY)  # writes only: every reply goes to the programmer
    guesses = random.Random(5)
    stop = threading.Event()

    def attack() -> None:
        while not stop.wait(0.05):
            nonce = guesses.randbytes(16)
            forged_open = SessionOpen(nonce, guesses.randbytes(16))
            os.write(
                attacker,
                encode_frame(Frame(forged_open.TYPE, FrameFlags(0), 0, 0, 0x7F00, encode_payload(forged_open))),
            )
            session = programmer.session
            if session is not None:
                flags = FrameFlags.AUTH
                guess = Frame(
                    MsgType.STATUS_REQUEST, flags, session.session_id, 1 << 40, 0x7F01, b"", guesses.randbytes(16)
                )
                os.write(attacker, encode_frame(guess))

    flood = threading.Thread(target=attack)
    flood.start()
    try:
        for _ in range(10):
            time.sleep(0.5)
            programmer.open_session()
            assert programmer.status().time_ms > 0
    finally:
        stop.set()
        flood.join(timeout=DUE_S)
        os.close(attacker)
    codes = [e.code for e in programmer.events_since(1)]
    assert EventCode.LOCKOUT in codes and codes.count(EventCode.AUTH_FAILURE) >= 10
    assert codes.count(EventCode.SESSION_OPENED) == 11
