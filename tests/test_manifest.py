"""The fleet manifest (protocols/manifest.py): written atomically, read back, bad files named precisely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocols.manifest import ManifestDevice, ManifestError, load_manifest, write_manifest


def _key(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(32))
    return path


def _write(tmp_path: Path, body: object) -> Path:
    path = tmp_path / "fleet.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


GOOD = {"name": "scs-1", "kind": "scs", "port": "/dev/pts/9", "key": "scs-1/pairing.key"}


def test_a_written_manifest_reads_back_with_keys_relative_to_it(tmp_path):
    inside = _key(tmp_path / "scs-1" / "pairing.key")
    outside = _key(tmp_path.parent / f"{tmp_path.name}-elsewhere" / "pump.key")
    devices = [
        ManifestDevice("scs-1", "scs", "/dev/pts/9", inside, "SCS-1"),
        ManifestDevice("pump a", "pump", "socket://127.0.0.1:7000", outside),
    ]
    path = write_manifest(tmp_path / "fleet.json", devices)
    raw = json.loads(path.read_text())
    assert raw["version"] == 1
    assert raw["devices"][0]["key"] == "scs-1/pairing.key" and raw["devices"][1]["key"] == str(outside)
    assert not list(tmp_path.glob(".fleet.json*"))  # the temporary file was renamed over, not left
    assert load_manifest(path) == devices


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "is not JSON"),
        ([GOOD], "expected an object with 'version' and 'devices'"),
        ({"devices": [GOOD]}, "version None, this tool reads version 1"),
        ({"version": 2, "devices": [GOOD]}, "version 2, this tool reads version 1"),
        ({"version": 1, "devices": []}, "'devices' must be a non-empty list"),
        ({"version": 1, "devices": [{**GOOD, "port": None}]}, r"devices\[0\]: field 'port' missing"),
        ({"version": 1, "devices": [{**GOOD, "port": 7}]}, r"devices\[0\]: field 'port' 7 is not a non-empty string"),
        ({"version": 1, "devices": [{**GOOD, "kind": "ipg"}]}, "kind 'ipg' is not one of scs, pump"),
        ({"version": 1, "devices": [{**GOOD, "baud": 9600}]}, r"unknown field\(s\) baud"),
        ({"version": 1, "devices": [GOOD, GOOD]}, r"devices\[1\]: name 'scs-1' is used twice"),
        (
            {"version": 1, "devices": [{**GOOD, "key": "nope.key"}]},
            r"\(scs-1\): key file .*nope.key does not",
        ),
    ],
)
def test_a_bad_manifest_is_refused_naming_what_is_wrong(tmp_path, body, message):
    _key(tmp_path / "scs-1" / "pairing.key")
    path = _write(tmp_path, body)
    with pytest.raises(ManifestError, match=message) as info:
        load_manifest(path)
    assert str(path) in str(info.value)


def test_a_missing_manifest_says_where_it_comes_from(tmp_path):
    with pytest.raises(ManifestError, match=r"fleet\.json does not exist \(implant-mock writes it in --state\)"):
        load_manifest(tmp_path / "fleet.json")
