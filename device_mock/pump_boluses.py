"""The pump's boluses: starting and ending one, and every rule that may refuse it.

A part of ``Pump`` (a mixin over its state, see ``pump_state``): the delivery conditions, each
drug's 24-hour cap with the basal dose and the boluses of the last 24 h, the patient's lockout and
daily maximum (a denial is logged). Must not import ``pump.py`` nor anything of the dashboard.
"""

from __future__ import annotations

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    Bolus,
    BolusKind,
    BolusReply,
    DrugConcentration,
    EventCode,
    Lifecycle,
)

from . import pump_doses as doses
from . import pump_dosing as dosing
from .pump_dosing import DAY_MS, MINUTE_MS, UNITS_PER_UL, ActiveBolus
from .pump_state import PumpParts

__all__ = ["PumpBoluses"]


class PumpBoluses(PumpParts):
    """Bolus commands and their checks (mixed into ``Pump``)."""

    def _start_bolus(
        self, kind: BolusKind, volume_ul: int, duration_min: int, drugs: tuple[DrugConcentration, ...] | None = None
    ) -> BolusReply:
        """Start a bolus and record the drug it carries (``drugs``: the contents it pushes, if not the reservoir's)."""
        self.bolus = ActiveBolus(kind, volume_ul, self.now_ms, self.now_ms + duration_min * MINUTE_MS)
        given = doses.recent(self.totals.boluses_given, self.now_ms)
        carried = self.program.drugs if drugs is None else drugs
        self.totals.boluses_given = given + doses.given_rows(self.now_ms, volume_ul, carried)
        seq = self.events.append(self.now_ms, EventCode.BOLUS_STARTED, arg0=volume_ul, arg1=kind).seq
        if self.treatment is not None and self.lifecycle is Lifecycle.TRIAL:
            self.treatment.watch_test_dose(self.now_ms)  # an intrathecal test dose is watched for a day
        return BolusReply(seq, volume_ul, self.bolus.end_ms)

    def _end_bolus(self) -> None:
        """Finish (or cut short) the running bolus; BOLUS_COMPLETE carries the µL actually pumped."""
        if self.bolus is None:
            return
        pumped = self.bolus.drained_by(self.now_ms) // UNITS_PER_UL
        self.events.append(self.now_ms, EventCode.BOLUS_COMPLETE, arg0=pumped, arg1=self.bolus.kind)
        self.bolus = None

    def _require_bolus_possible(
        self, volume_ul: int, reservoir_ul: int, ignore_reservoir: bool = False, from_stopped: bool = False
    ) -> None:
        blocker = self.delivery_blocker(ignore_reservoir, bolus_only=from_stopped)
        if blocker is None and self.bolus is not None:
            blocker = "a bolus is already running"
        if blocker is not None:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, f"no bolus: {blocker}")
        if volume_ul > reservoir_ul:
            raise DeviceRejected(
                ErrorCode.STATE_CONFLICT, "bolus larger than the reservoir holds", "volume_ul", volume_ul, reservoir_ul
            )

    def _basal_ul_per_day(self) -> int:
        """The programmed basal volume of a whole day (0 while the pump is stopped)."""
        return 0 if self.stopped else self.program.schedule.daily_ul()

    def _require_within_caps(self, volume_ul: int) -> None:
        """Refuse a bolus that would take a drug past its 24-hour cap with the basal dose and the
        boluses of the last 24 h (every kind counts)."""
        given = doses.recent(self.totals.boluses_given, self.now_ms)
        doses.check_bolus_cap(volume_ul, self.program.drugs, self._basal_ul_per_day(), given, self.config)

    def _require_patient_allowance(self) -> None:
        """Enforce lockout and boluses per 24 h; a denial is logged and refused."""
        now, starts = self.now_ms, self.totals.patient_boluses
        reason, wait = dosing.patient_bolus_wait(starts, now, self.program.patient_bolus)
        if not reason:
            try:
                self._require_within_caps(self.program.patient_bolus.dose_ul)
            except DeviceRejected as over:
                self.events.append(now, EventCode.PATIENT_BOLUS_DENIED, arg0=3, arg1=0)
                raise DeviceRejected(ErrorCode.STATE_CONFLICT, f"patient bolus denied: {over.reason}") from None
        if reason:
            minutes = dosing.ceil_div(wait, MINUTE_MS)
            self.events.append(now, EventCode.PATIENT_BOLUS_DENIED, arg0=reason, arg1=minutes)
            what = "the daily maximum is reached" if reason == 2 else "lockout"
            message = f"patient bolus denied: {what}, allowed in {minutes} min"
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, message, retry_after_ms=wait)
        self.totals.patient_boluses = [t for t in starts if t + DAY_MS > now] + [now]

    def _apply_bolus(self, m: Bolus) -> BolusReply:
        if m.kind == BolusKind.PATIENT:
            if not self.program.patient_bolus.enabled:
                raise DeviceRejected(ErrorCode.STATE_CONFLICT, "patient bolus is not enabled", "kind", m.kind)
            volume, duration = dosing.patient_bolus_size(m.volume_ul, m.duration_min, self.program.patient_bolus)
        else:
            dosing.validate_bolus_size(m.volume_ul, m.duration_min, self.config, priming=m.kind == BolusKind.PRIMING)
            volume, duration = m.volume_ul, m.duration_min
        # Only the clinician gives a single bolus from a stopped pump; the patient's needs therapy running.
        self._require_bolus_possible(volume, self.reservoir_ul, from_stopped=m.kind == BolusKind.CLINICIAN)
        if m.kind != BolusKind.PATIENT:  # the patient's is judged with its allowance, and a denial logged
            self._require_within_caps(volume)
        if m.kind == BolusKind.PATIENT:
            self._require_patient_allowance()
        return self._start_bolus(BolusKind(m.kind), volume, duration)
