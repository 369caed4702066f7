"""The pump in a magnetic field (an MRI scan): what stops delivery, what restarts it, and the clinician's check.

A part of ``Pump`` (a mixin over its state, see ``pump_state``), driven by the faults ``mri_scan``
and ``end_mri_scan`` and the command ``MriCheckDone`` (SPEC 4.5, docs/devices.md 2.8).

- PERISTALTIC (SynchroMed-style): the field stops the motor's rotor, so nothing is pumped, basal or
  bolus (a running bolus ends). MRI_SUSPEND is a HIGH alarm (a motor stall sounds the two-tone
  alarm). When the field ends the motor restarts, after ``mri_resume_delay_min`` (MRI_RESUME), or
  only at the clinician's check if it does not restart by itself; the check is due either way.
- VALVE_GATED (Prometra II-style): the field holds the valves open and drug runs through at
  ``fav_surge_ul_per_day`` until the flow-activated valve has let ``fav_leak_ul`` pass; then it shuts
  (FAV_CLOSED, HIGH) and stays shut, field or not, until the clinician resets it. The leak is not
  metered: it leaves the true reservoir and reaches the patient, and the device's estimate does not
  count it. Programmed delivery is held from the field's start until the reset.

``Pump.advance_to`` stops at the field's end, the motor's restart and the ms the leak reaches its
limit, so one long advance and many short ones give the same log. Must not import ``pump.py`` nor
anything of the dashboard.
"""

from __future__ import annotations

from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import CommandAck, EventCode, MriCheckDone

from . import pump_dosing as dosing
from .pump_config import PumpMechanism
from .pump_dosing import MINUTE_MS, UNITS_PER_UL
from .pump_state import Magnet, PumpParts

__all__ = ["MAGNET_FAULTS", "PumpMagnet"]

MAGNET_FAULTS = ("mri_scan", "end_mri_scan")
_SCAN_KEYS = {"minutes", "resume_delay_min", "restarts"}


