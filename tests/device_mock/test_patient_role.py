"""The patient's controller (SPEC 3.8): a second pairing key, a session role, and what each role may do.

A real ``Device`` (stimulator or pump model, endpoint, event log) served on a loopback pair to the
project's ``DeviceClient``; the device's clock is a manual one, so nothing moves unless a test says so.
"""

from __future__ import annotations

import contextlib
import random

import pytest

from device_mock.clock import ManualClock
from device_mock.device import Device
from device_mock.pump import Pump, PumpConfig
from device_mock.state import StateStore
from device_mock.stimulator import ScsConfig, Stimulator
from protocols.auth import DeviceSessions, open_proof
from protocols.client import DeviceClient
from protocols.codec import encode_payload
from protocols.errors import DeviceRejected, ErrorCode, PairingKeyError
from protocols.messages import (
    Actor,
    AmplitudeSet,
    Area,
    BatteryKind,
    Bolus,
    BolusKind,
    ChargingSet,
    CommandFate,
    CommandQuery,
    DosingMode,
    DosingSet,
    EventCode,
    ImpedanceCheck,
    PatientBolusSettings,
    ProgramRead,
    ProgramReply,
    ProgramSelect,
    StimProgramSet,
    TherapySet,
    Waveform,
)
from protocols.replies import request_digest
from protocols.transport import LoopbackPair
from tests.fakes import EndpointThread

T0 = 1_767_225_600_000
CLINICIAN_KEY = bytes(range(32))
PATIENT_KEY = bytes(range(32, 64))
TONIC = Area(0b0001, 0b0110, 3000, 300, 50, Waveform.TONIC, 0, 0, 0, 0)


@contextlib.contextmanager
def served(model):
    """The model served as a device holding both keys; yields connect(key) -> a client with a session."""
    device = Device(model, ManualClock(T0), CLINICIAN_KEY, patient_key=PATIENT_KEY, rng=random.Random(5).randbytes)
    pairs: list[tuple[LoopbackPair, EndpointThread]] = []

    def connect(key: bytes) -> DeviceClient:
        pair = LoopbackPair(timeout=0.02)
        pairs.append((pair, EndpointThread(pair.device, device.endpoint).start()))
        client = DeviceClient(pair.host, key, timeout=0.5)
        client.open_session()
        return client

    try:
        yield connect
    finally:
        for pair, server in pairs:
            pair.close()
            server.stop()


def stimulator() -> Stimulator:
    stim = Stimulator(ScsConfig(battery_kind=BatteryKind.RECHARGEABLE), T0, 1)
    stim.apply(StimProgramSet(1, True, (TONIC,), 4000, 2))
    stim.apply(StimProgramSet(2, False, (TONIC,), 5000, 2))
    return stim


def refused(client: DeviceClient, message) -> DeviceRejected:
    with pytest.raises(DeviceRejected) as info:
        client.request(message)
    return info.value


def test_the_key_an_open_proves_decides_the_role_and_equal_keys_are_refused():
    sessions = DeviceSessions(CLINICIAN_KEY, rng=random.Random(1).randbytes, patient_key=PATIENT_KEY)
    nonce_a, nonce_b = bytes(16), bytes([1] * 16)
    assert sessions.open(nonce_a, open_proof(PATIENT_KEY, nonce_a), 0.0)[0].role is Actor.PATIENT
    assert sessions.open(nonce_b, open_proof(CLINICIAN_KEY, nonce_b), 0.0)[0].role is Actor.CLINICIAN
    with pytest.raises(PairingKeyError, match="must differ"):
        DeviceSessions(CLINICIAN_KEY, patient_key=CLINICIAN_KEY)
    without = DeviceSessions(CLINICIAN_KEY, rng=random.Random(1).randbytes)  # no patient key: no patient session
    with pytest.raises(Exception, match="does not verify"):
        without.open(nonce_a, open_proof(PATIENT_KEY, nonce_a), 0.0)


