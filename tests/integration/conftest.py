"""Fixtures that run the real ``implant-mock`` over real ptys, and stop it afterwards."""

from __future__ import annotations

import pytest

from protocols.client import DeviceClient
from tests.integration.mock_process import MockProcess


@pytest.fixture
def run_mock(tmp_path):
    """Factory: start ``implant-mock`` with arguments; every process started is stopped at teardown."""
    started: list[MockProcess] = []

    def start(*args: str, state: str = "state") -> MockProcess:
        proc = MockProcess(list(args), tmp_path / state)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def connect():
    """Factory: a DeviceClient on a mocked device's pty, identified and in a session; closed at teardown."""
    clients: list[DeviceClient] = []

    def open_client(device, timeout: float = 1.0, retries: int = 3) -> DeviceClient:
        client = DeviceClient.connect(device.port, device.key, timeout=timeout, retries=retries)
        clients.append(client)
        client.identify()
        client.open_session()
        return client

    yield open_client
    for client in clients:
        client.close()
