"""A TCP relay between a host and ``implant-mock --tcp`` that can lose the device's bytes on demand.

The host connects to ``relay.url`` (pyserial ``socket://``); the relay forwards each direction to
the emulator's TCP port. ``drop_replies`` discards what the device sends (a reply lost on the
line) and counts it; ``retarget(port)`` moves the relay to a restarted emulator without the host
noticing, as a serial cable stays plugged in while the implant reboots. Listens on 127.0.0.1 on a
free port; ``close()`` stops both threads.
"""

from __future__ import annotations

import selectors
import socket
import threading


class Relay:
    """Forwards bytes between one host connection and the emulator; see module docstring."""

    def __init__(self, upstream_port: int) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self._upstream_port = upstream_port
        self._lock = threading.Lock()
        self._host: socket.socket | None = None
        self._device: socket.socket | None = None
        self.drop_replies = False
        self.dropped = 0  # device bytes discarded while drop_replies was set
        self.device_bytes = threading.Condition()  # notified whenever the device sends something
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-relay", daemon=True)
        self._thread.start()

    def retarget(self, upstream_port: int) -> None:
        """Send the host's bytes to another emulator port from now on (the old connection is closed)."""
        with self._lock:
            self._upstream_port = upstream_port
            if self._device is not None:
                self._device.close()
                self._device = None

    def close(self) -> None:
        """Stop relaying and close every socket."""
        self._stop.set()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "relay thread did not stop"
        for sock in (self._host, self._device, self._listener):
            if sock is not None:
                sock.close()

    def _connect_device(self) -> socket.socket | None:
        with self._lock:
            if self._device is None:
                try:
                    self._device = socket.create_connection(("127.0.0.1", self._upstream_port), timeout=1.0)
                except OSError:
                    return None  # the emulator is down: the host's bytes are lost, as on a dead line
                self._device.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return self._device

    def _run(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stop.is_set() and self._host is None:
            try:
                self._host, _ = self._listener.accept()
            except TimeoutError:
                continue
        if self._host is None:
            return
        self._host.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not self._stop.is_set():
            device = self._connect_device()
            with selectors.DefaultSelector() as selector:
                selector.register(self._host, selectors.EVENT_READ, "host")
                if device is not None:
                    selector.register(device, selectors.EVENT_READ, "device")
                for key, _ in selector.select(0.05):
                    self._pump(key.data, key.fileobj)  # type: ignore[arg-type]

    def _pump(self, side: str, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if side == "host":
            device = self._connect_device()
            if data and device is not None:
                try:
                    device.sendall(data)
                except OSError:
                    self.retarget(self._upstream_port)
            return
        if not data:  # the emulator went away
            self.retarget(self._upstream_port)
            return
        with self.device_bytes:
            if self.drop_replies:
                self.dropped += len(data)
            else:
                assert self._host is not None
                self._host.sendall(data)
            self.device_bytes.notify_all()
