"""What a stimulator lets each role change between programming sessions (SPEC 3.8).

Pure rules over stored programs: selecting a stored program and changing one area's amplitude,
with the patient held to the program's patient maximum and never past the charge-density limit
(only a clinician can override it, SPEC 4.4). The stimulator model applies what these return; the
clinician's own limits (device range, steps, compliance, Shannon, charge density, contacts) are
checked by the model on the program they produce, so both roles meet the same device limits.

Imports ``protocols``, ``stim_physics`` and ``stim_safety``; never ``stimulator`` (which imports this).
"""

from __future__ import annotations

from dataclasses import replace

from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import Actor, AmplitudeSet, Area, StimProgramSet

from .stim_physics import ScsConfig, charge_density, split
from .stim_safety import most_for_density


def stored_program(programs: dict[int, StimProgramSet], number: int, max_programs: int) -> StimProgramSet:
    """The stored program ``number``: OUT_OF_RANGE outside 1..max_programs, STATE_CONFLICT if none is stored."""
    if not 1 <= number <= max_programs:
        raise DeviceRejected(
            ErrorCode.OUT_OF_RANGE, f"program numbers are 1 to {max_programs}", "program", number, max_programs
        )
    program = programs.get(number)
    if program is None:
        stored = ", ".join(str(n) for n in sorted(programs)) or "none"
        raise DeviceRejected(
            ErrorCode.STATE_CONFLICT, f"program {number} is not stored (stored: {stored})", "program", number
        )
    return program


def with_amplitude(
    program: StimProgramSet | None, request: AmplitudeSet, role: Actor, config: ScsConfig
) -> StimProgramSet:
    """``program`` with the requested area's amplitude changed, or the refusal of the request.

    Either role goes up to the program's patient maximum, no further (the clinician raises that
    maximum with ``StimProgramSet``). A patient cannot raise an area above the charge-density limit,
    whatever the program's ``density_override`` (lowering one is always allowed). The result still
    has to pass the device's own limits, which the caller checks.
    """
    if program is None:
        raise DeviceRejected(ErrorCode.STATE_CONFLICT, "no active program: store and select one first", "area")
    count = len(program.areas)
    if not 0 <= request.area < count:
        raise DeviceRejected(
            ErrorCode.OUT_OF_RANGE,
            f"program {program.program} has {count} area{'s' if count != 1 else ''}, numbered from 0",
            "area",
            request.area,
            count - 1,
        )
    cap = program.patient_amp_max_ua
    if request.amplitude_ua > cap:
        then = "" if role is Actor.PATIENT else "; reprogram it to raise the maximum"
        raise DeviceRejected(
            ErrorCode.OUT_OF_RANGE,
            f"{request.amplitude_ua / 1000:g} mA is above the patient maximum of {cap / 1000:g} mA "
            f"set for program {program.program}{then}",
            "amplitude_ua",
            request.amplitude_ua,
            cap,
        )
    areas = list(program.areas)
    if role is Actor.PATIENT:
        _refuse_patient_density(areas[request.area].amplitude_ua, request, areas[request.area], config)
    areas[request.area] = replace(areas[request.area], amplitude_ua=request.amplitude_ua)
    return replace(program, areas=tuple(areas))


def _refuse_patient_density(old_ua: int, request: AmplitudeSet, area: Area, config: ScsConfig) -> None:
    """OUT_OF_RANGE for a patient's rise above the charge-density limit: only a clinician overrides it."""
    n, limit = split(area), config.charge_density_limit
    density = charge_density(request.amplitude_ua, area.pulse_width_us, n, config.contact_area_cm2)
    if density <= limit or request.amplitude_ua <= old_ua:
        return
    most = most_for_density(area.pulse_width_us, n, config)
    raise DeviceRejected(
        ErrorCode.OUT_OF_RANGE,
        f"{request.amplitude_ua / 1000:g} mA gives {density:.1f} µC/cm²/phase, above the {limit:g} µC/cm²/phase "
        f"limit only the clinician can override: at most {most / 1000:g} mA",
        "amplitude_ua",
        request.amplitude_ua,
        most,
    )
