"""The local device queue's directory is checked whole (issue 24, finding 8): a queue in a private
directory works; one below a directory others may write, or another user's, is refused with what
to do, before any ticket is taken."""

from __future__ import annotations

import os

import pytest

from hcqw.device.fifo_lock import FifoLock
from hcqw.errors import DeviceError


def test_a_queue_below_a_directory_others_may_write_is_refused(tmp_path):
    tmp_path.chmod(0o700)
    FifoLock(tmp_path / "ok" / "queue").release(FifoLock(tmp_path / "ok" / "queue").acquire({"node": "n"}))
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(DeviceError, match=f"device queue {shared}/queue is not private to you: {shared} is writable "
                                          "by others.*HCQW_DEVICE_DIR"):
        FifoLock(shared / "queue")
    assert not (shared / "queue" / "tickets").exists()


def test_a_queue_below_another_users_directory_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory away")
    tmp_path.chmod(0o700)
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    (theirs / "queue").mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(DeviceError, match=f"{theirs} belongs to nobody"):
        FifoLock(theirs / "queue")
