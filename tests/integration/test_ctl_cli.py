"""``implant-ctl`` as people run it, against a real ``implant-mock``: ``--json`` after the command,
and text in the units a person reads (mL, mg/mL, mg/day, %, V, ISO dates), never wire names."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime

import pytest

WIRE_NAMES = ("time_ms", "conc_ng_per_ml", "battery_pct_x100", "reservoir_ul", "_ms:", "MORPHINE", "CONTINUOUS")
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def _iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def mock(tmp_path_factory):
    from tests.integration.mock_process import MockProcess

    proc = MockProcess(["--device", "scs", "--device", "pump", "--speed", "1"], tmp_path_factory.mktemp("state"))
    yield proc
    proc.stop()


def ctl(device, *argv: str) -> str:
    command = [sys.executable, "-m", "protocols.ctl", "--port", device.port, "--key", str(device.key), *argv]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_json_after_the_command_is_the_same_document_as_before_it(mock):
    pump = mock.devices["pump-1"]
    after, before = json.loads(ctl(pump, "status", "--json")), json.loads(ctl(pump, "--json", "status"))
    assert after.keys() == before.keys() and after["capacity_ul"] == before["capacity_ul"] == 20_000
    assert after["drugs"][0] == {
        "drug": "MORPHINE",
        "conc_ng_per_ml": 10_000_000,
        "dose_ng_per_day": 5_000_000,
        "bolus_ng_24h": 0,
    }
    assert isinstance(json.loads(ctl(pump, "events", "--from", "1", "--json")), list)


def test_pump_status_text_reads_in_millilitres_milligrams_percent_volts_and_iso_dates(mock):
    pump = mock.devices["pump-1"]
    wire = json.loads(ctl(pump, "status", "--json"))
    text = ctl(pump, "status")
    assert not [name for name in WIRE_NAMES if name in text], text
    reservoir = re.search(r"Reservoir +(\d+(?:\.\d+)?) of 20 mL \(alarm at 2 mL\)", text)
    assert reservoir and abs(float(reservoir[1]) * 1000 - wire["reservoir_ul"]) <= 2, text
    assert "Rate now        0.5 mL/day" in text
    assert "morphine 10 mg/mL, 5 mg/day" in text and "bupivacaine 20 mg/mL, 10 mg/day" in text
    battery = re.search(r"Battery +ok, (\d+(?:\.\d+)?) % \((\d\.\d\d) V\)", text)
    assert battery and float(battery[1]) == pytest.approx(wire["battery_pct_x100"] / 100, abs=0.1), text
    assert float(battery[2]) == pytest.approx(wire["battery_mv"] / 1000, abs=0.005)
    header = re.match(rf"Pump at ({ISO})\n", text)
    assert header and 0 <= _iso_ms(header[1]) - wire["time_ms"] < 30_000, text  # the device's clock, not the host's
    assert re.search(rf"Next refill +{ISO}", text) and "Tone            silent" in text


def test_stimulator_status_events_clock_identify_and_replies_read_as_text(mock):
    scs, pump = mock.devices["scs-1"], mock.devices["pump-1"]
    status = ctl(scs, "status")
    assert re.search(r"Battery +rechargeable, ok, \d+(\.\d+)? % \(\d\.\d\d V\)", status), status
    assert re.search(r"Impedance +0: \d+ Ω, 1: \d+ Ω", status) and "battery_kind" not in status
    events = ctl(scs, "events").splitlines()
    assert re.fullmatch(rf"#1  {ISO}  impedance measured  \(args 0, 0\)", events[0]), events
    assert re.fullmatch(rf"Device time {ISO}", ctl(pump, "clock").strip())
    identify = ctl(pump, "identify")
    assert identify.startswith("Pump\n") and "drug delivery" in identify and "Serial           PUMP-" in identify
    assert re.fullmatch(
        rf"Bolus of 0\.077 mL started \(event #\d+\), ends {ISO}\n",
        ctl(pump, "bolus", "--volume-ul", "77", "--duration-min", "10"),
    )
    assert re.fullmatch(rf"Impedance at {ISO} \(event #\d+\): 0: \d+ Ω.*\n", ctl(scs, "impedance"))


def run_ctl(device, key, *argv: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "protocols.ctl", "--port", device.port, "--key", str(key), *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_the_patient_controller_key_opens_a_patient_session_with_a_patients_rights(mock):
    """SPEC 3.8 through the emulator's own patient.key: what a patient may do, and what is refused."""
    scs = mock.devices["scs-1"]
    patient_key = scs.key.parent / "patient.key"
    area = "anodes=0,cathodes=1+2,amp=2000,pw=300,rate=50"
    for number in ("1", "2"):
        ctl(scs, "program", "--program", number, "--area", area, "--patient-max-ua", "3000", "--no-activate")
    refused = run_ctl(scs, patient_key, "--role", "patient", "program", "--area", area, "--patient-max-ua", "3000")
    assert refused.returncode == 6 and "NOT_PERMITTED" in refused.stderr, refused.stderr
    assert run_ctl(scs, patient_key, "--role", "patient", "select", "2").returncode == 0
    assert run_ctl(scs, patient_key, "--role", "patient", "amplitude", "--ua", "2500").returncode == 0
    over = run_ctl(scs, patient_key, "--role", "patient", "--json", "amplitude", "--ua", "3100")
    assert over.returncode == 6 and json.loads(over.stdout)["limit"] == 3000
    wrong_role = run_ctl(scs, scs.key, "--role", "patient", "status")  # the clinician's key, said to be a patient's
    assert wrong_role.returncode == 5 and "clinician session" in wrong_role.stderr
    programs = run_ctl(scs, patient_key, "--role", "patient", "programs").stdout
    assert "Program 2 (active)" in programs and "Program 1\n" in programs
    events = ctl(scs, "events").splitlines()
    assert any("program selected  by the patient" in line for line in events), events
    assert any("amplitude changed  by the patient  (args 0, 2500)" in line for line in events), events
