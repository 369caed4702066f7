"""The stimulator's MRI mode (SPEC 4.5): the entry checks, the refusals while on, the restore at exit, persistence."""

from __future__ import annotations

import json

import pytest

from device_mock.pump import Pump, PumpConfig
from device_mock.stim_mri import IN_MRI_MODE
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import (
    Actor,
    AlarmState,
    AmplitudeSet,
    Area,
    BatteryKind,
    CommandAck,
    EventCode,
    ImpedanceCheck,
    MriModeSet,
    ProgramRead,
    ProgramSelect,
    StimProgramSet,
    TherapySet,
    Waveform,
)

T0 = 1_700_000_000_000
MINUTE_MS = 60_000
DAY_MS = 86_400_000


def area(amp: int = 5000, pw: int = 300, rate: int = 50) -> Area:
    return Area(0b01, 0b10, amp, pw, rate, Waveform.TONIC, 0, 0, 0, 0)


def make(**overrides) -> Stimulator:
    """Two stored programs (1 active), therapy on; every contact 600 Ω, no measurement noise."""
    config = dict(battery_kind=BatteryKind.RECHARGEABLE, impedance_ohm=(600, 600), impedance_noise=0.0)
    stim = Stimulator(ScsConfig(**{**config, **overrides}), T0, 1)
    stim.apply(StimProgramSet(1, True, (area(),), 6000, 2))
    stim.apply(StimProgramSet(2, False, (area(3000),), 4000, 2))
    stim.apply(TherapySet(True))
    return stim


def codes(stim: Stimulator, since: int = 1) -> list[EventCode]:
    return [e.code for e in stim.events.read(since, 10**9) if e.state is AlarmState.NONE]


def refused(stim: Stimulator, message, role: Actor = Actor.CLINICIAN) -> DeviceRejected:
    """Apply a message that must be refused; the refusal must change nothing."""
    before = stim.to_state()
    with pytest.raises(DeviceRejected) as info:
        stim.apply(message, role)
    assert stim.to_state() == before
    return info.value


def test_entry_switches_stimulation_off_and_exit_restores_program_and_therapy_exactly():
    stim = make()
    stored = [stim.apply(ProgramRead(n)) for n in (1, 2)]
    seq = stim.events.last_seq
    ack = stim.apply(MriModeSet(True))
    status = stim.status()
    assert status.mri_mode and not status.therapy_on and status.tissue_power_uw == 0
    assert codes(stim, seq + 1) == [EventCode.THERAPY_OFF, EventCode.MRI_MODE_ON]
    entry = stim.events.read(ack.event_seq, 1)[0]
    assert (entry.code, entry.arg0, entry.arg1, entry.time_ms) == (EventCode.MRI_MODE_ON, 1, 0, T0)
    stim.advance_to(T0 + 40 * MINUTE_MS)
    ack = stim.apply(MriModeSet(False))
    status = stim.status()
    assert not status.mri_mode and status.therapy_on and status.active_program == 1
    assert [stim.apply(ProgramRead(n)) for n in (1, 2)] == stored
    assert codes(stim, seq + 3) == [EventCode.THERAPY_ON, EventCode.MRI_MODE_OFF]
    exit_ = stim.events.read(ack.event_seq, 1)[0]
    assert (exit_.arg0, exit_.arg1, exit_.time_ms) == (1, 1, T0 + 40 * MINUTE_MS)


def test_stimulation_off_at_entry_stays_off_at_exit_and_a_repeat_logs_nothing():
    stim = make()
    stim.apply(TherapySet(False))
    stim.apply(MriModeSet(True))
    assert stim.apply(MriModeSet(True)) == CommandAck(0)
    seq = stim.events.last_seq
    stim.apply(MriModeSet(False))
    assert codes(stim, seq + 1) == [EventCode.MRI_MODE_OFF] and not stim.status().therapy_on
    assert stim.apply(MriModeSet(False)) == CommandAck(0)


@pytest.mark.parametrize(("age_min", "max_age_min", "allowed"), [(30, 30.0, True), (31, 30.0, False), (45, 60.0, True)])
def test_entry_needs_an_impedance_check_within_the_configured_age(age_min, max_age_min, allowed):
    stim = make(mri_impedance_max_age_min=max_age_min)  # the implant's own check ran at T0
    stim.advance_to(T0 + age_min * MINUTE_MS)
    if allowed:
        stim.apply(MriModeSet(True))
        assert stim.status().mri_mode
        return
    refusal = refused(stim, MriModeSet(True))
    assert refusal.code is ErrorCode.STATE_CONFLICT and (refusal.field, refusal.value) == ("on", 1)
    assert "31 min ago, more than 30 min" in refusal.reason and "run one first" in refusal.reason
    stim.apply(ImpedanceCheck())
    stim.apply(MriModeSet(True))
    assert stim.status().mri_mode


