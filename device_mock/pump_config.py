"""The pump's tunables: ``PumpConfig``, per-drug limits and the battery cell, with their sources.

Every number tagged [L], [E] or [A] in docs/devices.md part 2 is a field here, so a scenario's
``[config]`` table can override it (drug lists may be given as tables with the drug by name).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any

from protocols.messages import Drug, DrugConcentration

from .battery import PrimaryCellConfig


class PumpMechanism(IntEnum):
    """How the pump meters drug, which decides what a magnetic field does to it (docs/devices.md 2.8)."""

    PERISTALTIC = 1  # a motor-driven roller (SynchroMed-style): the magnet stalls the motor
    VALVE_GATED = 2  # valves around an accumulator fed by a pressurised reservoir (Prometra-style)


@dataclass(frozen=True)
class DrugLimit:
    """Highest concentration and daily dose the pump accepts for a drug (0 = no daily cap).

    ``stability_days`` caps the next refill date after a fill (0 = no published limit);
    ``first_fill_stability_days`` replaces it for the first fill of a drug the pump never held (0 = same).
    ``advised_conc_ng_per_ml`` is the advised ceiling (0 = none): a stronger fill is accepted only at
    the exact strength of a labelled product (``labelled_conc_ng_per_ml``), up to ``max_conc_ng_per_ml``.
    """

    drug: Drug
    max_conc_ng_per_ml: int
    max_dose_ng_per_day: int = 0
    stability_days: float = 0.0
    first_fill_stability_days: float = 0.0
    advised_conc_ng_per_ml: int = 0
    labelled_conc_ng_per_ml: tuple[int, ...] = ()

    def __post_init__(self) -> None:  # after a JSON round trip the labelled strengths are a list
        object.__setattr__(self, "labelled_conc_ng_per_ml", tuple(int(c) for c in self.labelled_conc_ng_per_ml))


DEFAULT_DRUG_LIMITS = (
    # Morphine: PACC advises at most ~20 mg/mL and ~15 mg/day [L]; Infumorph is labelled at 10 and
    # 25 mg/mL [V 25, L 10], so 25 mg/mL is accepted as that product only. Stable 90 days [V UW nursing].
    DrugLimit(Drug.MORPHINE, 25_000_000, 15_000_000, 90.0, 0.0, 20_000_000, (10_000_000, 25_000_000)),
    DrugLimit(Drug.HYDROMORPHONE, 15_000_000, 10_000_000),  # PACC ~15 mg/mL, ~10 mg/day [L]
    DrugLimit(Drug.BUPIVACAINE, 30_000_000, 20_000_000),  # PACC ~30 mg/mL [L]; top of 6-20 mg/day [V aneskey]
    # Clonidine: commercial 100/500 µg/mL, 1 mg/mL ceiling [E]; top of 250-2,000 µg/day [V aneskey]
    DrugLimit(Drug.CLONIDINE, 1_000_000, 2_000_000),
    # Ziconotide: 40 days in a new pump, 84 days later (undiluted) [L Prialt labeling]
    DrugLimit(Drug.ZICONOTIDE, 100_000, 19_200, 84.0, 40.0),  # 25/100 µg/mL [V/L]; max 19.2 µg/day [V]
    # Baclofen: up to 2,000 µg/mL [V]; stable 6 months [V 2004 data]; maintenance mostly 300-800 µg/day
    # with a wide range [L]: the cap is 2,000 µg/day [E].
    DrugLimit(Drug.BACLOFEN, 2_000_000, 2_000_000, 180.0),
    DrugLimit(Drug.SUFENTANIL, 50_000, 100_000),  # commercial 50 µg/mL [E]; top of 10-100 µg/day [V aneskey]
    # Fentanyl: commercial 50 µg/mL [E]; no daily figure in our sources: sufentanil's 100 µg/day at a
    # potency ratio of about 5 gives 500 µg/day [E].
    DrugLimit(Drug.FENTANYL, 50_000, 500_000),
)


# Sized so 0.5 mL/day lasts ~6.5 years, 2 mL/day ~5 and 0.048 mL/day reaches the 7-year cap first [E].
PUMP_CELL = PrimaryCellConfig(
    capacity_j=20_000.0,  # [E] ~1.7 Ah at 3.2 V
    nominal_power_w=98e-6,  # drain at 0.5 mL/day: the ERI reserve lasts 90 days there [E]
    eri_reserve_days=90.0,  # ERI -> pump stops ~90 days later [V SynchroMed II]
    max_life_years=7.0,  # hard shutdown at 7 years [V SynchroMed II]
)
# Replacement is recommended about 6 months before the pump stops [V Medtronic UK drug-pump replacement page]:
# 182 days, half a year rounded down to whole days [E].
REPLACEMENT_ADVISED_DAYS = 182.0


@dataclass(frozen=True)
class PumpConfig:
    """Every tunable of the pump, with its docs/devices.md source and tag."""

    model_name: str = "EMU-ITP-20"
    serial: str = "ITP0000001"
    firmware: str = "1.0.0"
    capacity_ul: int = 20_000  # 20 or 40 mL [V 2.1]
    initial_fill_ul: int = 20_000  # full pump at implant [E]
    initial_rate_ul_per_day: int = 500  # 20 mL at 0.5 mL/day, monthly refills [V 2.3 aneskey]
    initial_drugs: tuple[DrugConcentration, ...] = (
        DrugConcentration(Drug.MORPHINE, 10_000_000),  # 10 mg/mL [L 2.3]
        DrugConcentration(Drug.BUPIVACAINE, 20_000_000),  # 20 mg/mL: 10 mg/day at 0.5 mL/day [V 2.3 dose range]
    )
    alarm_volume_ul: int = 2_000  # recommended low-reservoir alarm [V 2.2]
    min_alarm_ul: int = 1_000  # programmable range [E]; 4 mL used clinically [V 2.2]
    max_alarm_ul: int = 10_000  # [E]
    min_rate_ul_per_day: int = 48  # ~0.048 mL/day [L 2.2]
    max_rate_ul_per_day: int = 24_000  # ~24 mL/day [L 2.2]
    flow_accuracy: float = 0.145  # ±14.5 % labelled accuracy [V 2.2]
    flow_error_mean: float = 0.01  # +1 % vs programmed at 6 months [V Wesemann 2014]
    flow_error_sd: float = 0.03  # spread per refill [E]
    refill_discrepancy_ul: int = 2_000  # investigate a residual off by > 2 mL [V ASRA 2017]
    max_bolus_ul: int = 5_000  # [E]
    max_bolus_duration_min: int = 1_440  # [E]
    max_bolus_rate_ul_per_day: int = 24_000  # same ceiling as the basal flow range [L]
    # A priming bolus fills pump tubing and catheter at the high flow [V Medtronic 8637 priming-bolus
    # labeling]; its rate is not published in our sources: 10 mL/h [E].
    max_priming_rate_ul_per_day: int = 240_000
    # Ziconotide titration: steps of at most 2.4 µg/day [V aneskey]; at most 2-3 rises a week, so
    # 48 h between rises [E after the Prialt label's titration advice].
    ziconotide_step_ng_per_day: int = 2_400
    ziconotide_min_interval_h: float = 48.0
    bridge_volume_ul: int = 250  # pump tubing + catheter dead volume [E]
    bridge_duration_min: int = 60  # [E]
    min_ptm_dose_ul: int = 1  # [E]; myPTM limits not published (docs/devices.md known gaps)
    max_ptm_dose_ul: int = 1_000  # [E]
    max_ptm_duration_min: int = 240  # [E]
    min_ptm_lockout_min: int = 10  # [E]
    max_ptm_lockout_min: int = 1_440  # [E]
    max_ptm_per_day: int = 24  # [E]
    drug_limits: tuple[DrugLimit, ...] = DEFAULT_DRUG_LIMITS
    cell: PrimaryCellConfig = PUMP_CELL
    replacement_advised_days: float = REPLACEMENT_ADVISED_DAYS  # REPLACEMENT_ADVISED this long before the stop
    quiescent_power_w: float = 88e-6  # electronics, telemetry, alarms [E]
    motor_j_per_ul: float = 1.7e-3  # motor strokes per µL pumped [E]
    # One receiver wake-up for a frame outside the open session (R10); docs/devices.md 2.7 names telemetry
    # as a longevity driver but gives no figure. Same radio assumption as the stimulator: ~25 ms at
    # 2 mW [A]. A flood at the 50 frames/s budget then costs 2.5 mW, ~28x the quiescent draw.
    wake_j: float = 50e-6
    next_refill_margin_days: float = 7.0  # refill this long before the refill threshold is reached [E]
    # The refill-threshold rule of the next refill date: the residual it aims at (0 = the programmed
    # low-reservoir alarm volume) and whether every allowed patient bolus is assumed taken. Prometra
    # PTC: 3.0 mL with all boluses used, no margin [V PTC guide p5].
    refill_threshold_ul: int = 0
    refill_threshold_all_boluses: bool = True
    # The sounder: critical alarms (HIGH) a 3 s dual tone, non-critical (MEDIUM) a 1 s single tone
    # repeating about hourly [V SynchroMed II product advisory]; critical repeats about every
    # 10 min [L]. LOW-priority alarms (telemetry flood, lockout) do not sound [E].
    critical_tone_ms: int = 3_000
    critical_repeat_s: int = 600
    noncritical_tone_ms: int = 1_000
    noncritical_repeat_s: int = 3_600
    # Magnetic fields (2.8). A SynchroMed-style pump's motor stops in the magnet and normally restarts
    # when the field ends; delays of 2 to 24 h have been reported [V Medtronic MRI guidelines]. A
    # Prometra II's flow-activated valve shuts flow in a strong field, letting at most 10 µL pass [V
    # Prometra II IFU]; the flow while the field holds the valves open is not published [E]: 100 µL/min,
    # so the 10 µL pass in 6 s. A scan without a length lasts 30 min [E, after Abbott's 30 min of active
    # scanning per session for an SCS, A].
    mechanism: PumpMechanism = PumpMechanism.PERISTALTIC
    mri_resume_delay_min: float = 0.0
    fav_leak_ul: int = 10
    fav_surge_ul_per_day: int = 144_000
    mri_scan_min: float = 30.0

    def __post_init__(self) -> None:
        mechanism = self.mechanism
        if isinstance(mechanism, str):
            if mechanism.upper() not in PumpMechanism.__members__:
                valid = ", ".join(m.lower() for m in PumpMechanism.__members__)
                raise ValueError(f"mechanism {mechanism!r}: valid: {valid}")
            mechanism = PumpMechanism[mechanism.upper()]
        object.__setattr__(self, "mechanism", PumpMechanism(mechanism))
        if any(isinstance(d, dict) for d in self.initial_drugs):  # a scenario's [config] gives tables
            object.__setattr__(self, "initial_drugs", drugs_from(list(self.initial_drugs)))
        if isinstance(self.cell, dict):
            object.__setattr__(self, "cell", PrimaryCellConfig(**{**asdict(PUMP_CELL), **self.cell}))
        if not 0 < self.initial_fill_ul <= self.capacity_ul:
            raise ValueError(f"initial fill {self.initial_fill_ul} µL outside 1..{self.capacity_ul}")
        if not self.min_rate_ul_per_day <= self.initial_rate_ul_per_day <= self.max_rate_ul_per_day:
            raise ValueError(f"initial rate {self.initial_rate_ul_per_day} µL/day outside the flow range")
        if not self.min_alarm_ul <= self.alarm_volume_ul <= min(self.max_alarm_ul, self.capacity_ul):
            raise ValueError(f"alarm volume {self.alarm_volume_ul} µL outside its range")
        if not 0 <= self.refill_threshold_ul <= self.capacity_ul:
            raise ValueError(f"refill threshold {self.refill_threshold_ul} µL outside 0..{self.capacity_ul}")
        if not 0 < self.critical_tone_ms < self.critical_repeat_s * 1000:
            raise ValueError(f"critical tone {self.critical_tone_ms} ms: not shorter than its repeat interval")
        if not 0 < self.noncritical_tone_ms < self.noncritical_repeat_s * 1000:
            raise ValueError(f"non-critical tone {self.noncritical_tone_ms} ms: not shorter than its repeat interval")
        if self.wake_j < 0:
            raise ValueError(f"wake_j {self.wake_j} J: a wake-up cannot give energy back")
        if self.fav_leak_ul < 0 or self.fav_surge_ul_per_day <= 0:
            raise ValueError("fav_leak_ul must be 0 or more and fav_surge_ul_per_day positive")
        if self.mri_resume_delay_min < 0 or self.mri_scan_min < 0:
            raise ValueError("mri_resume_delay_min and mri_scan_min cannot be negative")
        if self.replacement_advised_days <= 0:
            raise ValueError(f"replacement_advised_days {self.replacement_advised_days}: must come before the stop")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PumpConfig:
        """Rebuild from ``to_dict`` output (also after a JSON round trip)."""
        values = dict(data)
        values["initial_drugs"] = drugs_from(data["initial_drugs"])
        values["drug_limits"] = tuple(DrugLimit(**{**d, "drug": Drug(d["drug"])}) for d in data["drug_limits"])
        values["cell"] = PrimaryCellConfig(**data["cell"])
        return cls(**values)


def drugs_from(items: list[Any]) -> tuple[DrugConcentration, ...]:
    """Drug contents from their ``asdict`` form or a scenario table (drug by value or by name)."""
    contents = []
    for item in items:
        if isinstance(item, DrugConcentration):
            contents.append(item)
            continue
        drug = item["drug"]
        try:
            drug = Drug[drug.upper()] if isinstance(drug, str) else Drug(drug)
        except (KeyError, ValueError):
            raise ValueError(f"unknown drug {drug!r}; valid: {', '.join(d.name for d in Drug)}") from None
        contents.append(DrugConcentration(drug, int(item["conc_ng_per_ml"])))
    return tuple(contents)
