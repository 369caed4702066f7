"""Crash-safe persistence of one device: its pairing key and its state, in a directory of its own.

``DIR/pairing.key``  the clinician's pairing key (hex, mode 0600), generated on first start;
``DIR/patient.key``  the patient controller's pairing key (SPEC 3.8), made the same way;
``DIR/state.json``   the model's state, device time, scenario position and the exactly-once
                     memory of recent commands and their replies, replaced atomically
                     (write to a temporary file, fsync, rename, fsync the directory), so after a
                     ``kill -9`` the file is either the previous state or the new one, never torn.
``DIR/clock``        the device-time heartbeat: the latest device time the device reached, written
                     in place (16 bytes, no fsync) at every tick and before any reply leaves, so
                     a restart after a crash resumes from it rather than from the last full save
                     and the device clock never runs back behind anything a host was told.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

from protocols.auth import generate_pairing_key, load_pairing_key, write_pairing_key

from .model import DeviceModel

FORMAT = 1
_BEAT = struct.Struct("<QQ")  # device time, and its complement as a check against a torn or foreign file
_BEAT_CHECK = 0xFFFF_FFFF_FFFF_FFFF


class StateError(RuntimeError):
    """A state directory holds something we cannot resume from; the message says which file and why."""


class StateStore:
    """The state directory of one device."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.key_path = self.directory / "pairing.key"
        self.patient_key_path = self.directory / "patient.key"
        self.state_path = self.directory / "state.json"
        self.clock_path = self.directory / "clock"
        self._beat_fd: int | None = None

    def pairing_key(self, label: str) -> tuple[bytes, bool]:
        """The clinician's pairing key, generated and written on first use; True if it was new."""
        return _key_file(self.key_path, label)

    def patient_key(self, label: str) -> tuple[bytes, bool]:
        """The patient controller's pairing key (SPEC 3.8), made like the clinician's; True if new.

        A state directory from before the patient role gets one at its next start.
        """
        return _key_file(self.patient_key_path, f"{label} (patient controller)")

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

    def beat(self, device_time_ms: int) -> None:
        """Record that the device reached ``device_time_ms`` (cheap: one in-place write, no fsync).

        It survives the process (a ``kill -9``), not the machine: the page cache is written back
        by the kernel, and after a power loss the full save in ``state.json`` is what remains.
        """
        if self._beat_fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._beat_fd = os.open(self.clock_path, os.O_RDWR | os.O_CREAT, 0o644)
        os.pwrite(self._beat_fd, _BEAT.pack(device_time_ms, device_time_ms ^ _BEAT_CHECK), 0)

    def last_beat(self) -> int | None:
        """The device time of the last heartbeat, or None if there is none or it does not check."""
        try:
            raw = self.clock_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.clock_path}: {exc}") from exc
        if len(raw) != _BEAT.size:
            return None
        device_time_ms, check = _BEAT.unpack(raw)
        return device_time_ms if check == device_time_ms ^ _BEAT_CHECK else None

    def resume_time_ms(self, saved: dict[str, Any]) -> int:
        """Where the device clock resumes: the later of the full save and the heartbeat."""
        return max(int(saved["device_time_ms"]), self.last_beat() or 0)

    def close(self) -> None:
        """Release the heartbeat file (the state itself is always closed after each save)."""
        if self._beat_fd is not None:
            os.close(self._beat_fd)
            self._beat_fd = None

    def save(
        self,
        model: DeviceModel,
        device_time_ms: int,
        scenario_start_ms: int,
        scenario_position: int,
        replies: list[list[Any]] | None = None,
    ) -> None:
        """Write the state atomically; ``replies`` is the exactly-once memory (``ReplyMemory.to_state``)."""
        data = {
            "format": FORMAT,
            "kind": model.kind.name.lower(),
            "serial": model.serial,
            "device_time_ms": device_time_ms,
            "scenario_start_ms": scenario_start_ms,
            "scenario_position": scenario_position,
            "model": model.to_state(),
            "replies": replies or [],
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


def _key_file(path: Path, label: str) -> tuple[bytes, bool]:
    """The key in ``path``, or a new one written there; True if it was new."""
    if path.exists():
        return load_pairing_key(path), False
    key = generate_pairing_key()
    write_pairing_key(path, key, label)
    return key, True
