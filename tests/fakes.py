"""Test doubles below the protocol seam: a minimal device handler and a thread serving it.

The handler is not an emulator (that is ``device_mock``); it answers each request with fixed,
recognisable values and counts what it applied, so protocol tests can see exactly-once and
refusals without depending on device physics.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from protocols.endpoint import DeviceEndpoint
from protocols.errors import DeviceRejected, ErrorCode, LinkError
from protocols.messages import (
    ActiveAlarm,
    Actor,
    AlarmState,
    Area,
    BatteryKind,
    BatteryState,
    Bolus,
    BolusReply,
    CommandAck,
    DeviceKind,
    EventCode,
    IdentifyReply,
    Message,
    Priority,
    ScsStatus,
    StatusRequest,
    TherapySet,
    Waveform,
)

AREA = Area(0b0001, 0b0010, 3500, 300, 50, Waveform.TONIC, 0, 0, 0, 0)


def scs_status(therapy_on: bool = True, seq: int = 7) -> ScsStatus:
    """A fixed stimulator snapshot with every list filled."""
    return ScsStatus(
        time_ms=1_767_225_600_000,
        therapy_on=therapy_on,
        active_program=1,
        areas=(AREA,),
        patient_amp_max_ua=6000,
        battery_kind=BatteryKind.RECHARGEABLE,
        battery_state=BatteryState.OK,
        battery_pct_x100=8250,
        battery_mv=3920,
        charging=False,
        coupling_pct=0,
        capacity_pct_x100=9800,
        days_to_recharge_x100=1234,
        eri_ms=0,
        eos_ms=0,
        tissue_power_uw=450,
        charge_density_x100=1220,
        impedance_ohm=tuple(500 + 10 * i for i in range(16)),
        alarms=(ActiveAlarm(EventCode.BATTERY_LOW, Priority.LOW, AlarmState.ACTIVE),),
        last_event_seq=seq,
        stored_programs=0b1,
        mri_mode=False,
    )


IDENTITY = IdentifyReply(DeviceKind.SCS, "TestStim 1", "SN-TEST-1", "1.0.0", 0, 0, 0x2D, 0)


@dataclass
class FakeDevice:
    """Handler that records applied commands."""

    therapy_on: bool = True
    boluses: int = 0
    applied: list[str] = field(default_factory=list)

    def __call__(self, message: Message, role: Actor = Actor.CLINICIAN) -> Message:
        if isinstance(message, StatusRequest):
            return scs_status(self.therapy_on, len(self.applied))
        if isinstance(message, TherapySet):
            self.therapy_on = message.on
            self.applied.append(f"therapy {message.on}")
            return CommandAck(len(self.applied))
        if isinstance(message, Bolus):
            if message.volume_ul > 1000:
                raise DeviceRejected(
                    ErrorCode.OUT_OF_RANGE, "bolus above 1000 µL", "volume_ul", message.volume_ul, 1000
                )
            self.boluses += 1
            self.applied.append(f"bolus {message.volume_ul}")
            return BolusReply(len(self.applied), message.volume_ul, 0)
        raise DeviceRejected(ErrorCode.UNSUPPORTED, f"{type(message).__name__} not supported by the fake")


class EndpointThread:
    """Serves a ``DeviceEndpoint`` on a serial-like port from a named thread until stopped."""

    def __init__(self, port, endpoint: DeviceEndpoint, clock=time.monotonic) -> None:
        self.port = port
        self.endpoint = endpoint
        self.clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-endpoint", daemon=True)

    def start(self) -> EndpointThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.port.read(1)
                if data and self.port.in_waiting:
                    data += self.port.read(self.port.in_waiting)
            except (LinkError, OSError):
                return
            if data:
                out = self.endpoint.receive(data, self.clock())
                if out:
                    try:
                        self.port.write(out)
                    except (LinkError, OSError):
                        return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "endpoint thread did not stop"
