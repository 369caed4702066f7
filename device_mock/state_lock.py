"""One process per state directory: the exclusive lock ``implant-mock`` holds on ``--state``.

``DIR/.lock`` is ``flock``ed (exclusive, non-blocking) before anything else in DIR is read or
written, and held for the life of the process; the holder writes its pid into it. Two emulators on
one directory would each resume the same saved state and then overwrite each other's saves, losing
acknowledged changes and reusing event numbers, so the second one is refused and touches nothing.

The kernel drops an ``flock`` when its holder dies, even by ``kill -9``, so a lock file left behind
never blocks a restart: the pid text only names the holder in the refusal. The file is never
removed: unlinking it while another process has it open would let two processes each lock a
different file of the same name.

Owns the lock file only. Imports ``state`` for its error type; must not import ``device``,
``server`` or ``cli`` (nor ``dashboard``).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from .state import StateError

LOCK_NAME = ".lock"


class StateLockError(StateError):
    """The state directory is locked by another live process; the message names the directory and its pid."""

    def __init__(self, directory: Path, holder_pid: int | None) -> None:
        self.directory = directory
        self.holder_pid = holder_pid
        holder = f"pid {holder_pid}" if holder_pid is not None else "pid unknown"
        super().__init__(
            f"state directory {directory} is in use by another implant-mock ({holder}); "
            "stop that one first, or give this one another --state"
        )


class StateLock:
    """The exclusive lock of one state directory, held from ``acquire()`` until ``release()``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True between a successful ``acquire()`` and ``release()``."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ``StateLockError``, having changed nothing in an existing directory.

        ``StateError`` (with the reason) when the directory or its lock file cannot be made or opened.

        Creates the directory and the (empty) lock file when they do not exist yet; the pid is
        written only once the lock is ours, so a refused process never alters the file.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this process")
        if self.directory.exists() and not self.directory.is_dir():
            raise StateError(f"state directory {self.directory} exists but is not a directory")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(f"cannot lock state directory {self.directory}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StateLockError(self.directory, holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)  # a crashed holder's pid may still be there
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except BaseException:
            os.close(fd)  # closing the descriptor releases the lock
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (a no-op when not held); the file stays, emptied of our pid."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # still ours here: nobody else can have written to it
        except OSError:
            pass  # the pid text is only informative; the lock goes with the descriptor anyway
        os.close(fd)

    def __enter__(self) -> StateLock:
        if not self.held:
            self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    """The pid the holder wrote, or None when it has not written it yet (or wrote something else)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
