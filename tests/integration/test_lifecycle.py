"""implant-mock's life cycle in real processes: one emulator per --state, and a clean stop at any moment.

A second emulator on a state directory in use must be refused (exit 2, the holder's pid named)
and change nothing there; a ``kill -9`` leaves a lock file that must not block the restart; a
SIGTERM at any point of start-up must end in exit 0 with the stop line and no torn state.
Synchronisation is on what the process prints, never on sleeps; timeouts are generous for a
loaded two-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from protocols.client import DeviceClient
from protocols.messages import DosingMode, PatientBolusSettings
from tests.integration.mock_process import STOPPED_LINE, MockProcess

TCP = ("--tcp", "127.0.0.1:0")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
NO_PATIENT_BOLUS = PatientBolusSettings(False, 0, 0, 0, 0)


def _snapshot(state: Path) -> dict[str, bytes | None]:
    """Every file and directory of a state directory (file contents; None for a directory).

    ``state.json``, the holder's own temporary save files and its device-time heartbeat (``clock``)
    are left out: the running holder rewrites them itself; what they hold is checked through the
    device instead.
    """
    found: dict[str, bytes | None] = {}
    for path in sorted(state.rglob("*")):
        if path.name in ("state.json", "clock") or path.name.startswith(".state-"):
            continue
        found[str(path.relative_to(state))] = None if path.is_dir() else path.read_bytes()
    return found


def _run_to_the_end(args: list[str], state: Path) -> subprocess.CompletedProcess[str]:
    """Run implant-mock expecting it to end by itself (a refusal); killed if it is still up at the deadline."""
    command = [sys.executable, "-m", "device_mock.cli", "--state", str(state), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False)


def _stopped_cleanly(mock: MockProcess) -> None:
    code = mock.stop(timeout_s=STOP_TIMEOUT_S)
    output = "\n".join(mock.lines)
    assert code == 0, f"exit {code}, not 0; stdout: {output!r}; stderr: {mock.stderr!r}"
    assert STOPPED_LINE in mock.lines, f"no stop line; stdout: {output!r}; stderr: {mock.stderr!r}"


def _no_torn_state(state: Path) -> None:
    leftovers = sorted(p.name for p in state.rglob(".state-*"))
    assert not leftovers, f"half-written saves left behind: {leftovers}"
    for saved in state.rglob("state.json"):
        json.loads(saved.read_text(encoding="utf-8"))  # whole, or it would not parse


def test_a_second_emulator_on_the_same_state_is_refused_naming_the_holder_and_changes_nothing(tmp_path):
    state = tmp_path / "state"
    first = MockProcess(["--device", "pump", *TCP], state, timeout_s=START_TIMEOUT_S)
    try:
        device = first.devices["pump-1"]
        with DeviceClient.connect(device.port, device.key, timeout=2.0, retries=3) as pump:
            pump.identify()
            pump.open_session()
            ack = pump.set_dosing(DosingMode.CONTINUOUS, 777, NO_PATIENT_BOLUS, 2000)
            assert ack.event_seq > 0
            before = _snapshot(state)
            assert (state / ".lock").read_text().strip() == str(first.proc.pid)

            second = _run_to_the_end(["--device", "pump", *TCP], state)

            assert second.returncode == 2, (second.returncode, second.stdout, second.stderr)
            assert str(state) in second.stderr and f"pid {first.proc.pid}" in second.stderr, second.stderr
            assert "device(s)" not in second.stdout and "pump-1:" not in second.stdout, second.stdout
            assert _snapshot(state) == before, "the refused emulator changed the state directory"
            assert first.proc.poll() is None, "the first emulator did not survive the attempt"
            assert pump.status().rate_ul_per_day == 777
        _stopped_cleanly(first)
    finally:
        first.stop()

    again = MockProcess(["--device", "pump", *TCP], state, timeout_s=START_TIMEOUT_S)
    try:
        assert "state=resumed" in "\n".join(again.lines)
        device = again.devices["pump-1"]
        with DeviceClient.connect(device.port, device.key, timeout=2.0, retries=3) as pump:
            pump.identify()
            pump.open_session()
            assert pump.status().rate_ul_per_day == 777, "the acknowledged dosing change was lost"
    finally:
        again.stop()


def test_a_lock_file_left_by_kill_9_does_not_block_the_restart(tmp_path):
    state = tmp_path / "state"
    first = MockProcess(["--device", "scs", *TCP], state, timeout_s=START_TIMEOUT_S)
    try:
        first_pid = first.proc.pid
        first.kill9()
    finally:
        first.stop()
    assert (state / ".lock").read_text().strip() == str(first_pid), "kill -9 leaves the old pid behind"

    again = MockProcess(["--device", "scs", *TCP], state, timeout_s=START_TIMEOUT_S)
    try:
        assert "scs-1" in again.devices
        assert (state / ".lock").read_text().strip() == str(again.proc.pid)
        _stopped_cleanly(again)
    finally:
        again.stop()
    assert (state / "scs-1" / "state.json").is_file()


def test_sigterm_while_a_large_fleet_is_being_built_stops_cleanly(tmp_path):
    state = tmp_path / "state"
    fleet = 40
    tcp = [arg for _ in range(fleet) for arg in TCP]
    mock = MockProcess(
        ["--fleet", str(fleet), *tcp], state, timeout_s=START_TIMEOUT_S, ready=lambda line: line.startswith("scs-1:")
    )
    try:
        _stopped_cleanly(mock)
    finally:
        mock.stop()
    _no_torn_state(state)
    built = [name for name in (line.partition(":")[0] for line in mock.lines) if name in mock.devices]
    for name in built:  # every device announced was saved on the way out
        assert (state / name / "state.json").is_file(), f"{name} was announced but not saved"


def test_sigterm_right_after_the_port_line_always_stops_cleanly(tmp_path):
    for run in range(10):
        state = tmp_path / f"state-{run}"
        mock = MockProcess(
            ["--device", "scs", *TCP], state, timeout_s=START_TIMEOUT_S, ready=lambda line: line.startswith("scs-1:")
        )
        try:
            _stopped_cleanly(mock)
        finally:
            mock.stop()
        _no_torn_state(state)
