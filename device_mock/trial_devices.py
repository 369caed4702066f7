"""Trial devices (``implant-mock --device scs-trial|pump-trial``) and the patients devices treat.

- ``scs-trial``: an external trial stimulator on two 8-contact percutaneous leads: the implant's
  stimulation engine and limits, an external rechargeable pack that lasts days (the patient charges
  it at "recharge now"), faults ``lead_migration`` and ``lead_disconnected``; it starts programmed
  as a clinician would set it for its patient (``patients.cohort.trial_program``), therapy on.
- ``pump-trial``: an intrathecal trial through an external pump and a temporary catheter: a small
  reservoir of a trial dilution (morphine, or baclofen for a spasticity patient), stopped, so the
  clinician gives the test doses (``Bolus``) or starts a continuous infusion (``DosingSet``).

Both start in lifecycle TRIAL with a virtual patient who brings a week of baseline diary; any device
treats one with ``implant-mock --patient`` (already implanted). Figures are [E] unless tagged.

Imports the models' configs, ``treatment`` and ``patients``; must not import ``cli`` or ``server``.
"""

from __future__ import annotations

from typing import Any

from protocols.messages import Drug, DrugConcentration, EventCode, Lifecycle, TherapySet

from .model import DeviceModel
from .patients.cohort import trial_program
from .patients.config import patient_config
from .patients.profile import Indication, draw_profile
from .treatment import Treatment

BASE_KIND = {"scs-trial": "scs", "pump-trial": "pump"}
SERIAL_PREFIX = {"scs-trial": "ETS", "pump-trial": "ITT"}  # serials hold 16 characters
TRIAL_CONFIG: dict[str, dict[str, Any]] = {
    "scs-trial": {
        "model_name": "EMU-ETS16",
        "contacts": 16,  # two 8-contact percutaneous leads (docs/devices.md 1.4) [V]
        "battery_kind": "RECHARGEABLE",
        # an external pack of ~300 J: 3-4 days at a 5 mA tonic program, charged in half an hour [E]
        "rechargeable": {"capacity_j": 300.0, "fade_per_year": 0.0, "fade_per_cycle": 0.0},
        "impedance_drift": 0.0,  # temporary leads: days, not months [E]
    },
    "pump-trial": {
        "model_name": "EMU-ITT5",
        "capacity_ul": 5_000,  # a small external reservoir [E]
        "initial_fill_ul": 5_000,
        "alarm_volume_ul": 1_000,  # the lowest alarm volume the model programs [E]
        "initial_rate_ul_per_day": 48,  # the lowest rate; the trial starts stopped (below) [E]
        # a trial dilution: morphine 0.5 mg/mL gives the 25-400 ug test doses in 50-800 uL [E]
        "initial_drugs": (DrugConcentration(Drug.MORPHINE, 500_000),),
    },
}
# A spasticity patient's trial holds baclofen 50 ug/mL, the screening product (docs/patients.md) [V]
BACLOFEN_TRIAL = (DrugConcentration(Drug.BACLOFEN, 50_000),)


def base_kind(kind: str) -> str:
    """The device kind a model of ``kind`` is ("scs" or "pump")."""
    return BASE_KIND.get(kind, kind)


def config_overrides(kind: str, seed: int, index: int, patient_table: dict[str, Any]) -> dict[str, Any]:
    """The config fields a fresh ``kind`` device starts from (a scenario's ``[config]`` goes on top)."""
    overrides = dict(TRIAL_CONFIG.get(kind, {}))
    if kind == "pump-trial":
        profile = draw_profile(seed, index, "pump", patient_config(patient_table))
        if profile.indication is Indication.SPASTICITY:
            overrides["initial_drugs"] = BACLOFEN_TRIAL
    return overrides


def treat(
    model: DeviceModel, kind: str, seed: int, index: int, start_ms: int, patient_table: dict[str, Any], patient: bool
) -> None:
    """Give a fresh ``model`` its patient: always for a trial kind (which starts in TRIAL), with
    ``patient`` for an implant. A trial stimulator is programmed for its patient, therapy on."""
    trial = kind in BASE_KIND
    if not (trial or patient):
        return
    model.treatment = Treatment.new(base_kind(kind), seed, index, start_ms, patient_table, trial)
    if not trial:
        return
    model.lifecycle = Lifecycle.TRIAL
    # the trial's start, as a host finds it in the log: old stage 0, a new system (SPEC 4.7)
    model.events.append(start_ms, EventCode.LIFECYCLE_CHANGED, arg0=int(Lifecycle.TRIAL), arg1=0)
    if kind == "scs-trial":
        program = trial_program(model.treatment.patient.profile, model.treatment.config, "tonic")
        model.apply(program)
        model.apply(TherapySet(True))
    else:
        model.apply(TherapySet(False))  # test doses are given as boluses, or an infusion is started
