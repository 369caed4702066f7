"""implant-dashboard's command line: devices from --port pairs or a fleet manifest, refused clearly when wrong."""

from __future__ import annotations

import json

import pytest

from dashboard.cli import _devices, build_parser, main


def _manifest(tmp_path, devices):
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps({"version": 1, "devices": devices}))
    return path


def _key(tmp_path, name):
    (tmp_path / name).write_bytes(bytes(32))
    return name


def test_the_manifest_devices_follow_the_port_pairs(tmp_path):
    path = _manifest(
        tmp_path,
        [
            {"name": "scs-1", "kind": "scs", "port": "/dev/pts/70", "key": _key(tmp_path, "a.key")},
            {"name": "pump-1", "kind": "pump", "port": "socket://127.0.0.1:7001", "key": _key(tmp_path, "b.key")},
        ],
    )
    args = build_parser().parse_args(["--port", "loop://", "--key", "k", "--name", "bench", "--fleet", str(path)])
    assert _devices(args) == [
        ("bench", "loop://", "k"),
        ("scs-1", "/dev/pts/70", tmp_path / "a.key"),
        ("pump-1", "socket://127.0.0.1:7001", tmp_path / "b.key"),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --fleet MANIFEST or a --port URL --key FILE pair per device"),
        (["--fleet", "{tmp}/none.json"], "none.json does not exist"),
        (["--fleet", "{tmp}/fleet.json", "--port", "loop://", "--key", "k", "--name", "scs-1"], "given twice"),
        (["--fleet", "{tmp}/fleet.json", "--link-threads", "0"], "--link-threads 0: at least 1"),
    ],
)
def test_bad_device_options_exit_2_naming_the_problem(tmp_path, capsys, argv, message):
    _manifest(tmp_path, [{"name": "scs-1", "kind": "scs", "port": "/dev/pts/70", "key": _key(tmp_path, "a.key")}])
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main([*argv, "--db", "sqlite:///:memory:", "--users", str(tmp_path / "users.json")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "users.json").exists()  # refused before anything was written
