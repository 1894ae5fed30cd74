"""The grant records of a qpu host (hcqw.service.grants): only root's records in root's directory count."""

from __future__ import annotations

import os

import pytest

from hcqw.errors import DeviceError
from hcqw.service.grants import Grants

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="grant records are root's: the test makes some")


def test_grants_are_root_owned_records_in_a_root_directory(tmp_path):
    directory = tmp_path / "grants"
    directory.mkdir(mode=0o755)
    grants = Grants(directory)
    assert grants.jobs() == {} and not grants.holds(1001)
    (directory / "42").write_text("1001 42\n")
    assert grants.holds(1001) and grants.jobs() == {"42": 1001}
    (directory / "43").write_text("1002 43\n")
    os.chown(directory / "43", 1002, 1002)  # a record a user wrote (could they): ignored
    (directory / "44").symlink_to(directory / "42")  # a link: ignored
    (directory / ".45.tmp").write_text("1003 45\n")  # the Prolog's temporary file: ignored
    assert grants.jobs() == {"42": 1001}
    (directory / "42").unlink()  # the Epilog
    assert not grants.holds(1001)


def test_a_grant_directory_others_could_write_is_refused(tmp_path):
    directory = tmp_path / "grants"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    with pytest.raises(DeviceError, match="writable by root only"):
        Grants(directory)
    directory.chmod(0o755)
    os.chown(directory, 1001, 1001)
    with pytest.raises(DeviceError, match="must be root's"):
        Grants(directory)
    link = tmp_path / "link"
    link.symlink_to(directory)
    with pytest.raises(DeviceError, match="a link is refused"):
        Grants(link)
