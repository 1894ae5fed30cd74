"""The grant records of a qpu host (hcqw.service.grants): only root's records in root's directory count, and
only while their job runs a step on the host (a slurmstepd listening in the spool, here a real listening
Unix socket made as a slurmstepd makes it)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from hcqw.errors import DeviceError
from hcqw.service.grants import Grants

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="grant records are root's: the test makes some")


def listen(spool: Path, job: str, step: str = "4294967291") -> socket.socket:
    """A running step of ``job`` on this host: its slurmstepd's socket, root's, listening."""
    stepd = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stepd.bind(str(spool / f"hcqw-q1_{job}.{step}"))
    stepd.listen()
    return stepd


@pytest.fixture
def spool(tmp_path) -> Path:
    path = tmp_path / "spool"
    path.mkdir(mode=0o755)
    return path


def test_grants_are_root_owned_records_in_a_root_directory(tmp_path, spool):
    directory = tmp_path / "grants"
    directory.mkdir(mode=0o755)
    grants = Grants(directory, spool)
    assert grants.jobs() == {} and not grants.holds(1001)
    steps = [listen(spool, job) for job in ("42", "43", "44", "45")]
    (directory / "42").write_text("1001 42\n")
    assert grants.holds(1001) and grants.jobs() == {"42": 1001}
    (directory / "43").write_text("1002 43\n")
    os.chown(directory / "43", 1002, 1002)  # a record a user wrote (could they): ignored
    (directory / "44").symlink_to(directory / "42")  # a link: ignored
    (directory / ".45.tmp").write_text("1003 45\n")  # the Prolog's temporary file: ignored
    assert grants.jobs() == {"42": 1001}
    (directory / "42").unlink()  # the Epilog
    assert not grants.holds(1001)
    for stepd in steps:
        stepd.close()


def test_a_record_counts_only_while_its_job_runs_a_step_on_the_host(tmp_path, spool):
    directory = tmp_path / "grants"
    directory.mkdir(mode=0o755)
    grants = Grants(directory, spool)
    (directory / "42").write_text("1001 42\n")
    assert not grants.holds(1001)  # the Prolog ran, no step yet
    stepd = listen(spool, "42")
    assert grants.holds(1001)  # its step started: a refusal is not kept
    (spool / "cred_state").write_text("")  # slurmd's other files, and other jobs' steps: not this job's
    other = listen(spool, "420")
    (spool / "hwloc_topo_42.4294967291.xml").write_text("")
    stepd.close()  # killed: the socket file stays and refuses connections (measured on the lab's slurmstepd)
    assert (spool / "hcqw-q1_42.4294967291").exists()
    grants._alive.clear()  # past the second a live answer is kept
    assert not grants.holds(1001) and grants.jobs() == {}
    other.close()
    user_made = spool / "hcqw-q1_42.0"
    user_made.unlink(missing_ok=True)
    stepd = listen(spool, "42", "0")
    os.chown(user_made, 1001, 1001, follow_symlinks=False)  # a socket that is not root's: no slurmstepd made it
    assert not grants.holds(1001)
    stepd.close()


def test_a_grant_directory_others_could_write_is_refused(tmp_path, spool):
    directory = tmp_path / "grants"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    with pytest.raises(DeviceError, match="writable by root only"):
        Grants(directory, spool)
    directory.chmod(0o755)
    os.chown(directory, 1001, 1001)
    with pytest.raises(DeviceError, match="must be root's"):
        Grants(directory, spool)
    link = tmp_path / "link"
    link.symlink_to(directory)
    with pytest.raises(DeviceError, match="a link is refused"):
        Grants(link, spool)


def test_a_spool_that_is_missing_or_not_roots_is_refused_naming_the_setting(tmp_path, spool):
    directory = tmp_path / "grants"
    directory.mkdir(mode=0o755)
    with pytest.raises(DeviceError, match="--slurmd-spool .*no such directory.*SlurmdSpoolDir"):
        Grants(directory, tmp_path / "absent")
    os.chown(spool, 1001, 1001)
    with pytest.raises(DeviceError, match="--slurmd-spool .*must be root's"):
        Grants(directory, spool)
