"""The refill command: its checks, the new contents and the alarms a refill clears.

A part of ``Pump`` (a mixin over its state, see ``pump_state``); the judgements themselves (the
residual check, drug stability) are pure functions in ``pump_refill``, and ziconotide's titration
rule in ``pump_doses``. Must not import ``pump.py`` nor anything of the dashboard.
"""

from __future__ import annotations

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    BolusKind,
    Drug,
    DrugConcentration,
    EventCode,
    Refill,
    RefillReply,
)

from . import pump_doses as doses
from . import pump_dosing as dosing
from . import pump_refill as refill
from .model import require
from .pump_dosing import UNITS_PER_UL
from .pump_state import PumpParts

__all__ = ["PumpRefilling"]


class PumpRefilling(PumpParts):
    """Refills and the reservoir alarms they clear (mixed into ``Pump``)."""

    def _apply_refill(self, m: Refill) -> RefillReply:
        drained = self.totals.since_refill
        drugs, expected = self._validate_refill(m)
        # The last check, so nothing has changed yet if it refuses.
        raised = self._check_ziconotide(drugs, self.program.schedule.daily_ul(), refill=True)
        old_drugs = self.program.drugs
        discrepancy = m.withdrawn_ul - expected
        flagged = refill.residual_flag(discrepancy, drained, self.config) is not None
        self.totals.refills += 1
        self.totals.fill_ul, self.totals.since_refill, self.totals.held_units = m.added_ul, 0, 0
        self.totals.leak_units = 0
        self.program.drugs = drugs
        if raised:
            self.totals.ziconotide_raised_ms = self.now_ms
        self._record_fill(drugs)
        self.flow_error = self._draw_flow_error()  # a new fill, a new error
        seq = self.events.append(self.now_ms, EventCode.REFILL, arg0=m.added_ul, arg1=discrepancy).seq
        if flagged:
            self.events.append(self.now_ms, EventCode.REFILL_DISCREPANCY, arg0=m.added_ul, arg1=discrepancy)
        self._clear_reservoir_alarms()
        if m.bridge_bolus:
            cfg = self.config
            self._start_bolus(BolusKind.BRIDGE, cfg.bridge_volume_ul, cfg.bridge_duration_min, old_drugs)
        self._check()
        return RefillReply(seq, expected, discrepancy, m.added_ul, self.projections().next_refill_ms)

    def _check_ziconotide(self, drugs: tuple[DrugConcentration, ...], daily_ul: int, refill: bool) -> bool:
        """Ziconotide's titration rule for new contents (``refill``: the refusal names the concentration)
        or a new daily volume (the refusal names the rate); True if the daily dose rises."""
        index, conc = next(((i, d.conc_ng_per_ml) for i, d in enumerate(drugs) if d.drug is Drug.ZICONOTIDE), (0, 0))
        old_conc = next((d.conc_ng_per_ml for d in self.program.drugs if d.drug is Drug.ZICONOTIDE), 0)
        old = doses.daily_ng(old_conc, self.program.schedule.daily_ul())
        new = doses.daily_ng(conc, daily_ul)
        if refill:  # the limit is a concentration
            field, value, limit_of = f"drugs[{index}].conc_ng_per_ml", conc, lambda ng: ng * 1000 // max(daily_ul, 1)
        else:  # the limit is a rate
            field, value, limit_of = "rate_ul_per_day", daily_ul, lambda ng: ng * 1000 // max(conc, 1)
        last = self.totals.ziconotide_raised_ms
        return doses.check_ziconotide_change(old, new, last, self.now_ms, field, value, limit_of, self.config)

    def _record_fill(self, drugs: tuple[DrugConcentration, ...]) -> None:
        """Date the new contents' stability limit, then remember them as held (docs/devices.md 2.6)."""
        totals = self.totals
        held = {Drug(d) for d in totals.drugs_held}
        totals.stable_until_ms = refill.stable_until_ms(self.now_ms, drugs, held, self.config)
        totals.drugs_held = sorted(held | {d.drug for d in drugs})

    def _validate_refill(self, m: Refill) -> tuple[tuple[DrugConcentration, ...], int]:
        """Every check of a refill; returns the new contents and the residual the device expected."""
        cfg = self.config
        if self.bolus is not None:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, "refill during a bolus: wait for it to end")
        if not m.concentration_confirmed:
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, "confirm the new concentrations", "concentration_confirmed")
        require("withdrawn_ul", m.withdrawn_ul, 0, cfg.capacity_ul, "µL")
        require("added_ul", m.added_ul, 0, cfg.capacity_ul, "µL")
        drugs = dosing.validate_drugs(m.drugs, self.program.worst_daily_ul(), cfg)
        expected = self.reservoir_ul
        discrepancy = m.withdrawn_ul - expected
        reason = refill.residual_flag(discrepancy, self.totals.since_refill, cfg)
        if reason is not None and not m.discrepancy_accepted:
            allowed = min(cfg.refill_discrepancy_ul, refill.flow_band_ul(self.totals.since_refill, cfg))
            bound = expected + (allowed if discrepancy > 0 else -allowed)
            reason += ": investigate, then accept it"
            raise DeviceRejected(ErrorCode.STATE_CONFLICT, reason, "withdrawn_ul", m.withdrawn_ul, bound)
        if m.bridge_bolus:
            self._require_bolus_possible(cfg.bridge_volume_ul, m.added_ul, ignore_reservoir=True)
            self._require_within_caps(cfg.bridge_volume_ul)  # it pushes out the old contents
        return drugs, expected

    def _clear_reservoir_alarms(self) -> None:
        """Clear LOW/EMPTY once the reservoir is above them again (a refill, a lower alarm volume)."""
        now, reservoir, alarm_ul = self.now_ms, self.reservoir_units, self.program.alarm_volume_ul
        if reservoir > alarm_ul * UNITS_PER_UL and self.alarms.is_active(EventCode.LOW_RESERVOIR):
            self.alarms.clear_condition(EventCode.LOW_RESERVOIR, now, self.reservoir_ul, alarm_ul)
            self.reached.low = 0
        if reservoir > 0 and self.alarms.is_active(EventCode.EMPTY_RESERVOIR):
            self.alarms.clear_condition(EventCode.EMPTY_RESERVOIR, now, self.reservoir_ul, alarm_ul)
            if self.alarms.is_active(EventCode.EMPTY_RESERVOIR):
                # EMPTY latches until acknowledged; the refill is the clinician's answer to it.
                self.alarms.acknowledge(EventCode.EMPTY_RESERVOIR, now)
            self.reached.empty = 0
