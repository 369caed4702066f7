"""The fleet manifest: which devices an emulator serves, where, and with which key (JSON, version 1).

``implant-mock`` writes ``fleet.json`` in its state directory once every port exists (atomically:
a reader sees the old file or the new one, never half of one); ``implant-dashboard --fleet FILE``
reads it instead of a ``--port``/``--key`` pair per device. Format (docs/fleet.md)::

    {"version": 1, "written_by": "implant-mock", "devices": [
        {"name": "scs-1", "kind": "scs", "serial": "SCS-1A2B3C", "port": "/dev/pts/7",
         "key": "scs-1/pairing.key"}, ...]}

``port`` is a pyserial URL or a pty path; ``key`` is the pairing-key file, relative to the
manifest's own folder unless absolute; ``serial`` is optional. ``load_manifest`` refuses a bad
file with a ``ManifestError`` that names the file, the entry and the field. Must not import
``device_mock`` or ``dashboard`` (both use this module).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 1
MANIFEST_NAME = "fleet.json"
KINDS = ("scs", "pump")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, the entry and what is wrong."""


@dataclass(frozen=True)
class ManifestDevice:
    """One device of a manifest; ``key`` resolved to a usable path when loaded."""

    name: str
    kind: str
    port: str
    key: Path
    serial: str = ""


def write_manifest(path: str | os.PathLike[str], devices: Iterable[ManifestDevice]) -> Path:
    """Write the manifest at ``path`` atomically (a temporary file, fsync, rename); return the path.

    Key paths inside the manifest's folder are written relative to it, so the state directory can
    be moved or mounted elsewhere with its manifest still right.
    """
    target = Path(path)
    folder = target.parent.resolve()
    entries: list[dict[str, Any]] = []
    for device in devices:
        key = device.key.resolve()
        key_text = str(key.relative_to(folder)) if key.is_relative_to(folder) else str(key)
        entry = {"name": device.name, "kind": device.kind, "serial": device.serial, "port": device.port}
        entries.append({**entry, "key": key_text})
    body = json.dumps({"version": MANIFEST_VERSION, "written_by": "implant-mock", "devices": entries}, indent=1)
    tmp = target.with_name(f".{target.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        out.write(body + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    return target


def load_manifest(path: str | os.PathLike[str]) -> list[ManifestDevice]:
    """Read and check a manifest; every key file must exist. ``ManifestError`` says what is wrong."""
    source = Path(path)
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"fleet manifest {source} does not exist (implant-mock writes it in --state)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"fleet manifest {source}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"fleet manifest {source} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ManifestError(f"fleet manifest {source}: expected an object with 'version' and 'devices'")
    version = data.get("version")
    if version != MANIFEST_VERSION:
        raise ManifestError(f"fleet manifest {source}: version {version!r}, this tool reads version {MANIFEST_VERSION}")
    entries = data.get("devices")
    if not isinstance(entries, list) or not entries:
        raise ManifestError(f"fleet manifest {source}: 'devices' must be a non-empty list")
    devices: list[ManifestDevice] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        device = _device(entry, f"fleet manifest {source}: devices[{i}]", source.parent)
        if device.name in seen:
            raise ManifestError(f"fleet manifest {source}: devices[{i}]: name {device.name!r} is used twice")
        seen.add(device.name)
        devices.append(device)
    return devices


def _device(entry: object, where: str, folder: Path) -> ManifestDevice:
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: expected an object with name, kind, port and key")
    for name in ("name", "kind", "port", "key"):
        value = entry.get(name)
        if not isinstance(value, str) or not value:
            got = "missing" if value is None else f"{value!r} is not a non-empty string"
            raise ManifestError(f"{where}: field {name!r} {got}")
    unknown = set(entry) - {"name", "kind", "port", "key", "serial"}
    if unknown:
        raise ManifestError(
            f"{where}: unknown field(s) {', '.join(sorted(unknown))}; valid: name, kind, port, key, serial"
        )
    if entry["kind"] not in KINDS:
        raise ManifestError(f"{where}: kind {entry['kind']!r} is not one of {', '.join(KINDS)}")
    serial = entry.get("serial", "")
    if not isinstance(serial, str):
        raise ManifestError(f"{where}: field 'serial' {serial!r} is not a string")
    key = Path(entry["key"])
    key = key if key.is_absolute() else folder / key
    if not key.is_file():
        raise ManifestError(f"{where} ({entry['name']}): key file {key} does not exist")
    return ManifestDevice(entry["name"], entry["kind"], entry["port"], key, serial)
