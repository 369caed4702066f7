"""Shared fixtures: keys, an in-memory link to a fake device, and a guard against leaked threads."""

from __future__ import annotations

import threading

import pytest

from protocols.client import DeviceClient
from protocols.endpoint import DeviceEndpoint
from protocols.transport import LoopbackPair
from tests.fakes import IDENTITY, EndpointThread, FakeDevice

KEY = bytes(range(32))


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves a thread of its own running."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for thread in leaked:
        thread.join(timeout=2)
    leaked = [t.name for t in leaked if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture
def pairing_key() -> bytes:
    return KEY


@pytest.fixture
def fake_device() -> FakeDevice:
    return FakeDevice()


@pytest.fixture
def link(fake_device):
    """A loopback pair with a served endpoint on its device end; yields (pair, endpoint)."""
    pair = LoopbackPair(timeout=0.02)
    endpoint = DeviceEndpoint(IDENTITY, fake_device, KEY)
    server = EndpointThread(pair.device, endpoint).start()
    yield pair, endpoint
    pair.close()
    server.stop()


@pytest.fixture
def client(link):
    pair, _ = link
    with DeviceClient(pair.host, KEY, timeout=0.3, retries=3) as c:
        yield c
