"""The pump's injectable faults: motor stall, occlusion, battery failure and reduced performance, memory errors.

MRI scans are faults too; this module routes them to ``pump_magnet``.

A part of ``Pump`` (a mixin over its state, see ``pump_state``), driven by scenarios and
``--fault``. Must not import ``pump.py`` nor anything of the dashboard.
"""

from __future__ import annotations

from typing import Any

from protocols.messages import (
    DosingMode,
    EventCode,
)

from .pump_magnet import MAGNET_FAULTS
from .pump_schedule import Schedule
from .pump_state import PumpParts

__all__ = ["PumpFaults"]


class PumpFaults(PumpParts):
    """Fault injection (mixed into ``Pump``)."""

    FAULTS = (
        "motor_stall",
        "clear_motor",
        "occlusion",
        "clear_occlusion",
        "battery_failure",
        "reduced_battery_performance",
        "memory_error",
        "clear_memory_error",
        *MAGNET_FAULTS,
    )

    def inject_fault(self, fault: str, params: dict[str, Any]) -> None:
        """Start or end a device fault (``FAULTS``); a clear of a fault that is not present does nothing.

        ``memory_error`` takes ``critical`` (default true), ``mri_scan`` its keys (``pump_magnet``); the
        others take none. A critical memory error raises MEMORY_ERROR (HIGH) and stops delivery; a
        non-critical one raises MEMORY_ERROR_MINOR (MEDIUM) and delivery goes on.
        ``clear_memory_error`` ends both (the device was reset).
        """
        if fault == "memory_error":
            self._memory_error(_flag(params, "critical", True))
            return
        if fault in MAGNET_FAULTS:
            self._magnet_fault(fault, params)  # pump_magnet: an MRI scan
            return
        handlers = {
            "motor_stall": self._stall,
            "clear_motor": self._clear_stall,
            "occlusion": self._occlude,
            "clear_occlusion": self._clear_occlusion,
            "battery_failure": self._fail_battery,
            "reduced_battery_performance": self._reduce_battery_performance,
            "clear_memory_error": self._clear_memory_error,
        }
        if fault not in handlers:
            raise ValueError(f"unknown pump fault {fault!r}; valid: {', '.join(self.FAULTS)}")
        if params:
            raise ValueError(f"pump fault {fault!r} takes no parameters, got {', '.join(sorted(params))}")
        handlers[fault]()

    def _memory_error(self, critical: bool) -> None:
        if critical:
            self._end_bolus()
            self.faults.memory_error = True
            self.alarms.raise_alarm(EventCode.MEMORY_ERROR, self.now_ms)
        else:
            self.faults.memory_error_minor = True
            self.alarms.raise_alarm(EventCode.MEMORY_ERROR_MINOR, self.now_ms)

    def _clear_memory_error(self) -> None:
        self.faults.memory_error = self.faults.memory_error_minor = False
        self.alarms.clear_condition(EventCode.MEMORY_ERROR, self.now_ms)
        self.alarms.clear_condition(EventCode.MEMORY_ERROR_MINOR, self.now_ms)

    def _stall(self) -> None:
        self._end_bolus()
        self.faults.stalled = True
        self.alarms.raise_alarm(EventCode.MOTOR_STALL, self.now_ms)

    def _clear_stall(self) -> None:
        if not self.faults.stalled:
            return
        self.faults.stalled = False
        self.events.append(self.now_ms, EventCode.MOTOR_STALL_RECOVERY)
        self.alarms.clear_condition(EventCode.MOTOR_STALL, self.now_ms)

    def _occlude(self) -> None:
        # A blocked catheter is not sensed by the pump: the clinician infers it from a residual larger
        # than expected [V Medtronic UK risks page; residual comparison, South Shore]. No alarm, and
        # status reads as normal; the refill check says so.
        self.faults.occluded = True

    def _clear_occlusion(self) -> None:
        self.faults.occluded = False

    def _fail_battery(self) -> None:
        self._end_bolus()
        self.faults.battery_failed = True
        pct = round(self.battery.fraction * 10_000)
        self.alarms.raise_alarm(EventCode.BATTERY_FAILURE, self.now_ms, pct, self.battery.voltage_mv())

    def _reduce_battery_performance(self) -> None:
        """The battery can no longer drive the programmed flow: the rate falls to the pump's minimum
        (a continuous program at ``min_rate_ul_per_day``), as the SynchroMed battery advisory describes."""
        self._end_bolus()
        rate = self.config.min_rate_ul_per_day
        offset = self.program.schedule.utc_offset_min
        self.program.schedule = Schedule(DosingMode.CONTINUOUS, rate, utc_offset_min=offset)
        self.events.append(self.now_ms, EventCode.DOSING_CHANGED, arg0=rate, arg1=DosingMode.CONTINUOUS)
        pct = round(self.battery.fraction * 10_000)
        self.alarms.raise_alarm(EventCode.BATTERY_REDUCED_PERFORMANCE, self.now_ms, pct, self.battery.voltage_mv())


def _flag(params: dict[str, Any], name: str, default: bool) -> bool:
    """A boolean fault parameter; anything else in ``params`` is refused by name."""
    unknown = sorted(set(params) - {name})
    if unknown:
        raise ValueError(f"unknown fault parameter {', '.join(unknown)}; valid: {name}")
    value = params.get(name, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):  # --fault memory_error:critical=false
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"fault parameter {name} must be true or false, not {value!r}")
    return value
