"""What the per-call lab tests read and check: SLURM's records of a driver's call jobs against the driver's calls.

A call's qpu job is named ``hcqw:<workflow>:<node>`` (``hcqw.hetjob.percall.call_job_name``) and runs on the
qpu partition; the driver's own job, named ``...driver``, on a cpu partition.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from hcqw.slurm.commands import run_slurm
from tests.support import ROOT

PERCALL_DRIVER = "tests/hetjob/percall_driver.py"  # from a checkout's root (the lab site's, or this one)
SLURM_RESOLUTION_S = 1.0  # SLURM's StartTime/EndTime are whole seconds, truncated


def stamp(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def call_jobs(workflow: str, env: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """SLURM's records (``scontrol -o show job``: finished jobs stay for MinJobAge) of the qpu jobs of every driver
    of ``workflow``, in the order they started; ``env``: a lab's (SLURM_CONF), over this process's environment."""
    shown = run_slurm(["scontrol", "-o", "show", "job"], env={**os.environ, **env} if env else None)
    records = [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in shown.stdout.splitlines()]
    return sorted((r for r in records if r.get("JobName", "").startswith(f"hcqw:{workflow}:")
                   and r.get("Partition") == "qpu"), key=lambda r: (stamp(r["StartTime"]), int(r["JobId"])))


def read_calls(path: Path) -> list[dict]:
    """The JSON lines of ``percall_driver.py``: one per call, with the driver's clock around it."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_calls_held_per_call(user: str, jobs: Sequence[dict], calls: Sequence[dict], qpu_hosts: set[str]) -> None:
    """Each of ``percall_driver.py``'s calls got a qpu job of its own, on a qpu host, as ``user``, inside the call;
    none was allocated between calls (the call's job ended before the next call asked for the qpu)."""
    assert len(jobs) == len(calls), (user, [j["JobId"] for j in jobs], len(calls))
    assert {j["NodeList"] for j in jobs} <= qpu_hosts, jobs
    assert all(j["UserId"].startswith(f"{user}(") for j in jobs), [j["UserId"] for j in jobs]
    assert all(j["JobState"] in ("COMPLETED", "CANCELLED") for j in jobs), [j["JobState"] for j in jobs]
    for job, call in zip(jobs, calls):
        assert call["begin"] - SLURM_RESOLUTION_S < stamp(job["StartTime"]), (job, call)
        assert stamp(job["EndTime"]) <= call["closed"] + SLURM_RESOLUTION_S, (job, call)
    for job, next_call in zip(jobs, calls[1:]):
        assert stamp(job["EndTime"]) + SLURM_RESOLUTION_S <= next_call["begin"], (job, next_call)


def embedded_calls(tmp_path: Path, calls: int) -> list[list[int]]:
    """The samples of ``percall_driver.py``'s calls on the embedded default (no SLURM, the machine's simulator)."""
    out = tmp_path / "embedded-calls.jsonl"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(ROOT),
           "HCQW_STATE_DIR": str(tmp_path / "embedded-state"), "HCQW_CHECKPOINT_KEY": str(tmp_path / "embedded-key")}
    subprocess.run([sys.executable, str(ROOT / PERCALL_DRIVER), str(out), str(calls), "0"], env=env, check=True,
                   timeout=300, capture_output=True)
    return [c["samples"] for c in read_calls(out)]
