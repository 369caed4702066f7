"""The contract every device model meets, and the limit check they share.

A model is pure: no I/O, no clock reads, no threads. ``device.py`` advances it to the device time
before each request and after each tick, hands it the programming commands of its kind, and
persists ``to_state()``. Models integrate in closed form between breakpoints (threshold
crossings, schedule steps, bolus ends, cycling edges) and log every event at its exact device
time, so neither the speed nor how often ``advance_to`` is called changes the result.
"""

from __future__ import annotations

from typing import Any, Protocol

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import Actor, Capability, DeviceKind, Lifecycle, Message, PumpStatus, ScsStatus

from .alarms import AlarmManager, EventLog


class DeviceModel(Protocol):
    """What ``device.Device`` needs of a stimulator or pump model."""

    kind: DeviceKind
    FAULTS: tuple[str, ...]  # the fault names ``inject_fault`` takes
    model_name: str
    serial: str
    firmware: str
    capabilities: Capability
    events: EventLog
    alarms: AlarmManager
    now_ms: int
    wakeups: int  # receiver wake-ups charged so far (R10)
    wake_energy_j: float  # the battery energy they took
    lifecycle: Lifecycle  # trial, implanted, trial ended or explanted (device_mock.lifecycle)
    treatment: Any  # the device_mock.treatment.Treatment of its virtual patient, or None

    def advance_to(self, t_ms: int) -> None:
        """Integrate up to device time ``t_ms`` (no-op if it is not later than ``now_ms``)."""
        ...

    def status(self) -> ScsStatus | PumpStatus:
        """The telemetry snapshot at ``now_ms``."""
        ...

    def apply(self, message: Message, role: Actor = Actor.CLINICIAN) -> Message:
        """Apply a command (or answer a read) of this device kind from a ``role`` session; all or nothing.

        Raises ``DeviceRejected`` (OUT_OF_RANGE with field, value and limit; STATE_CONFLICT;
        NOT_PERMITTED beyond what ``role`` may do; UNSUPPORTED for another kind's commands) and
        then changes nothing.
        """
        ...

    def charge_wakeups(self, count: int) -> None:
        """Take the battery energy of ``count`` receiver wake-ups at ``now_ms`` (docs/security.md R10).

        Each frame examined outside the verified session costs ``config.wake_j``; the energy goes
        through the model's own battery accounting, so ``to_state`` keeps it and later threshold
        crossings stay exact. Nothing is charged once the battery has failed or shut the device down.
        """
        ...

    def inject_fault(self, fault: str, params: dict[str, Any]) -> None:
        """Start or end a device fault by name (``ValueError`` for an unknown one)."""
        ...

    def to_state(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, JSON-ready."""
        ...


def require(field: str, value: int, low: int, high: int, unit: str = "") -> None:
    """Refuse ``value`` unless ``low <= value <= high``: OUT_OF_RANGE naming the field and the broken limit."""
    u = f" {unit}" if unit else ""
    if value < low:
        raise DeviceRejected(
            ErrorCode.OUT_OF_RANGE, f"{field} {value}{u} is below the minimum {low}{u}", field, value, low
        )
    if value > high:
        raise DeviceRejected(
            ErrorCode.OUT_OF_RANGE, f"{field} {value}{u} is above the maximum {high}{u}", field, value, high
        )


def unsupported(message: Message, kind: DeviceKind) -> DeviceRejected:
    """The refusal for a command this device kind does not have."""
    return DeviceRejected(ErrorCode.UNSUPPORTED, f"{type(message).__name__} is not a {kind.name} command")
