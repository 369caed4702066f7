"""The pump's mutable state records: what has been reached, the injected faults and the integer totals.

Plain dataclasses shared by ``pump.py`` and its parts (``pump_power``, ``pump_boluses``,
``pump_refilling``, ``pump_faults``), saved whole by ``Pump.to_state``, and ``PumpParts``, the
attributes those parts work on. Must not import ``pump.py`` or its parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # names for the annotations of ``PumpParts`` only
    from protocols.messages import Lifecycle

    from .alarms import AlarmManager, EventLog
    from .battery import PrimaryBattery
    from .pump_config import PumpConfig
    from .pump_dosing import ActiveBolus, Program

__all__ = ["Faults", "Magnet", "PumpParts", "Reached", "Totals"]


@dataclass
class Reached:
    """Device times at which each one-way condition was reached (0 = not reached)."""

    low: int = 0
    empty: int = 0
    eri: int = 0
    eos: int = 0
    replacement: int = 0  # REPLACEMENT_ADVISED logged (absent from states saved before it: 0)


@dataclass
class Faults:
    """Injected device faults."""

    stalled: bool = False
    occluded: bool = False
    battery_failed: bool = False
    memory_error: bool = False  # critical: delivery stops until the fault is cleared
    memory_error_minor: bool = False  # non-critical: delivery goes on


@dataclass
class Totals:
    """Integer counters everything physical follows from (units of ``UNITS_PER_UL``)."""

    fill_ul: int  # reservoir right after the last refill
    since_refill: int = 0  # units pumped since the last refill
    pumped: int = 0  # units pumped since implant: motor energy
    powered_ms: int = 0  # ms the electronics ran: quiescent energy
    wakeups: int = 0  # receiver wake-ups for frames outside a session (R10): wake energy
    refills: int = 0
    delivered_ul: float = 0.0  # drug that reached the patient (not under occlusion, not from an empty reservoir)
    held_units: int = 0  # programmed units since the refill that an occluded catheter kept in the reservoir
    patient_boluses: list[int] = field(default_factory=list)  # start times within the last 24 h
    stable_until_ms: int = 0  # the last fill's drug-stability limit (0 = none)
    drugs_held: list[int] = field(default_factory=list)  # every drug the pump has held: first-fill limits
    boluses_given: list[list[int]] = field(default_factory=list)  # [start_ms, drug, ng] of the last 24 h
    ziconotide_raised_ms: int = 0  # last rise of the ziconotide daily dose (0 = never)
    leak_units: int = 0  # drug a magnetic field let past the valves since the refill: unmetered (pump_magnet)


@dataclass
class Magnet:
    """A magnetic field (an MRI scan) and what it left behind (``pump_magnet``)."""

    field: bool = False  # the pump is in the field now
    field_end_ms: int = 0  # when the field ends (0 = at the end_mri_scan fault)
    restarts: bool = True  # peristaltic: the motor restarts by itself after the field, else at the check
    resume_delay_ms: int = 0  # peristaltic: how long after the field it restarts
    suspended_ms: int = 0  # peristaltic: when the motor was stopped by the field (0 = it runs)
    resume_ms: int = 0  # peristaltic: when it restarts (0 = not scheduled)
    check_due: bool = False  # the clinician must interrogate the pump (MriCheckDone)
    leaked_units: int = 0  # valve-gated: drug past the valves in this field
    valve_closed: bool = False  # valve-gated: the flow-activated valve has shut


class PumpParts:
    """The state every part of ``Pump`` works on (annotations only: ``Pump._setup`` sets each).

    The parts (``pump_power``, ``pump_boluses``, ``pump_refilling``, ``pump_faults``) derive from
    it, so they name the same attributes once.
    """

    config: PumpConfig
    now_ms: int
    program: Program
    totals: Totals
    reached: Reached
    faults: Faults
    events: EventLog
    alarms: AlarmManager
    battery: PrimaryBattery
    bolus: ActiveBolus | None
    lifecycle: Lifecycle
    treatment: Any  # treatment.Treatment, or None: the virtual patient the pump treats
