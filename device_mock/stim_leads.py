"""The stimulator's leads: contact impedances and their drift after implant, lead faults, the impedance
check, the contacts it flags and the shorted ones it turns off.

A part of ``Stimulator`` (a mixin over its state). Also the charge-density alarm and override entry
and the Shannon k of the active program (docs/devices.md 1.3, 1.8, 1.10). Must not import
``stimulator.py`` nor anything of the dashboard.

Drift is piecewise constant: the true impedance moves only at whole ``impedance_drift_step_h`` steps
after implant, which the model treats as breakpoints (``_next_drift_ms``), so the draw stays
constant between breakpoints and one long advance equals many short ones.
"""

from __future__ import annotations

import math
import random
from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import EventCode, StimProgramSet

from .alarms import AlarmManager, EventLog
from .stim_physics import ScsConfig, charge_density, shannon_k, split

__all__ = ["OPEN_READING", "StimLeads"]

OPEN_READING = 65_535  # wire value of an open contact
LEAD_CONTACTS = 8  # contacts per lead: trials use 8-contact percutaneous leads (docs/devices.md 1.4) [V]


class StimLeads:
    """Leads, impedance and charge density (mixed into ``Stimulator``)."""

    config: ScsConfig
    seed: int
    now_ms: int
    events: EventLog
    alarms: AlarmManager
    _programs: dict[int, StimProgramSet]
    _active: int
    _baseline: list[float]
    _migration: float  # how far the leads moved along the spine, contact spacings
    _leads: dict[int, str]
    _readings: list[int]
    _checks: int
    _checked_ms: int | None
    _implant_ms: int

    # --- true impedance and its drift --------------------------------------------------------------
    def _drift_index(self) -> int:
        """Whole drift steps since implant at ``now_ms`` (0 when drift is off)."""
        if self.config.impedance_drift <= 0:
            return 0
        return max(0, self.now_ms - self._implant_ms) // self._drift_step_ms()

    def _drift_step_ms(self) -> int:
        return max(1, round(self.config.impedance_drift_step_h * 3_600_000))

    def _drift_factor(self, index: int) -> float:
        """z / baseline after ``index`` steps: 1 + drift x (1 - exp(-days / tau))."""
        c = self.config
        days = index * self._drift_step_ms() / 86_400_000
        return 1.0 + c.impedance_drift * (1.0 - math.exp(-days / c.impedance_drift_tau_days))

    def _next_drift_ms(self) -> int:
        """Device time of the next drift step, 0 once the factor no longer changes (settled to float precision)."""
        index = self._drift_index()
        if self.config.impedance_drift <= 0 or self._drift_factor(index + 1) == self._drift_factor(index):
            return 0
        return self._implant_ms + (index + 1) * self._drift_step_ms()

    def _true_ohm(self) -> list[float]:
        faults = {"open": math.inf, "short": float(self.config.short_fault_ohm)}
        factor = self._drift_factor(self._drift_index())
        # a migrated lead sits in other tissue: its contacts read higher, up to +20 % two spacings away [E]
        factor *= 1.0 + 0.1 * min(2.0, abs(self._migration))
        return [faults.get(self._leads.get(i, ""), z * factor) for i, z in enumerate(self._baseline)]

    def _measured_ohm(self) -> list[float]:
        """The last readings as a programmer uses them for the load: open contacts as infinite."""
        return [math.inf if r == OPEN_READING else float(r) for r in self._readings]

    def _disabled_mask(self) -> int:
        """Contacts turned off because the last check read them shorted (Axium turns the lead off, 1.4)."""
        short = self.config.short_ohm
        return sum(1 << i for i, r in enumerate(self._readings) if r < short)

    def _densities(self, at_patient_max: bool) -> list[float]:
        """Charge density of each active area, µC/cm²/phase, at its amplitude or at the patient maximum."""
        program, area_cm2 = self._programs.get(self._active), self.config.contact_area_cm2
        if program is None:
            return []
        return [
            charge_density(
                program.patient_amp_max_ua if at_patient_max else a.amplitude_ua, a.pulse_width_us, split(a), area_cm2
            )
            for a in program.areas
        ]

    def _shannon_k_x100(self) -> int:
        """Highest Shannon k of the active program's areas, x100 and within i16; 0 with no charge at all."""
        program, area_cm2 = self._programs.get(self._active), self.config.contact_area_cm2
        ks = [shannon_k(a.amplitude_ua, a.pulse_width_us, split(a), area_cm2) for a in program.areas] if program else []
        finite = [k for k in ks if math.isfinite(k)]
        return max(-32_768, min(32_767, round(max(finite) * 100))) if finite else 0

    def _update_density_alarm(self) -> None:
        """CHARGE_DENSITY_LIMIT while an override holds or the patient's range could pass the limit (1.3, 1.10)."""
        limit = self.config.charge_density_limit
        held = self._densities(at_patient_max=False) + self._densities(at_patient_max=True)
        if any(d > limit for d in held):
            self.alarms.raise_alarm(EventCode.CHARGE_DENSITY_LIMIT, self.now_ms)
        else:
            self.alarms.clear_condition(EventCode.CHARGE_DENSITY_LIMIT, self.now_ms)

    def _log_density_override(self, density: float) -> None:
        """DENSITY_OVERRIDE for an accepted program above the limit: density and limit in 0.01 µC/cm²/phase."""
        limit = round(self.config.charge_density_limit * 100)
        self.events.append(self.now_ms, EventCode.DENSITY_OVERRIDE, arg0=round(density * 100), arg1=limit)

    def _check_programmable(self, message: StimProgramSet) -> None:
        """STATE_CONFLICT: no programming at EOS or after a battery failure, nor on a flagged contact."""
        blocked = self._battery_blocks(programming=True)  # a flat battery can still store a program
        if blocked:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, f"cannot program: {blocked}")
        flagged = self._flagged_contacts()
        for i, area in enumerate(message.areas):
            for name, mask in (("anode_mask", area.anode_mask), ("cathode_mask", area.cathode_mask)):
                bad = [k for k in flagged if mask >> k & 1]
                if bad:
                    why = f"contact {bad[0]} measured {self._readings[bad[0]]} Ω (lead {flagged[bad[0]]}); re-measure"
                    raise DeviceRejected(ErrorCode.STATE_CONFLICT, why, f"areas[{i}].{name}", bad[0])

    def _flagged_contacts(self) -> dict[int, str]:
        """Contacts the last impedance check found open or shorted."""
        c = self.config
        return {
            i: "open" if r > c.open_ohm else "short"
            for i, r in enumerate(self._readings)
            if r > c.open_ohm or r < c.short_ohm
        }

    def _measure_impedance(self) -> int:
        """Read every contact (true value plus seeded noise); log it, raise or clear lead alarms, and turn
        shorted contacts off (CONTACTS_DISABLED when the set changes)."""
        disabled_before = self._disabled_mask() if self._checks else 0  # before the first check nothing is read
        self._checks += 1
        self._checked_ms = self.now_ms  # MRI mode needs a recent check (stim_mri)
        rng = random.Random(f"scs-impedance:{self.seed}:{self._checks}")
        readings = []
        for z in self._true_ohm():
            noise = rng.gauss(0.0, 1.0)  # drawn for every contact so the stream does not depend on faults
            readings.append(
                OPEN_READING
                if math.isinf(z)
                else min(65_534, max(1, round(z * (1 + self.config.impedance_noise * noise))))
            )
        self._readings = readings
        seq = self.events.append(self.now_ms, EventCode.IMPEDANCE_MEASURED).seq
        flagged = self._flagged_contacts()
        for code, kind in ((EventCode.LEAD_OPEN, "open"), (EventCode.LEAD_SHORT, "short")):
            contacts = [k for k, v in flagged.items() if v == kind]
            if contacts:
                self.alarms.raise_alarm(code, self.now_ms, contacts[0], readings[contacts[0]])
            else:
                self.alarms.clear_condition(code, self.now_ms)
        disabled = self._disabled_mask()
        if disabled != disabled_before:
            self.events.append(self.now_ms, EventCode.CONTACTS_DISABLED, arg0=disabled, arg1=disabled.bit_count())
        return seq

    def _lead_contacts(self, params: dict[str, Any]) -> range:
        """The contacts of lead ``params["lead"]`` (leads of ``LEAD_CONTACTS`` contacts, from 0)."""
        lead, leads = params.get("lead", 0), max(1, self.config.contacts // LEAD_CONTACTS)
        if not isinstance(lead, int) or not 0 <= lead < leads:
            raise ValueError(f"'lead' must be an integer 0-{leads - 1}, got {lead!r}")
        return range(lead * LEAD_CONTACTS, min(self.config.contacts, (lead + 1) * LEAD_CONTACTS))

    def _disconnect_lead(self, params: dict[str, Any], connected: bool) -> None:
        """A trial lead's cable comes off its stimulator (every contact open, detected at once) or back on."""
        contacts = self._lead_contacts(params)
        lead = contacts.start // LEAD_CONTACTS
        for contact in contacts:
            if connected:
                self._leads.pop(contact, None)
            else:
                self._leads[contact] = "open"
        if connected:
            self.alarms.clear_condition(EventCode.LEAD_DISCONNECTED, self.now_ms, lead)
        else:  # the external stimulator senses the lost load on its next pulse [E]
            self.alarms.raise_alarm(EventCode.LEAD_DISCONNECTED, self.now_ms, lead, len(contacts))

    def _migrate_lead(self, params: dict[str, Any]) -> None:
        """The leads move along the spine by ``contacts`` spacings (signed): coverage and impedance change."""
        shift = params.get("contacts", 2.0)
        if isinstance(shift, bool) or not isinstance(shift, int | float) or not -8 <= shift <= 8:
            raise ValueError(f"'contacts' must be a number of contact spacings from -8 to 8, got {shift!r}")
        self._migration = float(shift)

    def _set_lead(self, params: dict[str, Any], fault: str | None) -> None:
        """Open or short a contact (it reads so at the next check; an open one loses its area), or mend it."""
        contact = params.get("contact")
        if not isinstance(contact, int) or not 0 <= contact < self.config.contacts:
            raise ValueError(f"'contact' must be an integer 0-{self.config.contacts - 1}, got {contact!r}")
        if fault is None:
            self._leads.pop(contact, None)
        else:
            self._leads[contact] = fault
