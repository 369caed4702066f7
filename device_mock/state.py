"""Crash-safe persistence of one device: its pairing key and its state, in a directory of its own.

``DIR/pairing.key``  the pairing key (hex, mode 0600), generated on first start;
``DIR/state.json``   the model's state, device time and scenario position, replaced atomically
                     (write to a temporary file, fsync, rename, fsync the directory), so after a
                     ``kill -9`` the file is either the previous state or the new one, never torn.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from protocols.auth import generate_pairing_key, load_pairing_key, write_pairing_key

from .model import DeviceModel

FORMAT = 1


class StateError(RuntimeError):
    """A state directory holds something we cannot resume from; the message says which file and why."""


class StateStore:
    """The state directory of one device."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.key_path = self.directory / "pairing.key"
        self.state_path = self.directory / "state.json"

    def pairing_key(self, label: str) -> tuple[bytes, bool]:
        """The device's pairing key, generated and written on first use; True if it was new."""
        if self.key_path.exists():
            return load_pairing_key(self.key_path), False
        key = generate_pairing_key()
        write_pairing_key(self.key_path, key, label)
        return key, True

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None on first start."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.state_path}: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(f"{self.state_path} is not valid JSON ({exc}); move it away to start afresh") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise StateError(f"{self.state_path} is not a format-{FORMAT} device state; move it away to start afresh")
        return data

    def save(self, model: DeviceModel, device_time_ms: int, scenario_start_ms: int, scenario_position: int) -> None:
        """Write the state atomically."""
        data = {
            "format": FORMAT,
            "kind": model.kind.name.lower(),
            "serial": model.serial,
            "device_time_ms": device_time_ms,
            "scenario_start_ms": scenario_start_ms,
            "scenario_position": scenario_position,
            "model": model.to_state(),
        }
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.state_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
