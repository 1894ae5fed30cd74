"""Small helpers of the lab tests: Slurm commands as root and job records."""

from __future__ import annotations

import os
import subprocess

from hcqw.lab.pytest_plugin import wait_for

DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
        "PREEMPTED"}

HETJOB_SCRIPT = """#!/bin/bash
#SBATCH -p cpu -n 1
#SBATCH hetjob
#SBATCH -p qpu --gres=qpu:1 -n 1
echo "het_size=$SLURM_HET_SIZE"
srun --het-group=1 bash -c 'echo qpu_on=$SLURMD_NODENAME'
srun --het-group=0 bash -c 'echo cpu_on=$SLURMD_NODENAME'
"""


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    """Run a Slurm command as root (against os.environ's SLURM_CONF unless env given), return stdout."""
    result = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{argv} failed: {result.stderr}"
    return result.stdout


def job_records(job: str, env: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """JobId -> the fields of ``scontrol show job`` for a job (all components of a hetjob leader)."""
    records = {}
    for line in run(["scontrol", "-o", "show", "job", job], env).splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        records[fields["JobId"]] = fields
    return records


def job_states(job: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """JobId -> JobState for a job (all components of a hetjob leader)."""
    return {job_id: fields["JobState"] for job_id, fields in job_records(job, env).items()}


def wait_done(job: str, env: dict[str, str] | None = None, timeout: float = 20) -> dict[str, str]:
    return wait_for(lambda: (s := job_states(job, env)) and all(v in DONE for v in s.values()) and s,
                    timeout, f"job {job} to finish")
