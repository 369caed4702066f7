"""Trial devices end to end: a diary read, typed, pushed and kept across kill -9; the lifecycle."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time

from protocols.client import DeviceClient
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import Capability, DiaryKind, DiarySource, Lifecycle, ScsStatus


def ctl(device, *argv: str, key=None, ok: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "protocols.ctl", "--port", device.port, "--key", str(key or device.key), *argv]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert (result.returncode == 0) == ok, result.stderr
    return result


def client_of(device, key=None) -> DeviceClient:
    client = DeviceClient.connect(device.port, key or device.key, timeout=2.0, retries=3)
    client.identify()
    client.open_session()
    return client


def test_a_trial_stimulators_diary_is_read_typed_pushed_and_kept_across_kill_9(run_mock):
    mock = run_mock("--device", "scs-trial", "--speed", "20000")  # a diary slot every ~2 s
    trial = mock.devices["scs-trial-1"]
    patient_key = trial.key.parent / "patient.key"
    identity = json.loads(ctl(trial, "identify", "--json").stdout)
    assert identity["lifecycle"] == "TRIAL" and identity["capabilities"] & Capability.DIARY
    client = client_of(trial, patient_key)
    baseline = client.diary_since(1)
    assert baseline[0].kind is DiaryKind.ODI and sum(e.kind is DiaryKind.NRS for e in baseline) == 14
    typed = client.add_diary(DiaryKind.NRS, 3)
    assert typed.source is DiarySource.PATIENT and typed.seq > baseline[-1].seq
    with_refusal = None
    try:
        client.add_diary(DiaryKind.NRS, 11)
    except DeviceRejected as exc:
        with_refusal = exc
    assert with_refusal is not None and with_refusal.code is ErrorCode.OUT_OF_RANGE and with_refusal.limit == 10
    deadline = time.monotonic() + 20
    while not client.diary_pushes and time.monotonic() < deadline:
        client.poll_pushes(0.5)
    assert client.diary_pushes, "no diary entry pushed to the open session"
    seen = client.diary_since(1)
    status = client.status()
    assert isinstance(status, ScsStatus) and status.lifecycle is Lifecycle.TRIAL and status.diary_seq >= seen[-1].seq
    client.close()
    mock.kill9()
    mock = run_mock("--device", "scs-trial", "--speed", "20000")
    trial = mock.devices["scs-trial-1"]
    client = client_of(trial, patient_key)
    time.sleep(3)  # more diary slots pass after the restart
    after = client.diary_since(1)
    assert after[: len(seen)] == seen  # nothing a host was shown is lost
    assert [e.seq for e in after] == list(range(1, len(after) + 1)) and len(after) > len(seen)
    client.close()
    text = ctl(trial, "diary", "--from", str(typed.seq)).stdout
    assert f"#{typed.seq}" in text and "Pain 3/10  typed by the patient" in text
    refused = ctl(trial, "lifecycle", "implanted", key=patient_key, ok=False)
    assert "clinician" in refused.stderr
    ctl(trial, "lifecycle", "implanted")
    assert json.loads(ctl(trial, "identify", "--json").stdout)["lifecycle"] == "IMPLANTED"
    kinds = {e["kind"] for e in json.loads(ctl(trial, "diary", "--json").stdout)}
    assert {"RELIEF", "PGIC"} <= kinds  # the trial's end: the patient's report
    ctl(trial, "lifecycle", "explanted")
    status = json.loads(ctl(trial, "status", "--json").stdout)
    assert status["lifecycle"] == "EXPLANTED" and status["therapy_on"] is False
    again = ctl(trial, "therapy", "on", ok=False)
    assert "explanted" in again.stderr
    final = ctl(trial, "lifecycle", "implanted", ok=False)
    assert "it can go on to nothing" in final.stderr


def test_a_pump_trial_takes_a_test_dose_and_its_patient_is_watched_every_two_hours(run_mock):
    mock = run_mock("--device", "pump-trial", "--speed", "7200")  # two hours a second
    trial = mock.devices["pump-trial-1"]
    status = json.loads(ctl(trial, "status", "--json").stdout)
    assert status["lifecycle"] == "TRIAL" and status["mode"] == "STOPPED" and status["capacity_ul"] == 5_000
    dose = json.loads(
        ctl(trial, "bolus", "--kind", "clinician", "--volume-ul", "200", "--duration-min", "15", "--json").stdout
    )
    given_ms = dose["ends_ms"] - 15 * 60_000
    deadline = time.monotonic() + 20
    watched: list[dict] = []
    while len(watched) < 3 and time.monotonic() < deadline:
        time.sleep(1)
        diary = json.loads(ctl(trial, "diary", "--json").stdout)
        watched = [e for e in diary if e["kind"] == "NRS" and e["time_ms"] > given_ms]
    assert len(watched) >= 3, diary
    gaps = {b["time_ms"] - a["time_ms"] for a, b in itertools.pairwise(watched)}
    assert gaps == {2 * 3_600_000}  # scored every 2 h while the test dose is watched
    assert json.loads(ctl(trial, "status", "--json").stdout)["diary_seq"] >= watched[-1]["seq"]


def test_a_kill_9_mid_trial_loses_no_diary_entry_the_dashboard_stored_and_the_diary_goes_on_without_a_gap(
    run_mock, tmp_path
):
    from dashboard.link import DeviceLink
    from dashboard.store import open_store

    stable = tmp_path / "trial-port"  # a symlink to the pty that survives the restart, as a deployment uses
    mock = run_mock("--device", "scs-trial", "--speed", "100000", "--link", str(stable))  # a day in 0.9 s
    trial = mock.devices["scs-trial-1"]
    store = open_store(f"sqlite:///{tmp_path / 'history.db'}")
    link = DeviceLink("scs-trial-1", str(stable), trial.key, store, poll_s=0.3).start()
    try:
        deadline = time.monotonic() + 30
        while store.last_diary_seq("scs-trial-1") < 20:  # the baseline week and some trial days
            assert time.monotonic() < deadline, "the dashboard never stored the diary"
            time.sleep(0.2)
        store.flush()
        before = store.diary("scs-trial-1")
        mock.kill9()
        mock = run_mock("--device", "scs-trial", "--speed", "100000", "--link", str(stable))  # the same state
        deadline = time.monotonic() + 40
        while store.last_diary_seq("scs-trial-1") < before[-1].seq + 4:  # the link reconnects and reads on
            assert time.monotonic() < deadline, "the diary did not go on after the restart"
            time.sleep(0.2)
        store.flush()
        after = store.diary("scs-trial-1")
        assert after[: len(before)] == before  # nothing the dashboard had stored changed or went missing
        assert [e.seq for e in after] == list(range(1, len(after) + 1))  # and no gap
    finally:
        link.stop()
        store.close()
