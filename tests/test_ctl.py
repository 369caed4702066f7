"""implant-ctl: output, and exit codes by error type (over the in-memory link to the fake device)."""

from __future__ import annotations

import json

import pytest

from protocols import ctl
from protocols.auth import write_pairing_key
from protocols.client import DeviceClient


@pytest.fixture
def key_file(tmp_path, pairing_key):
    return str(write_pairing_key(tmp_path / "dev.key", pairing_key))


def _connect_to(link, key: bytes):
    pair, _ = link

    def connect(url, key_file, baud, **kwargs):
        return DeviceClient(pair.host, key, **kwargs)

    return connect


def run(link, key, argv, capsys):
    code = ctl.main(argv, connect=_connect_to(link, key))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_identify_json(link, pairing_key, capsys):
    code, out, _ = run(link, pairing_key, ["--port", "x", "--json", "identify"], capsys)
    assert code == ctl.EXIT_OK
    assert json.loads(out)["serial"] == "SN-TEST-1"


def test_status_json_has_enums_by_name(link, pairing_key, key_file, capsys):
    code, out, _ = run(link, pairing_key, ["--port", "x", "--key", key_file, "--json", "status"], capsys)
    assert code == ctl.EXIT_OK
    status = json.loads(out)
    assert status["battery_kind"] == "RECHARGEABLE"
    assert status["areas"][0]["amplitude_ua"] == 3500


def test_refused_bolus_exits_6_and_names_the_limit(link, pairing_key, key_file, capsys):
    argv = ["--port", "x", "--key", key_file, "--json", "bolus", "--volume-ul", "5000"]
    code, out, _ = run(link, pairing_key, argv, capsys)
    assert code == ctl.EXIT_REFUSED
    error = json.loads(out)
    assert (error["code"], error["field"], error["value"], error["limit"]) == ("OUT_OF_RANGE", "volume_ul", 5000, 1000)


def test_wrong_key_exits_5(link, key_file, capsys):
    code, _, err = run(link, bytes(32), ["--port", "x", "--key", key_file, "status"], capsys)
    assert code == ctl.EXIT_AUTH
    assert "authentication failed" in err


def test_missing_key_option_exits_2(link, pairing_key, capsys):
    code, _, err = run(link, pairing_key, ["--port", "x", "status"], capsys)
    assert code == ctl.EXIT_USAGE
    assert "--key" in err


def test_missing_key_file_exits_8(tmp_path, capsys):
    code = ctl.main(["--port", "loop://", "--key", str(tmp_path / "none.key"), "status"])
    assert code == ctl.EXIT_KEY
    assert "does not exist" in capsys.readouterr().err


def test_dead_port_exits_3(tmp_path, key_file, capsys):
    code = ctl.main(["--port", str(tmp_path / "no-such-port"), "--key", key_file, "status"])
    assert code == ctl.EXIT_LINK
    assert "no-such-port" in capsys.readouterr().err


def test_silent_port_exits_4(key_file, capsys):
    code = ctl.main(["--port", "loop://", "--key", key_file, "--timeout", "0.05", "--retries", "1", "identify"])
    assert code == ctl.EXIT_TIMEOUT


def test_area_parser_reports_the_expected_form():
    area = ctl.parse_area("anodes=0,cathodes=1+3-4,amp=3500,pw=300,rate=50,wave=burst,burst=5@500,cycle=30/90")
    assert area.cathode_mask == 0b11010 and area.burst_pulses == 5 and area.cycle_off_s == 90
    with pytest.raises(Exception, match="expected anodes="):
        ctl.parse_area("amp=3")


class _LoseBolusReplies:
    """Device-to-host manipulator: loses ``count`` writes from the moment the fake device applied a bolus."""

    def __init__(self, device, count: float) -> None:
        self.device, self.count, self.lost = device, count, 0

    def __call__(self, data: bytes) -> bytes:
        if self.device.boluses and self.lost < self.count:
            self.lost += 1
            return b""
        return data


BOLUS_ARGS = ["bolus", "--volume-ul", "77", "--duration-min", "10"]


def test_a_bolus_whose_reply_is_lost_is_resolved_and_reported_applied(link, pairing_key, key_file, fake_device, capsys):
    pair, _ = link
    pair.device.manipulator = _LoseBolusReplies(fake_device, 1)
    argv = ["--port", "x", "--key", key_file, "--timeout", "0.2", "--retries", "0", "--json", *BOLUS_ARGS]
    code, out, err = run(link, pairing_key, argv, capsys)
    assert code == ctl.EXIT_OK, err
    assert json.loads(out)["volume_ul"] == 77 and "reply was lost; the device confirmed Bolus" in err
    assert fake_device.boluses == 1


