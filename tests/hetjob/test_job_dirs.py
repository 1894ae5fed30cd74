"""A quantum node's files are its user's alone (issue 24, finding 5): the batch script makes the
job directory fresh or accepts only one of the user's that no one else may write (never a link),
the node trusts a gateway address only in such a directory, the run directory of a job must be
private, and hcqw's own processes never import from their working directory (``python -P``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hcqw.device.hold import hold_command
from hcqw.hetjob.device import GatewayDevice
from hcqw.hetjob.jobs import NodeJobSettings, command_request, quantum_body
from hcqw.metrics import MetricsLog
from hcqw.trust import UntrustedPath


@pytest.fixture
def run_dir(tmp_path):
    tmp_path.chmod(0o700)
    (tmp_path / "jobs").mkdir(mode=0o700)
    return tmp_path


def run_script(run_dir, env=None):
    """The hetjob script up to and including its job directory check (srun is not there: it stops after)."""
    body = quantum_body("true", run_dir / "jobs" / "q1", run_dir / "metrics" / "gateway.jsonl", NodeJobSettings())
    head = body.split("release_qpu()")[0] + "echo JOBDIR-OK\n"
    return subprocess.run(["bash", "-c", head], env={**os.environ, "SLURM_JOB_ID": "77", **(env or {})},
                          capture_output=True, text=True, timeout=30)


def test_the_job_directory_is_made_fresh_and_private(run_dir):
    result = run_script(run_dir)
    assert result.returncode == 0 and "JOBDIR-OK" in result.stdout, result.stderr
    made = run_dir / "jobs" / "q1.77"
    assert made.is_dir() and (made.stat().st_mode & 0o777) == 0o700 and made.stat().st_uid == os.geteuid()
    assert run_script(run_dir).returncode == 0  # a requeue-free rerun of the same id: still the user's, private


@pytest.mark.parametrize("plant", ["group-writable", "world-writable", "link"])
def test_a_prepared_job_directory_is_refused(run_dir, plant):
    target = run_dir / "jobs" / "q1.77"
    if plant == "link":
        elsewhere = run_dir / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        target.symlink_to(elsewhere)
    else:
        target.mkdir()
        target.chmod(0o770 if plant == "group-writable" else 0o777)
    result = run_script(run_dir)
    assert result.returncode == 1 and "JOBDIR-OK" not in result.stdout
    assert f"job directory {target} is not private" in result.stderr and "remove it" in result.stderr


def test_a_job_in_a_run_directory_others_may_write_is_not_submitted(run_dir):
    run_dir.chmod(0o777)
    with pytest.raises(UntrustedPath, match="run directory .* is not private.*writable by others.*mkdir -m 700"):
        command_request("true", workflow="wf", name="n", workdir=run_dir, settings=NodeJobSettings(), quantum=True)


def test_the_node_trusts_no_gateway_address_where_others_may_write(run_dir):
    job_dir = run_dir / "jobs" / "q1.77"
    job_dir.mkdir(mode=0o700)
    (job_dir / "gateway.address").write_text("tcp://127.0.0.1:9")
    job_dir.chmod(0o777)
    with pytest.raises(UntrustedPath, match="job directory .* writable by others"):
        GatewayDevice(job_dir / "gateway.address", connect_timeout=1).wait_address()
    job_dir.chmod(0o700)
    (job_dir / "gateway.address").unlink()
    (job_dir / "gateway.address").symlink_to(run_dir / "planted")
    (run_dir / "planted").write_text("tcp://10.9.9.9:1")
    with pytest.raises(UntrustedPath, match="symbolic link"):
        GatewayDevice(job_dir / "gateway.address", connect_timeout=1).wait_address()


def test_metrics_logs_are_not_written_through_a_link(run_dir):
    victim = run_dir / "victim.txt"
    victim.write_text("intact\n")
    (run_dir / "metrics").mkdir()
    (run_dir / "metrics" / "qpu.jsonl").symlink_to(victim)
    with pytest.raises(UntrustedPath, match="symbolic link"):
        MetricsLog(run_dir / "metrics" / "qpu.jsonl").record("hold", workflow="w", node="n", start=0, end=1)
    assert victim.read_text() == "intact\n"


def test_hcqw_launches_never_import_from_their_working_directory(tmp_path):
    """A planted hcqw/ package in the working directory (a shared project directory, a job's cwd) is not
    imported by the hold process or by the job scripts' hcqw commands."""
    planted = tmp_path / "hcqw"
    planted.mkdir()
    (planted / "__init__.py").write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w').close()\n")
    argv = hold_command("modelled", "wf", "n")[:-1] + ["--help"]
    assert argv[1] == "-P"
    subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=60, check=True)
    assert not (tmp_path / "PWNED").exists()
    body = quantum_body("true", tmp_path / "jobs" / "q", tmp_path / "g.jsonl", NodeJobSettings(python=sys.executable))
    assert f"{sys.executable} -P -m hcqw.hetjob.gateway" in body
