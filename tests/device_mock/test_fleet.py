"""``implant-mock --fleet N``: seeded variety that is the same for a seed, and the manifest it writes."""

from __future__ import annotations

import collections
import dataclasses
import json
import os

import pytest

from device_mock.cli import build, build_parser
from device_mock.faults import ScenarioError
from device_mock.fleet import FleetConfig, build_member, draw_member, fleet_config
from device_mock.pump import PumpConfig
from device_mock.stimulator import ScsConfig
from protocols.manifest import load_manifest
from protocols.messages import BatteryKind, EventCode

T0 = 1_767_225_600_000


def members(seed: int, n: int = 400, config: FleetConfig | None = None):
    return [draw_member(i, "scs" if i % 2 == 0 else "pump", seed, config) for i in range(n)]


def built(member, seed: int = 1):
    base = ScsConfig() if member.kind == "scs" else PumpConfig()
    return build_member(member, dataclasses.replace(base, **member.overrides), T0, seed + member.index)


def test_the_same_seed_draws_the_same_fleet_and_another_seed_another():
    assert members(7) == members(7)
    assert members(7) != members(8)
    a, b = built(members(7, 8)[3]), built(members(7, 8)[3])
    assert a.to_state() == b.to_state()  # the lived years too, not only the draw


def test_the_fleet_varies_like_a_clinic():
    drawn = members(1, 1000)
    pumps = [m for m in drawn if m.kind == "pump"]
    scs = [m for m in drawn if m.kind == "scs"]
    assert len({m.mix for m in pumps}) >= 5
    assert len({m.overrides["initial_rate_ul_per_day"] for m in pumps}) > 50
    assert len({m.days_since_refill for m in pumps}) > 20  # so reservoirs from nearly empty to full
    assert min(m.age_days for m in drawn) < 200 and max(m.age_days for m in drawn) > 1500
    primary = sum(m.overrides.get("battery_kind") == "PRIMARY" for m in scs)
    assert 0.1 < primary / len(scs) < 0.3
    assert len({m.program.areas[0].amplitude_ua for m in scs}) > 30
    faults = collections.Counter(m.fault for m in drawn if m.fault)
    assert 0.02 <= sum(faults.values()) / len(drawn) <= 0.06  # "a few": 2-5 % asked for
    assert set(faults) == {"lead_open", "lead_short", "motor_stall", "low_reservoir"}


def test_a_fault_fraction_from_the_scenario_changes_the_count():
    none = members(1, 300, fleet_config({"fault_fraction": 0.0}))
    assert not any(m.fault for m in none)
    with pytest.raises(ValueError, match=r"no setting.*fault_share"):
        fleet_config({"fault_share": 0.1})


def test_the_lived_years_are_the_models_own():
    drawn = members(1, 120)
    pumps = [built(m) for m in drawn if m.kind == "pump"][:30]
    fills = {p.status().reservoir_ul for p in pumps}
    assert len(fills) > 20
    assert all(p.config.initial_drugs for p in pumps)
    refills = sum(1 for p in pumps for e in p.events.read(1, 100_000) if e.code is EventCode.REFILL)
    assert refills > 100  # monthly refills over the years since implant
    stims = [built(m) for m in drawn if m.kind == "scs"][:30]
    assert all(s.status().therapy_on for s in stims)
    assert {s.status().battery_kind for s in stims} == {BatteryKind.RECHARGEABLE, BatteryKind.PRIMARY}
    aged = [s for s in stims if s.status().battery_kind is BatteryKind.RECHARGEABLE]
    assert len({s.status().capacity_pct_x100 for s in aged}) > 10  # capacity fades with the implant's age


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("lead_open", EventCode.LEAD_OPEN),
        ("lead_short", EventCode.LEAD_SHORT),
        ("motor_stall", EventCode.MOTOR_STALL),
        ("low_reservoir", EventCode.LOW_RESERVOIR),
    ],
)
def test_each_fault_shows_as_its_alarm_at_the_start(fault, code):
    member = next(m for seed in range(1, 6) for m in members(seed, 1000) if m.fault == fault)
    model = built(member)
    assert code in {a.code for a in model.status().alarms}


def test_healthy_members_start_without_an_alarm():
    healthy = [m for m in members(1, 200) if m.fault is None][:60]
    alarmed = [m for m in healthy if built(m).status().alarms]
    assert not alarmed, [(m.kind, m.age_days, built(m).status().alarms) for m in alarmed]


def _build(tmp_path, *extra: str):
    args = build_parser().parse_args(["--state", str(tmp_path / "state"), *extra])
    served = build(args)
    return served


def _close(served) -> None:
    for item in served:
        item.device.close()
        item.transport.close()


def test_the_fleet_cli_serves_the_drawn_devices_and_writes_the_manifest(tmp_path, capsys):
    served = _build(tmp_path, "--fleet", "6", "--seed", "3")
    try:
        manifest = tmp_path / "state" / "fleet.json"
        assert f"manifest {manifest}" in capsys.readouterr().out
        devices = load_manifest(manifest)
        assert [(d.name, d.kind) for d in devices] == [
            ("scs-1", "scs"), ("pump-1", "pump"), ("scs-2", "scs"),
            ("pump-2", "pump"), ("scs-3", "scs"), ("pump-3", "pump"),
        ]  # fmt: skip
        for device, item in zip(devices, served, strict=True):
            assert os.path.exists(device.port) and device.port == item.transport.path
            assert device.key == tmp_path / "state" / item.name / "pairing.key"
            assert device.serial == item.device.model.serial
        raw = json.loads(manifest.read_text())
        assert raw["version"] == 1 and raw["devices"][0]["key"] == "scs-1/pairing.key"  # relative: movable
        pump = served[1].device.model
        assert pump.config.initial_rate_ul_per_day == draw_member(1, "pump", 3).overrides["initial_rate_ul_per_day"]
    finally:
        _close(served)


def test_a_plain_start_writes_the_manifest_too_with_its_link(tmp_path):
    link = tmp_path / "pump"
    served = _build(tmp_path, "--device", "pump", "--link", str(link))
    try:
        (device,) = load_manifest(tmp_path / "state" / "fleet.json")
        assert device.port == str(link) and device.kind == "pump"
    finally:
        _close(served)


def test_an_unknown_fleet_setting_in_the_scenario_is_refused(tmp_path):
    scenario = tmp_path / "s.toml"
    scenario.write_text("[fleet]\nfaults = 0.5\n")
    with pytest.raises(ScenarioError, match=r"s\.toml: \[fleet\] has no setting\(s\) faults"):
        _build(tmp_path, "--fleet", "2", "--scenario", str(scenario))


@pytest.mark.parametrize(("value", "message"), [("0", "outside 1..2000"), ("ten", "not a whole number")])
def test_a_bad_fleet_size_is_refused(value, message, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--fleet", value])
    assert message in capsys.readouterr().err