def test_a_patient_selects_programs_changes_amplitude_within_its_maximum_and_charges():
    with served(stimulator()) as connect:
        patient = connect(PATIENT_KEY)
        assert patient.role is Actor.PATIENT
        patient.request(ProgramSelect(2))
        assert patient.status().active_program == 2
        patient.request(AmplitudeSet(0, 5000))  # exactly the patient maximum of program 2
        over = refused(patient, AmplitudeSet(0, 5001))
        assert (over.code, over.field, over.value, over.limit) == (ErrorCode.OUT_OF_RANGE, "amplitude_ua", 5001, 5000)
        assert "patient maximum of 5 mA" in over.reason
        patient.request(ChargingSet(True))
        assert patient.status().charging
        patient.request(TherapySet(True))
        stored = patient.request(ProgramRead(2))
        assert isinstance(stored, ProgramReply) and stored.active and stored.areas[0].amplitude_ua == 5000
        assert patient.status().stored_programs == 0b11
        log = patient.events_since(1)
    by_code = {e.code: e for e in log}
    assert by_code[EventCode.PROGRAM_SELECTED].actor is Actor.PATIENT
    assert (by_code[EventCode.PROGRAM_SELECTED].arg0, by_code[EventCode.PROGRAM_SELECTED].arg1) == (2, 1)
    assert (by_code[EventCode.AMPLITUDE_CHANGED].arg0, by_code[EventCode.AMPLITUDE_CHANGED].arg1) == (0, 5000)
    assert by_code[EventCode.CHARGING_STARTED].actor is Actor.PATIENT
    assert by_code[EventCode.THERAPY_ON].actor is Actor.PATIENT
    assert by_code[EventCode.SESSION_OPENED].actor is Actor.PATIENT
    assert by_code[EventCode.IMPEDANCE_MEASURED].actor is Actor.DEVICE  # the implant procedure's own check
    assert by_code[EventCode.PROGRAM_CHANGED].actor is Actor.DEVICE  # stored before it was served


def test_a_patient_is_refused_clinician_commands_before_anything_is_applied_or_remembered():
    with served(stimulator()) as connect:
        patient = connect(PATIENT_KEY)
        before = patient.status()
        for message in (StimProgramSet(3, True, (TONIC,), 4000, 2), ImpedanceCheck()):
            refusal = refused(patient, message)
            assert refusal.code is ErrorCode.NOT_PERMITTED and type(message).__name__ in refusal.reason
        after = patient.status()
        assert after.last_event_seq == before.last_event_seq and after.stored_programs == 0b11
        # Never handled: its command id is not remembered, so a query says so.
        message = ImpedanceCheck()
        command_id = patient._new_id()
        with pytest.raises(DeviceRejected):
            patient._checked(message, patient._exchange(message, command_id))
        digest = request_digest(message.TYPE, encode_payload(message))
        outcome = patient.request(CommandQuery(command_id, int(message.TYPE), digest))
        assert outcome.fate is CommandFate.NOT_HANDLED
        clinician = connect(CLINICIAN_KEY)  # replaces the patient's session
        assert clinician.role is Actor.CLINICIAN
        reading = clinician.request(ImpedanceCheck())
        assert clinician.events_since(reading.event_seq)[0].actor is Actor.CLINICIAN


def test_a_clinician_amplitude_change_stays_within_the_patient_maximum_and_device_limits():
    with served(stimulator()) as connect:
        clinician = connect(CLINICIAN_KEY)
        over = refused(clinician, AmplitudeSet(0, 4500))
        assert over.field == "amplitude_ua" and over.limit == 4000 and "reprogram" in over.reason
        missing = refused(clinician, AmplitudeSet(1, 1000))
        assert (missing.code, missing.field, missing.limit) == (ErrorCode.OUT_OF_RANGE, "area", 0)
        absent = refused(clinician, ProgramSelect(9))
        assert absent.code is ErrorCode.STATE_CONFLICT and "stored: 1, 2" in absent.reason
        assert refused(clinician, ProgramRead(17)).code is ErrorCode.OUT_OF_RANGE


def test_a_primary_cell_stimulator_has_nothing_to_charge():
    stim = Stimulator(ScsConfig(battery_kind=BatteryKind.PRIMARY), T0, 1)
    with pytest.raises(DeviceRejected) as info:
        stim.apply(ChargingSet(True), Actor.PATIENT)
    assert info.value.code is ErrorCode.UNSUPPORTED


def test_a_patient_may_ask_a_pump_only_for_a_patient_bolus():
    pump = Pump(PumpConfig(), T0, 1)
    pump.apply(DosingSet(DosingMode.CONTINUOUS, 500, (), PatientBolusSettings(True, 50, 10, 60, 3), 2_000))
    with served(pump) as connect:
        patient = connect(PATIENT_KEY)
        reply = patient.request(Bolus(BolusKind.PATIENT, 0, 0))
        assert patient.events_since(reply.event_seq)[0].actor is Actor.PATIENT
        clinician_kind = refused(patient, Bolus(BolusKind.CLINICIAN, 100, 60))
        assert (clinician_kind.code, clinician_kind.field) == (ErrorCode.NOT_PERMITTED, "kind")
        stop = refused(patient, TherapySet(False))
        assert stop.code is ErrorCode.NOT_PERMITTED and patient.status().infusing
        assert refused(patient, ProgramSelect(1)).code is ErrorCode.UNSUPPORTED


def test_the_state_directory_provisions_a_patient_key_beside_the_clinicians(tmp_path):
    store = StateStore(tmp_path / "scs-1")
    clinician, new = store.pairing_key("scs-1")
    patient, new_patient = store.patient_key("scs-1")
    assert new and new_patient and clinician != patient
    assert (store.patient_key_path.stat().st_mode & 0o777) == 0o600
    assert store.patient_key("scs-1") == (patient, False)
