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
