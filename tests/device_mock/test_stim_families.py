"""Stimulator families: each preset is a valid config whose rules a device then enforces."""

from __future__ import annotations

import dataclasses

import pytest

from device_mock.stim_families import SCS_FAMILIES, family_overrides
from device_mock.stim_physics import DensityPolicy, ScsConfig
from device_mock.stimulator import Stimulator
from protocols.errors import DeviceRejected, ErrorCode
from protocols.messages import Area, StimProgramSet, Waveform

T0 = 1_700_000_000_000


def stimulator(family: str, **overrides) -> Stimulator:
    values = family_overrides({"family": family, "impedance_ohm": (600, 600), "impedance_noise": 0.0, **overrides})
    return Stimulator(dataclasses.replace(ScsConfig(), **values), T0, 1)


def program(amp: int, pw: int, rate: int, waveform: Waveform = Waveform.TONIC) -> StimProgramSet:
    area = Area(0b01, 0b10, amp, pw, rate, waveform, 0, 0, 0, 0)
    return StimProgramSet(1, True, (area,), amp, 2)


def refusal(stim: Stimulator, message: StimProgramSet) -> DeviceRejected:
    with pytest.raises(DeviceRejected) as info:
        stim.apply(message)
    return info.value


@pytest.mark.parametrize("family", sorted(SCS_FAMILIES))
def test_every_family_is_a_valid_config_that_keeps_its_name_across_a_save(family):
    stim = stimulator(family)
    again = Stimulator.from_state(stim.to_state())
    assert again.config.family == family and again.config == stim.config
    assert stim.model_name == SCS_FAMILIES[family].get("model_name", ScsConfig().model_name)


def test_a_drg_stimulator_holds_its_published_ranges_and_steps():
    drg = stimulator("axium-drg")
    assert refusal(drg, program(6_050, 300, 20)).limit == 6_000  # 0-6000 µA
    assert refusal(drg, program(2_000, 740, 20)).limit == 720  # 40-720 µs
    off = refusal(drg, program(2_000, 300, 21))  # rates step 2 Hz
    assert off.code is ErrorCode.OFF_STEP and off.field == "areas[0].rate_hz"
    no_hf = refusal(drg, program(2_000, 40, 10_000, Waveform.HIGH_FREQUENCY))  # no 10 kHz on a DRG device
    assert (no_hf.field, no_hf.limit) == ("areas[0].rate_hz", 100)
    drg.apply(program(1_975, 300, 20))  # 25 µA steps below 2 mA


def test_high_frequency_runs_on_a_nevro_class_device_up_to_its_15_ma():
    nevro = stimulator("nevro")
    nevro.apply(program(3_000, 30, 10_000, Waveform.HIGH_FREQUENCY))
    assert refusal(nevro, program(15_050, 30, 10_000, Waveform.HIGH_FREQUENCY)).limit == 15_000


def test_only_the_boston_class_warns_on_charge_density_and_lets_the_clinician_go_on():
    # 0.06 cm² contacts bring the density limit below Shannon's, as on small contacts (docs/devices.md 1.8)
    dense = program(3_800, 500, 40)  # 31.7 µC/cm² per phase
    boston = stimulator("boston", contact_area_cm2=0.06)
    assert boston.config.density_policy is DensityPolicy.WARN
    assert refusal(boston, dense).code is ErrorCode.OVERRIDE_REQUIRED
    boston.apply(dataclasses.replace(dense, density_override=True))
    for family in ("abbott", "medtronic", "nevro"):
        other = stimulator(family, contact_area_cm2=0.06)
        assert refusal(other, dataclasses.replace(dense, density_override=True)).code is ErrorCode.OUT_OF_RANGE


def test_a_scenario_value_wins_over_its_family_and_an_unknown_family_is_named():
    assert family_overrides({"family": "axium-drg", "amplitude_ua": (0, 5_000)})["amplitude_ua"] == (0, 5_000)
    with pytest.raises(ValueError, match="stimulator family 'acme': valid: generic, boston"):
        family_overrides({"family": "acme"})


def test_implant_mock_family_option_builds_that_class_and_a_scenario_value_stays_on_top(tmp_path):
    from device_mock.cli import build, build_parser

    scenario = tmp_path / "drg.toml"
    scenario.write_text('[scenario]\nname = "drg"\ndevice = "scs"\n\n[config]\namplitude_ua = [0, 5000]\n')
    args = ["--state", str(tmp_path / "state"), "--device", "scs", "--tcp", "127.0.0.1:0"]
    served = build(build_parser().parse_args([*args, "--family", "axium-drg", "--scenario", str(scenario)]))
    try:
        config = served[0].device.model.config
        assert (config.family, config.model_name, config.rate_hz, config.amplitude_ua) == (
            "axium-drg",
            "EMU-DRG16",
            (4, 100),
            (0, 5_000),
        )
    finally:
        for item in served:
            item.device.close()
            item.transport.close()
