"""docs/security.md R10 end to end: a wake-up flood on the real emulator's pty, and a clinician's stop.

A raw writer opens the device's pty a second time and floods it with unauthenticated identify
requests at about 1,000 frames/s, while an authenticated ``DeviceClient`` on the same pty stops
therapy. The flood is ~3 s rather than R10's 60 s to keep the suite fast; the 60 s figure is
covered sans-IO in ``tests/device_mock/test_flood.py``.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time

from protocols.auth import AuthPolicy
from protocols.framing import Frame, encode_frame
from protocols.messages import AlarmState, Area, EventCode, IdentifyRequest, Priority, Waveform

TONIC = Area(0b0001, 0b0010, 5000, 300, 50, Waveform.TONIC, 0, 0, 0, 0)
RATE = 1000  # frames per second
FLOOD_S = 3.0
BUDGET = AuthPolicy().flood_frames_per_s
_FLOOD_BEGINS = re.compile(r"telemetry flood: frames beyond")
_FLOOD_OVER = re.compile(r"telemetry flood over: .*\(link totals: (\d+) dropped, (\d+) wake-ups\)")


class Flooder(threading.Thread):
    """Writes unauthenticated frames to a pty at ``RATE`` per second for ``FLOOD_S``, on its own descriptor."""

    def __init__(self, port: str) -> None:
        super().__init__(name="flooder", daemon=True)
        self.port = port
        self.sent = 0
        self.started_at = self.ended_at = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        fd = os.open(self.port, os.O_WRONLY | os.O_NOCTTY)  # a second descriptor on the client's pty
        try:
            self.started_at = time.monotonic()
            while (elapsed := time.monotonic() - self.started_at) < FLOOD_S:
                due = min(int(elapsed * RATE), self.sent + 100) - self.sent  # catch up after a stall, in bounds
                if due > 0:
                    frames = (
                        encode_frame(Frame(IdentifyRequest.TYPE, 0, 0, 0, 0x5000_0000 + self.sent + i, b""))
                        for i in range(due)
                    )
                    os.write(fd, b"".join(frames))  # one write per batch: whole frames, never interleaved
                    self.sent += due
                time.sleep(0.005)
            self.ended_at = time.monotonic()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            os.close(fd)


def test_flood_on_the_pty_stop_gets_through_battery_bounded_one_alarm(run_mock, connect):
    mock = run_mock("--device", "scs", "--speed", "1")
    device = mock.devices["scs-1"]
    client = connect(device, timeout=2.0, retries=3)  # generous: a loaded 2-core machine
    client.set_program(1, (TONIC,), 6000)
    client.set_therapy(True)
    first_seq = client.status().last_event_seq + 1

    flooder = Flooder(device.port)
    flooder.start()
    time.sleep(FLOOD_S / 2)
    asked = time.monotonic()
    ack = client.set_therapy(False)  # the authenticated stop, in the middle of the flood
    stop_s = time.monotonic() - asked
    flooder.join(timeout=FLOOD_S + 30)
    assert flooder.error is None and not flooder.is_alive()
    assert ack.event_seq > 0 and client.stats.timeouts == 0
    assert not client.status().therapy_on

    # An episode ends once a whole second passes without a drop; the emulator logs its figures then.
    # (A stalled flooder could make two episodes: the last report's link totals count them all.)
    def episodes_over() -> bool:
        over = len(_FLOOD_OVER.findall(mock.stderr))
        return over >= 1 and over == len(_FLOOD_BEGINS.findall(mock.stderr))

    deadline = time.monotonic() + 20
    while not episodes_over() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert episodes_over(), mock.stderr
    dropped = int(_FLOOD_OVER.findall(mock.stderr)[-1][0])

    events = client.events_since(first_seq)
    floods = [e for e in events if e.code == EventCode.TELEMETRY_FLOOD]
    assert [(e.state, e.priority, e.arg0) for e in floods] == [(AlarmState.ACTIVE, Priority.LOW, BUDGET)]
    assert any(e.code == EventCode.THERAPY_OFF for e in events)
    listed = [a for a in client.status().alarms if a.code == EventCode.TELEMETRY_FLOOD]
    assert [a.state for a in listed] == [AlarmState.ACTIVE]  # latched until acknowledged
    client.close()
    assert mock.stop() == 0  # SIGTERM saves the state: the battery's account of the wake-ups

    model = json.loads((device.key.parent / "state.json").read_text())["model"]
    config = model["config"]
    windows = math.ceil(flooder.ended_at - flooder.started_at) + 1  # seconds of the link clock the flood touched
    handshake = 3  # the client's identify, SessionOpen and SessionConfirm were outside the session too
    assert model["wakeups"] <= BUDGET * windows + handshake
    assert model["wakeups"] - handshake + dropped == flooder.sent  # each flood frame examined or dropped unseen
    budget_j = BUDGET * config["wake_j"] * windows
    assert model["wake_energy_j"] <= budget_j + handshake * config["wake_j"]
    print(
        f"\nflood: {flooder.sent} frames in {flooder.ended_at - flooder.started_at:.2f} s; "
        f"device examined {model['wakeups'] - handshake} (+{handshake} of the handshake), dropped {dropped}; "
        f"wake energy {model['wake_energy_j'] * 1e3:.2f} mJ of a {budget_j * 1e3:.2f} mJ budget "
        f"(unlimited: {flooder.sent * config['wake_j'] * 1e3:.1f} mJ); stop answered in {stop_s * 1e3:.1f} ms"
    )
