"""The client written from SPEC.md alone talks to the real device endpoint (issue: Done when)."""

from __future__ import annotations

from protocols.codec import to_json
from tests.cleanroom_client import CleanroomClient
from tests.fakes import IDENTITY, scs_status


def test_cleanroom_client_identifies_opens_a_session_and_reads_status(link, pairing_key, fake_device):
    pair, endpoint = link
    client = CleanroomClient(pair.host, pairing_key)
    identity = client.identify()
    assert identity["serial"] == IDENTITY.serial
    assert identity["schema_fingerprint"] == endpoint.identity.schema_fingerprint
    client.open_session()
    status = client.status()
    assert status == to_json(scs_status(fake_device.therapy_on, len(fake_device.applied)))
    assert endpoint.stats.mac_errors == 0 and endpoint.stats.replays == 0
    client.close_session()
    assert endpoint.sessions.active is None


def test_cleanroom_client_learns_a_commands_fate_from_spec_4_2(link, pairing_key, fake_device):
    """The digest and the CommandQuery / CommandOutcome layouts as SPEC 4.2 and 10 give them."""
    import hashlib

    from tests.cleanroom_client import MESSAGE_TYPES, decode_payload, encode_payload

    pair, _ = link
    client = CleanroomClient(pair.host, pairing_key)
    client.identify()
    client.open_session()
    therapy_set = MESSAGE_TYPES["TherapySet"]
    ack = client.request(therapy_set, {"on": False})
    digest = hashlib.sha256(bytes([therapy_set]) + encode_payload(therapy_set, {"on": False})).digest()[:16]

    query = {"command_id": ack.frame.command_id, "request_type": therapy_set, "request_digest": digest.hex()}
    outcome = client.request("CommandQuery", query).fields
    assert outcome["fate"] == "HANDLED" and outcome["reply_type"] == MESSAGE_TYPES["CommandAck"]
    assert decode_payload(outcome["reply_type"], bytes.fromhex(outcome["reply"])) == ack.fields
    assert len(fake_device.applied) == 1

    unknown = {"command_id": ack.frame.command_id + 100, "request_type": therapy_set, "request_digest": digest.hex()}
    outcome = client.request("CommandQuery", unknown).fields
    assert outcome == {
        "command_id": ack.frame.command_id + 100,
        "fate": "NOT_HANDLED",
        "reply_type": 0,
        "reply": "",
    }
    client.close_session()
