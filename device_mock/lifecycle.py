"""The therapy system's life (SPEC 4.7): TRIAL -> IMPLANTED -> EXPLANTED, or TRIAL -> TRIAL_ENDED.

``change`` applies a clinician's ``LifecycleSet`` to a model: it checks the step is one the life
allows, stops therapy when the system is removed (a trial that ends without an implant, or an
explant), closes the patient's trial (their relief report, PGIC and ODI) or starts their long-term
course at the implant, and logs LIFECYCLE_CHANGED. ``refuse_if_removed`` keeps a removed system
from being programmed: it still answers status, its logs and its diary, and takes alarm
acknowledgements.

Works on any model with ``lifecycle``, ``treatment``, ``events``, ``now_ms`` and ``apply``; must not
import the models, ``device``, ``server`` or ``cli``.
"""

from __future__ import annotations

from typing import Any

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import Actor, EventCode, Lifecycle, TherapySet

NEXT: dict[Lifecycle, tuple[Lifecycle, ...]] = {
    Lifecycle.TRIAL: (Lifecycle.IMPLANTED, Lifecycle.TRIAL_ENDED),
    Lifecycle.IMPLANTED: (Lifecycle.EXPLANTED,),
    Lifecycle.TRIAL_ENDED: (),
    Lifecycle.EXPLANTED: (),
}
REMOVED = (Lifecycle.TRIAL_ENDED, Lifecycle.EXPLANTED)
WORDS = {
    Lifecycle.TRIAL: "in a trial",
    Lifecycle.IMPLANTED: "implanted",
    Lifecycle.TRIAL_ENDED: "a trial that ended without an implant",
    Lifecycle.EXPLANTED: "explanted",
}


def change(model: Any, target: Lifecycle) -> int:
    """Move ``model`` to ``target``; the LIFECYCLE_CHANGED entry's sequence number.

    STATE_CONFLICT (naming the steps allowed) for a step the life does not take; nothing changes then.
    """
    current = Lifecycle(model.lifecycle)
    if target not in NEXT[current]:
        allowed = " or ".join(step.name for step in NEXT[current]) or "nothing: it is final"
        raise DeviceRejected(
            ErrorCode.STATE_CONFLICT,
            f"the system is {WORDS[current]}; it can go on to {allowed}",
            "lifecycle",
            int(target),
        )
    now = model.now_ms
    if target in REMOVED:  # first: the only step that can refuse, before anything else changed
        model.apply(TherapySet(False), Actor.CLINICIAN)  # logs THERAPY_OFF / PUMP_STOPPED if it was on
    treatment = model.treatment
    if treatment is not None and current is Lifecycle.TRIAL:
        treatment.patient.end_trial(now)
    if target is Lifecycle.IMPLANTED and treatment is not None:
        treatment.patient.implant(now)
    if target is Lifecycle.IMPLANTED and hasattr(model, "place_leads_afresh"):
        model.place_leads_afresh()  # a stimulator's permanent leads are placed over the pain
    model.lifecycle = target
    return model.events.append(now, EventCode.LIFECYCLE_CHANGED, arg0=int(target), arg1=int(current)).seq


def refuse_if_removed(model: Any, what: str) -> None:
    """STATE_CONFLICT for ``what`` (a command that would program the device) once it is removed."""
    lifecycle = Lifecycle(model.lifecycle)
    if lifecycle in REMOVED:
        raise DeviceRejected(
            ErrorCode.STATE_CONFLICT,
            f"{what} refused: the system is {WORDS[lifecycle]} and delivers no therapy",
            "lifecycle",
            int(lifecycle),
        )
