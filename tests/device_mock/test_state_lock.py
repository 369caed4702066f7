"""The state directory's lock in one process: refused while held, named holder, nothing changed.

``flock`` locks belong to an open file description, so two ``StateLock`` objects of one process
exclude each other exactly like two processes do; the cross-process cases (a second
``implant-mock``, a ``kill -9`` holder) are in ``tests/integration/test_lifecycle.py``.
"""

from __future__ import annotations

import fcntl
import os

import pytest

from device_mock.state import StateError
from device_mock.state_lock import LOCK_NAME, StateLock, StateLockError


def test_the_holder_writes_its_pid_and_a_second_lock_is_refused_naming_dir_and_pid(tmp_path):
    with StateLock(tmp_path) as first:
        assert first.held
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        with pytest.raises(StateLockError) as refused:
            StateLock(tmp_path).acquire()
    assert isinstance(refused.value, StateError)  # the CLI's exit 2 path
    assert refused.value.holder_pid == os.getpid() and refused.value.directory == tmp_path
    message = str(refused.value)
    assert str(tmp_path) in message and f"pid {os.getpid()}" in message and "--state" in message


def test_a_refused_lock_leaves_the_lock_file_and_the_directory_as_they_were(tmp_path):
    holder = StateLock(tmp_path)
    holder.acquire()
    try:
        before = sorted(os.listdir(tmp_path)), (tmp_path / LOCK_NAME).read_bytes()
        mtime = (tmp_path / LOCK_NAME).stat().st_mtime_ns
        with pytest.raises(StateLockError):
            StateLock(tmp_path).acquire()
        assert (sorted(os.listdir(tmp_path)), (tmp_path / LOCK_NAME).read_bytes()) == before
        assert (tmp_path / LOCK_NAME).stat().st_mtime_ns == mtime
    finally:
        holder.release()


def test_a_released_lock_can_be_taken_again_and_the_file_stays(tmp_path):
    lock = StateLock(tmp_path)
    lock.acquire()
    lock.release()
    assert not lock.held and (tmp_path / LOCK_NAME).exists()
    with StateLock(tmp_path) as again:
        assert again.held
    lock.release()  # releasing twice is harmless


def test_a_stale_pid_in_an_unlocked_file_does_not_block_and_is_replaced(tmp_path):
    (tmp_path / LOCK_NAME).write_text("999999999\n")
    with StateLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"


def test_a_missing_state_directory_is_created(tmp_path):
    directory = tmp_path / "new" / "state"
    with StateLock(directory):
        assert (directory / LOCK_NAME).is_file()


def test_a_holder_that_has_not_written_its_pid_yet_is_named_unknown(tmp_path):
    fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(StateLockError) as refused:
            StateLock(tmp_path).acquire()
        assert refused.value.holder_pid is None and "pid unknown" in str(refused.value)
    finally:
        os.close(fd)


def test_a_state_path_that_is_a_file_is_refused_with_the_reason(tmp_path):
    not_a_dir = tmp_path / "state"
    not_a_dir.write_text("")
    with pytest.raises(StateError, match=f"state directory {not_a_dir} exists but is not a directory"):
        StateLock(not_a_dir).acquire()


def test_a_lock_file_that_cannot_be_opened_is_refused_with_the_reason(tmp_path):
    (tmp_path / LOCK_NAME).mkdir()
    with pytest.raises(StateError, match=f"cannot lock state directory {tmp_path}: Is a directory"):
        StateLock(tmp_path).acquire()
