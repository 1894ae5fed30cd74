"""A Parsl script on ``hcqw_config(backend="slurm")`` through a controller outage, on the lab cluster.

slurmctld is stopped mid-run and started again: meanwhile a qpu app's job ends (its status cannot be
asked) and the next qpu app is submitted (its job cannot be). What users rely on: the script finishes
with the right results, each app submitted once.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from hcqw.lab.pytest_plugin import controller_down, wait_for
from hcqw.slurm.commands import run_slurm

SCRIPT = Path(__file__).with_name("outage_script.py")
pytestmark = [pytest.mark.slurm, pytest.mark.slow]
log = logging.getLogger(__name__)


def jobs(workflow: str, states: str = "all") -> list[tuple[str, str]]:
    """(name, state) of the leaders of the workflow's jobs SLURM lists."""
    out = run_slurm(["squeue", "-h", "-t", states, "-o", "%i %j %T"]).stdout
    return sorted((name, state) for job_id, name, state in (line.split() for line in out.splitlines())
                  if name.startswith(f"hcqw:{workflow}:") and "+1" not in job_id)


def test_a_script_rides_out_a_controller_restart(tmp_path, job_env, slurm_lab):
    workflow = f"outage-{uuid.uuid4().hex[:6]}"
    run_dir, go = tmp_path / workflow, tmp_path / "go"
    run_dir.mkdir()
    # A session of its own: Parsl's interchange outlives a killed script and would hold its output pipe.
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), str(go)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        gateway = "parsl/*/submit_scripts/jobs/qpu-app1.*/gateway.address"
        wait_for(lambda: any(p.read_text() for p in run_dir.glob(gateway)), 180, "the first qpu app's gateway")
        log.info("jobs before the outage: %s", jobs(workflow))
        with controller_down(slurm_lab):
            go.touch()  # the first app ends while the controller is down, and the script submits the second
            wait_for(lambda: (run_dir / "first-done").exists(), 60, "the first app's result")
            time.sleep(5)
        output = proc.communicate(timeout=300)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    log.info("script output:\n%s", output[-3000:])
    assert proc.returncode == 0, output[-3000:]
    assert json.loads((run_dir / "result.json").read_text()) == [10, 10]
    qpu_jobs = [name for name, _ in jobs(workflow) if "qpu-app" in name]
    assert len(qpu_jobs) == 2, jobs(workflow)  # one per app
