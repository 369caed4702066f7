"""The server's loop honours a stop asked for before it ran: it saves, closes and returns at once."""

from __future__ import annotations

import threading

from device_mock.clock import ManualClock
from device_mock.device import Device
from device_mock.server import Served, Server, Transport
from device_mock.state import StateStore
from device_mock.stimulator import ScsConfig, Stimulator

T0 = 1_767_225_600_000
KEY = bytes(range(32))


class ClosedCounter(Transport):
    """A link with nothing to read that counts its ``close()`` calls."""

    description = "test link"

    def __init__(self) -> None:
        self.closed = 0

    def fileno(self) -> int:
        return -1

    def read(self) -> bytes:
        return b""

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        self.closed += 1


def _served(tmp_path) -> tuple[Served, ClosedCounter, StateStore]:
    store = StateStore(tmp_path / "scs-1")
    transport = ClosedCounter()
    device = Device(Stimulator(ScsConfig(), T0, 1), ManualClock(T0), KEY, store=store)
    return Served("scs-1", device, transport), transport, store


def _run_in_thread(server: Server) -> bool:
    """Run the loop in a thread; True when it returned within a (generous) deadline."""
    thread = threading.Thread(target=server.run, name="server-under-test", daemon=True)
    thread.start()
    thread.join(timeout=30)
    if thread.is_alive():
        server.stop()
        thread.join(timeout=30)
        return False
    return True


def test_stop_before_run_returns_at_once_having_saved_and_closed(tmp_path):
    item, transport, store = _served(tmp_path)
    server = Server([item])
    server.stop()
    assert _run_in_thread(server), "run() ignored a stop asked for before it started"
    assert transport.closed == 1
    assert store.load() is not None


def test_a_shared_stop_event_set_before_the_server_exists_is_honoured(tmp_path):
    item, transport, store = _served(tmp_path)
    stop = threading.Event()
    stop.set()  # e.g. SIGTERM while the devices were being built
    server = Server([item], stop=stop)
    assert _run_in_thread(server)
    assert transport.closed == 1 and store.load() is not None


def test_a_shared_stop_event_set_while_running_ends_the_loop(tmp_path):
    item, transport, _ = _served(tmp_path)
    stop = threading.Event()
    server = Server([item], tick_s=0.01, stop=stop)
    threading.Timer(0.05, stop.set).start()
    assert _run_in_thread(server)
    assert transport.closed == 1
