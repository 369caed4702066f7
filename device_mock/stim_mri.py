"""The stimulator's MRI mode: the checks on entry, what it refuses while on, and the restore at exit.

A part of ``Stimulator`` (a mixin over its state). Entry needs an impedance check no older than
``ScsConfig.mri_impedance_max_age_min`` that found no open or shorted contact (Abbott refuses MRI
mode while a lead looks nonfunctional, docs/devices.md 1.8). It switches stimulation off unless the
model scans with it on (``mri_stim_allowed``) and the active program is within the MRI-safe limits.
While on, programming and therapy on are refused, and a completed charge does not bring back
stimulation; exit puts the active program and therapy back as they were at entry. Must not import
``stimulator.py`` nor anything of the dashboard.
"""

from __future__ import annotations

from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    AmplitudeSet,
    CommandAck,
    EventCode,
    Message,
    ProgramSelect,
    StimProgramSet,
    TherapySet,
)

from .alarms import EventLog
from .stim_cells import PrimaryDrive, RechargeDrive
from .stim_physics import ScsConfig
from .stim_power import StimPower

__all__ = ["IN_MRI_MODE", "StimMri"]

IN_MRI_MODE = "the device is in MRI mode"
_MINUTE_MS = 60_000


class StimMri:
    """MRI mode (mixed into ``Stimulator`` ahead of ``StimPower``, whose charge end it wraps)."""

    config: ScsConfig
    now_ms: int
    events: EventLog
    cell: PrimaryDrive | RechargeDrive
    _programs: dict[int, StimProgramSet]
    _active: int
    _therapy: bool
    _battery_stopped: bool
    _readings: list[int]
    _checked_ms: int | None  # device time of the last impedance check (None: none known, an older saved state)
    # None outside MRI mode; inside, what entry found: {"program", "therapy", "battery_stopped"}, and
    # "charged" once a full charge came that would have resumed the stimulation the battery stopped
    _mri: dict[str, Any] | None

    @property
    def mri_mode(self) -> bool:
        """MRI mode is on."""
        return self._mri is not None

    def _check_mri_allows(self, message: Message) -> None:
        """STATE_CONFLICT for programming, or for turning stimulation on, while in MRI mode."""
        if self._mri is None:
            return
        if isinstance(message, StimProgramSet | AmplitudeSet | ProgramSelect):
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, f"cannot program: {IN_MRI_MODE}; end MRI mode first")
        if isinstance(message, TherapySet) and message.on and not self._therapy and not self._mri_safe():
            why = f"cannot stimulate: {IN_MRI_MODE} and this model scans with stimulation off; end MRI mode first"
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, why, "on", 1)

    def _mri_safe(self) -> bool:
        """The active program may run during a scan: the model allows it and every area is within the limits."""
        c, program = self.config, self._programs.get(self._active)
        if not c.mri_stim_allowed or program is None:
            return False
        return all(
            a.amplitude_ua <= c.mri_max_amplitude_ua
            and a.pulse_width_us <= c.mri_max_pulse_width_us
            and a.rate_hz <= c.mri_max_rate_hz
            for a in program.areas
        )

    def _require_mri_ready(self) -> None:
        """STATE_CONFLICT unless a recent impedance check found every contact within range."""
        max_age_ms = round(self.config.mri_impedance_max_age_min * _MINUTE_MS)
        age_ms = self.now_ms - self._checked_ms if self._checked_ms is not None else None
        if age_ms is None or age_ms > max_age_ms:
            limit = f"{self.config.mri_impedance_max_age_min:g} min"
            when = f"was {age_ms // _MINUTE_MS} min ago, more than {limit}" if age_ms is not None else "is not recorded"
            why = f"cannot enter MRI mode: the last impedance check {when}; run one first"
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, why, "on", 1)
        flagged = self._flagged_contacts()
        if flagged:
            contact = min(flagged)
            why = (
                f"cannot enter MRI mode: contact {contact} measured {self._readings[contact]} Ω "
                f"(lead {flagged[contact]}): MRI is not advised with a lead problem"
            )
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, why, "on", 1)

    def _set_mri_mode(self, on: bool) -> CommandAck:
        """Enter or leave MRI mode; MRI_MODE_ON / MRI_MODE_OFF carry the program and the therapy state."""
        if on == (self._mri is not None):
            return CommandAck(0)
        if on:
            self._require_mri_ready()
            self._mri = {"program": self._active, "therapy": self._therapy, "battery_stopped": self._battery_stopped}
            # A full charge during the scan must not bring stimulation back: the resume waits for the exit.
            self._battery_stopped = False
            if self._therapy and not self._mri_safe():
                self._therapy = False
                self.events.append(self.now_ms, EventCode.THERAPY_OFF)
            code = EventCode.MRI_MODE_ON
        else:
            self._restore_after_mri(self._mri)
            self._mri = None
            code = EventCode.MRI_MODE_OFF
        seq = self.events.append(self.now_ms, code, arg0=self._active, arg1=int(self._therapy)).seq
        self._evaluate()
        return CommandAck(seq)

    def _end_charge(self, full: bool) -> None:
        """A charge ends. In MRI mode a full one does not bring back the stimulation the battery stopped
        before entry (entry set that resume aside): it marks it to come back at the exit."""
        if self._mri is not None and full and self._mri["battery_stopped"] and self.config.resume_after_charge:
            self._mri["charged"] = True
        StimPower._end_charge(self, full)

    def _restore_after_mri(self, saved: dict[str, Any]) -> None:
        """Therapy as entry found it (programming was refused, so the program is the one entry found).

        Stimulation on at entry comes back on, and so does stimulation the battery had stopped if a
        full charge came during the mode; if the battery cannot stimulate now, either resumes after
        the next full charge, as when the battery itself stops it.
        """
        self._active = saved["program"]
        if self._therapy:  # an MRI-safe program ran through the scan
            return
        wanted = saved["therapy"] or saved.get("charged", False)
        if wanted and self._battery_blocks() is None:
            self._therapy = True
            self.events.append(self.now_ms, EventCode.THERAPY_ON)
        elif wanted or saved["battery_stopped"]:
            self._battery_stopped = True