class PumpMagnet(PumpParts):
    """Magnetic fields and the post-MRI check (mixed into ``Pump``)."""

    magnet: Magnet

    @property
    def _valve_gated(self) -> bool:
        return self.config.mechanism is PumpMechanism.VALVE_GATED

    def _magnet_blocker(self) -> str | None:
        """Why a field (or what it left) keeps the pump from delivering, or None."""
        m = self.magnet
        if m.suspended_ms:
            return "the MRI magnet stopped the motor" if m.field else "the motor has not restarted since the MRI scan"
        if m.valve_closed:
            return "the flow-activated valve closed in a magnetic field: it needs the clinician's reset"
        if m.field and self._valve_gated:
            return "a magnetic field holds the valves open"
        return None

    @property
    def mri_suspended(self) -> bool:
        """A field holds delivery now: a stalled motor (also after the field, until it restarts) or the valves."""
        return bool(self.magnet.suspended_ms) or (self.magnet.field and self._valve_gated)

    # --- time ------------------------------------------------------------------------------------
    def _leak_rate(self) -> int:
        """Units/ms running past the valves a field holds open (0 once the valve shut, or when blocked)."""
        m = self.magnet
        if not (m.field and self._valve_gated) or m.valve_closed or self.faults.occluded:
            return 0  # an occluded catheter takes nothing, so the flow-activated valve sees no flow
        return self.config.fav_surge_ul_per_day

    def _magnet_stop(self, end: int, leak: int) -> int:
        """``end``, or earlier: the field's end, the motor's restart, or the ms the leak reaches its limit."""
        m, now = self.magnet, self.now_ms
        stops = [end]
        if m.field and m.field_end_ms:
            stops.append(m.field_end_ms)
        if m.suspended_ms and m.resume_ms:
            stops.append(m.resume_ms)
        need = self.config.fav_leak_ul * UNITS_PER_UL - m.leaked_units
        if leak and (hit := dosing.reach_in_segment(leak, None, now, end, max(need, 1))) is not None:
            stops.append(hit)
        return max(now + 1, min(stops))

    def _leak(self, start: int, end: int, leak: int) -> None:
        """The leak of [start, end]: out of the true reservoir, into the patient."""
        if not leak:
            return
        units = leak * (end - start)
        true_before = self.true_reservoir_ul
        self.magnet.leaked_units += units
        self.totals.leak_units += units
        self.totals.delivered_ul += true_before - self.true_reservoir_ul

    def _check_magnet(self) -> None:
        """Log what a field made true at ``now_ms``: its end, the motor's restart, the valve shutting."""
        m, now, cfg = self.magnet, self.now_ms, self.config
        if m.field and m.field_end_ms and now >= m.field_end_ms:
            self._end_field()
        if m.suspended_ms and m.resume_ms and now >= m.resume_ms:
            self._resume_motor()
        if m.field and self._valve_gated and not m.valve_closed and m.leaked_units >= cfg.fav_leak_ul * UNITS_PER_UL:
            m.valve_closed = m.check_due = True
            self.alarms.raise_alarm(EventCode.FAV_CLOSED, now, m.leaked_units // UNITS_PER_UL)

    def _end_field(self) -> None:
        m = self.magnet
        m.field, m.field_end_ms = False, 0
        if m.suspended_ms:
            m.resume_ms = self.now_ms + m.resume_delay_ms if m.restarts else 0

    def _resume_motor(self) -> None:
        m, now = self.magnet, self.now_ms
        held_s = (now - m.suspended_ms) // 1000
        m.suspended_ms = m.resume_ms = 0
        self.alarms.clear_condition(EventCode.MRI_SUSPEND, now)
        self.events.append(now, EventCode.MRI_RESUME, arg0=held_s)

    # --- faults ----------------------------------------------------------------------------------
    def _magnet_fault(self, fault: str, params: dict[str, Any]) -> None:
        """``mri_scan`` (``minutes``, ``resume_delay_min``, ``restarts``) or ``end_mri_scan`` (no keys)."""
        if fault == "end_mri_scan":
            if params:
                raise ValueError(f"pump fault end_mri_scan takes no parameters, got {', '.join(sorted(params))}")
            if self.magnet.field:
                self._end_field()
                self._check_magnet()
            return
        unknown = sorted(set(params) - _SCAN_KEYS)
        if unknown:
            raise ValueError(f"unknown fault parameter {', '.join(unknown)}; valid: {', '.join(sorted(_SCAN_KEYS))}")
        if self._valve_gated and set(params) & {"resume_delay_min", "restarts"}:
            raise ValueError("resume_delay_min and restarts are for a peristaltic pump: a valve-gated one has no motor")
        if self.magnet.field:
            raise ValueError("an MRI scan is already running: end it first (end_mri_scan)")
        minutes = _number(params, "minutes", self.config.mri_scan_min)
        delay = _number(params, "resume_delay_min", self.config.mri_resume_delay_min)
        restarts = _flag(params.get("restarts", True))
        self._start_field(round(minutes * MINUTE_MS), round(delay * MINUTE_MS), restarts)

    def _start_field(self, duration_ms: int, delay_ms: int, restarts: bool) -> None:
        m, now = self.magnet, self.now_ms
        self._end_bolus()
        m.field, m.field_end_ms = True, now + duration_ms if duration_ms else 0
        m.leaked_units = 0
        if self._valve_gated:
            self._check_magnet()  # a valve that lets nothing pass (fav_leak_ul 0) shuts at once
            return
        m.restarts, m.resume_delay_ms, m.resume_ms, m.check_due = restarts, delay_ms, 0, True
        if not m.suspended_ms:  # still held from an earlier scan: one suspension
            m.suspended_ms = now
            self.alarms.raise_alarm(EventCode.MRI_SUSPEND, now, duration_ms // MINUTE_MS)

    # --- the clinician's check -------------------------------------------------------------------
    def _apply_mri_check(self, _: MriCheckDone) -> CommandAck:
        """The clinician interrogated the pump after the scan; refused while the field lasts."""
        m, now = self.magnet, self.now_ms
        if m.field:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, "the pump is still in the MRI scan's magnetic field")
        if self._valve_gated:
            if not m.valve_closed:
                return CommandAck(0)
            m.valve_closed = m.check_due = False
            self.alarms.clear_condition(EventCode.FAV_CLOSED, now)
            return CommandAck(self.events.append(now, EventCode.FAV_RESET, arg0=m.leaked_units // UNITS_PER_UL).seq)
        if m.suspended_ms and m.resume_ms:
            wait = m.resume_ms - now
            why = f"the motor has not restarted since the scan (due in {dosing.ceil_div(wait, MINUTE_MS)} min)"
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, why, retry_after_ms=wait)
        if not m.check_due:
            return CommandAck(0)
        if m.suspended_ms:  # it does not restart by itself: the interrogation restarts it
            self._resume_motor()
        m.check_due = False
        return CommandAck(self.events.append(now, EventCode.MRI_CHECKED).seq)


def _number(params: dict[str, Any], name: str, default: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"fault parameter {name} must be a number of minutes, 0 or more, not {value!r}")
    return float(value)


def _flag(value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):  # --fault mri_scan:restarts=false
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"fault parameter restarts must be true or false, not {value!r}")
    return value
