"""--noise belongs to the process's line: a restarted emulator on the same state has it too."""

from __future__ import annotations

import pytest

from device_mock.cli import build, build_parser
from device_mock.faults import ScenarioError


def _built(tmp_path, *extra: str):
    args = build_parser().parse_args(["--state", str(tmp_path), "--device", "pump", "--tcp", "127.0.0.1:0", *extra])
    served = build(args)
    try:
        return [(item.device.link_faults.flip_rate, item.device.link_faults.drop_rate) for item in served]
    finally:
        for item in served:
            item.device.close()
            item.transport.close()


def test_noise_is_on_after_a_restart_on_saved_state(tmp_path, capsys):
    assert _built(tmp_path, "--noise", "flip=0.01,drop=0.02") == [(0.01, 0.02)]
    assert "state=new" in capsys.readouterr().out
    assert _built(tmp_path, "--noise", "flip=0.01,drop=0.02") == [(0.01, 0.02)]
    assert "state=resumed" in capsys.readouterr().out
    assert _built(tmp_path) == [(0.0, 0.0)]  # and off when not asked for, without shifting the scenario


def test_an_unknown_noise_name_is_refused(tmp_path):
    with pytest.raises(ScenarioError, match="--noise has no bits"):
        _built(tmp_path, "--noise", "bits=0.1")