@pytest.mark.parametrize(("fault", "word"), [("lead_open", "open"), ("lead_short", "short")])
def test_entry_is_refused_while_the_last_check_found_a_lead_problem(fault, word):
    stim = make()
    stim.inject_fault(fault, {"contact": 5})
    stim.apply(MriModeSet(True))  # the fault shows only at the next check: the last one was clean
    stim.apply(MriModeSet(False))
    stim.apply(ImpedanceCheck())
    refusal = refused(stim, MriModeSet(True))
    assert refusal.code is ErrorCode.STATE_CONFLICT
    assert f"contact 5 measured {stim.status().impedance_ohm[5]} Ω (lead {word})" in refusal.reason
    stim.inject_fault("clear_lead", {"contact": 5})
    stim.apply(ImpedanceCheck())
    stim.apply(MriModeSet(True))
    assert stim.status().mri_mode


@pytest.mark.parametrize("role", [Actor.CLINICIAN, Actor.PATIENT])
def test_in_mri_mode_programming_and_therapy_on_are_refused_but_off_and_checks_go_on(role):
    stim = make()
    stim.apply(MriModeSet(True))
    messages = [ProgramSelect(2), AmplitudeSet(0, 4000), TherapySet(True)]
    if role is Actor.CLINICIAN:
        messages.append(StimProgramSet(3, False, (area(),), 6000, 2))
    for message in messages:
        refusal = refused(stim, message, role)
        assert refusal.code is ErrorCode.STATE_CONFLICT and IN_MRI_MODE in refusal.reason
    assert stim.apply(TherapySet(False), role) == CommandAck(0)  # already off
    stim.apply(ImpedanceCheck())
    stim.apply(MriModeSet(False))
    stim.apply(ProgramSelect(2), role)
    assert stim.status().active_program == 2


def test_a_model_that_scans_with_stimulation_on_keeps_an_mri_safe_program_running():
    stim = make(mri_stim_allowed=True, mri_max_amplitude_ua=5_000)
    stim.apply(MriModeSet(True))
    assert stim.status().therapy_on and stim.events.read(stim.events.last_seq, 1)[0].arg1 == 1
    stim.apply(TherapySet(False))
    stim.apply(TherapySet(True))  # the safe program may come back on in MRI mode
    stim.apply(MriModeSet(False))
    stim.apply(AmplitudeSet(0, 5_500))  # now above the MRI-safe 5 mA
    seq = stim.events.last_seq
    stim.apply(MriModeSet(True))
    assert not stim.status().therapy_on and codes(stim, seq + 1) == [EventCode.THERAPY_OFF, EventCode.MRI_MODE_ON]
    assert "scans with stimulation off" in refused(stim, TherapySet(True)).reason


def test_a_charge_during_mri_mode_does_not_bring_back_stimulation_the_battery_stopped_but_the_exit_does():
    stim = make(auto_recharge=False)
    stim.advance_to(T0 + 60 * DAY_MS)  # the cell runs flat: the battery stops therapy
    assert not stim.status().therapy_on
    stim.apply(ImpedanceCheck())
    stim.apply(MriModeSet(True))
    stim.inject_fault("charge", {"coupling_pct": 50})
    stim.advance_to(stim.now_ms + DAY_MS)  # full again
    assert EventCode.CHARGING_COMPLETE in codes(stim) and not stim.status().therapy_on
    seq = stim.events.last_seq
    stim.apply(MriModeSet(False))
    assert codes(stim, seq + 1) == [EventCode.THERAPY_ON, EventCode.MRI_MODE_OFF] and stim.status().therapy_on


def test_an_exit_the_battery_cannot_serve_leaves_therapy_off_until_a_full_charge():
    stim = make(auto_recharge=False, quiescent_w=2e-3)  # a drain that empties the cell with stimulation off
    stim.apply(MriModeSet(True))
    stim.advance_to(T0 + 60 * DAY_MS)  # flat during the "scan"
    stim.apply(MriModeSet(False))
    assert not stim.status().therapy_on
    stim.inject_fault("charge", {"coupling_pct": 50})
    stim.advance_to(stim.now_ms + DAY_MS)
    assert stim.status().therapy_on  # resumed after the full charge, as a battery stop does


def test_mri_mode_survives_a_restart_and_an_older_saved_state_loads_without_it():
    stim = make()
    stim.apply(MriModeSet(True))
    copy = Stimulator.from_state(json.loads(json.dumps(stim.to_state())))
    assert copy.status() == stim.status() and copy.status().mri_mode
    copy.apply(MriModeSet(False))
    assert copy.status().therapy_on
    old = make().to_state()
    del old["_mri"], old["_checked_ms"]
    restored = Stimulator.from_state(old)
    assert not restored.status().mri_mode
    assert "is not recorded" in refused(restored, MriModeSet(True)).reason  # a new check is needed
    restored.apply(ImpedanceCheck())
    restored.apply(MriModeSet(True))


def test_a_pump_has_no_mri_mode():
    with pytest.raises(DeviceRejected) as info:
        Pump(PumpConfig(), T0, 1).apply(MriModeSet(True))
    assert info.value.code is ErrorCode.UNSUPPORTED