def test_an_unreachable_device_after_a_bolus_exits_9_naming_the_command_then_resolve_settles_it(
    link, pairing_key, key_file, fake_device, capsys
):
    pair, _ = link
    pair.device.manipulator = _LoseBolusReplies(fake_device, float("inf"))
    options = ["--port", "x", "--key", key_file, "--timeout", "0.1", "--retries", "1", "--resolve-s", "0.3"]
    code, out, _ = run(link, pairing_key, [*options, "--json", *BOLUS_ARGS], capsys)
    assert code == ctl.EXIT_UNKNOWN == 9
    error = json.loads(out)
    assert error["applied"] is None and "may have been applied" in error["error"]
    command_id = error["command_id"]
    assert f"--resolve 0x{command_id:08x}" in error["error"]

    pair.device.manipulator = None  # the line is back
    code, out, err = run(link, pairing_key, [*options, "--resolve", f"0x{command_id:08x}", *BOLUS_ARGS], capsys)
    assert code == ctl.EXIT_OK, err
    assert "Bolus of 0.077 mL started" in out
    assert fake_device.boluses == 1  # asking never applies it again


def test_a_bolus_that_never_reached_the_device_exits_4_saying_it_was_not_applied(
    link, pairing_key, key_file, fake_device, capsys
):
    pair, _ = link
    writes = []

    def lose_the_fourth_write(data: bytes) -> bytes:  # identify, open, confirm, then the bolus
        writes.append(data)
        return b"" if len(writes) == 4 else data

    pair.host.manipulator = lose_the_fourth_write
    argv = ["--port", "x", "--key", key_file, "--timeout", "0.2", "--retries", "0", *BOLUS_ARGS]
    code, _, err = run(link, pairing_key, argv, capsys)
    assert code == ctl.EXIT_TIMEOUT
    assert "confirmed that Bolus" in err and "was not applied" in err
    assert fake_device.boluses == 0


def test_resolve_of_a_read_only_command_is_a_usage_error(link, pairing_key, key_file, capsys):
    code, _, err = run(link, pairing_key, ["--port", "x", "--key", key_file, "--resolve", "5", "status"], capsys)
    assert code == ctl.EXIT_USAGE and "--resolve asks about a command that changes the device" in err


def test_json_after_the_command_prints_json(link, pairing_key, key_file, capsys):
    code, out, _ = run(link, pairing_key, ["--port", "x", "--key", key_file, "status", "--json"], capsys)
    assert code == ctl.EXIT_OK and json.loads(out)["battery_kind"] == "RECHARGEABLE"


def test_small_drug_amounts_read_in_mg_with_the_microgram_figure():
    from protocols.ctl_text import iso, mg

    assert mg(10_000_000, "mL") == "10 mg/mL"
    assert mg(2_400, "day") == "0.0024 mg/day (2.4 µg/day)"
    assert iso(1767422172552) == "2026-01-03T06:36:12.552Z" and iso(0) == "never"


@pytest.mark.parametrize(("state", "on"), [("on", True), ("off", False)])
def test_mri_sends_mri_mode_set(link, pairing_key, key_file, fake_device, capsys, state, on):
    from protocols.messages import MriModeSet

    args = ctl.build_parser().parse_args(["--port", "x", "--key", key_file, "mri", state])
    assert ctl._command_message(args) == MriModeSet(on)
    code, _, err = run(link, pairing_key, ["--port", "x", "--key", key_file, "mri", state], capsys)
    assert code == ctl.EXIT_REFUSED and "MriModeSet not supported by the fake" in err  # it went out


def test_status_text_names_the_mri_mode():
    from dataclasses import replace

    from protocols.ctl_text import scs_status
    from tests.fakes import scs_status as snapshot

    assert "MRI mode         off" in scs_status(snapshot())
    assert "MRI mode         on: programming and therapy on refused" in scs_status(replace(snapshot(), mri_mode=True))


def test_mri_check_sends_mri_check_done_and_pump_text_names_what_is_pending():
    from dataclasses import replace

    from protocols.ctl_text import pump_status
    from protocols.messages import MriCheckDone
    from protocols.vectors import EXCHANGE, PumpStatus

    args = ctl.build_parser().parse_args(["--port", "x", "--key", "k", "mri-check"])
    assert ctl._command_message(args) == MriCheckDone()
    status = next(m for _, m, _ in EXCHANGE if isinstance(m, PumpStatus))
    assert "MRI             nothing pending" in pump_status(status)
    held = pump_status(replace(status, valve_closed=True, mri_check_due=True))
    assert "MRI             flow-activated valve closed; check after the scan due (mri-check)" in held


def test_program_density_override_flag_sets_the_field():
    argv = [
        "--port",
        "x",
        "program",
        "--area",
        "anodes=0,cathodes=1,amp=3500,pw=300,rate=50",
        "--patient-max-ua",
        "4000",
    ]
    plain = ctl._command_message(ctl.build_parser().parse_args(argv))
    overridden = ctl._command_message(ctl.build_parser().parse_args([*argv, "--density-override"]))
    assert (plain.density_override, overridden.density_override) == (False, True)


def test_status_text_shows_shannon_k_and_the_contacts_turned_off():
    from dataclasses import replace

    from protocols.ctl_text import scs_status as text
    from tests.fakes import scs_status

    shown = text(replace(scs_status(), shannon_k_x100=-134, disabled_contacts=0b1010))
    assert "Shannon k        -1.34" in shown
    assert "Contacts off     1+3 (shorted at the last check)" in shown
    assert "Contacts off     none" in text(scs_status())
    assert "Shannon k        none (no charge)" in text(replace(scs_status(), areas=()))
