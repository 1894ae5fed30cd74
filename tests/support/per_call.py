"""What the per-call lab tests read and check: SLURM's records of a driver's call jobs against the driver's calls.

A call's qpu job is named ``hcqw:<workflow>:<node>`` (``hcqw.hetjob.percall.call_job_name``) and runs on the
qpu partition; the driver's own job, named ``...driver``, on a cpu partition.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from hcqw.lab import LabCluster
from hcqw.lab.users import USERS
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


def submit_driver(lab: LabCluster, user: str, home: Path, workflow: str, script: str, *args: str, wait: bool = True,
                  call_options: Sequence[str] = (), env: Mapping[str, str] | None = None,
                  timeout: float = 600) -> subprocess.CompletedProcess:
    """``hcqw slurm submit`` of ``script args`` as ``user`` from ``home`` (runs under ``home/runs``): its calls relay
    to the qpu hosts' resident QPU services; ``call_options``: each call job's own sbatch options."""
    return lab.exec(user, [str(lab.site.bin / "hcqw"), "slurm", "submit", "--runs-dir", str(home / "runs"),
                           "--workflow-id", workflow, "--device-service", lab.layout.qpu_service_address_pattern,
                           *(f"--call-option={option}" for option in call_options), *(["--wait"] if wait else []),
                           script, *args], cwd=home, env=env, capture_output=True, text=True, timeout=timeout)


def as_both_users(run: Callable[[str], dict]) -> dict[str, dict]:
    """``run(user)`` for hcqw-alice and hcqw-bob at once (a thread each): user -> what it returned."""
    results: dict[str, dict] = {}
    threads = [threading.Thread(target=lambda user=user: results.__setitem__(user, run(user))) for user in USERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results) == set(USERS), f"a user's run raised (see the thread's traceback above): {sorted(results)}"
    return results


def on_host(user: str, jobs: Sequence[dict]) -> list[tuple[float, float, str, int]]:
    """(start, end, user, job id) of ``user``'s call jobs, SLURM's records, for ``assert_turns``."""
    return [(stamp(j["StartTime"]), stamp(j["EndTime"]), user, int(j["JobId"])) for j in jobs]


def assert_turns(jobs: Sequence[tuple[float, float, str, int]]) -> list[str]:
    """The two users' call jobs on one qpu host (``on_host``): one at a time, and each user's calls with the other's
    between (interleaved, not one user's then the other's). Returns the owners in start order."""
    ordered = sorted(jobs, key=lambda job: (job[0], job[3]))
    for job, following in zip(ordered, ordered[1:]):
        assert job[1] <= following[0], (job, following)
    owners = [job[2] for job in ordered]
    for user in USERS:
        first, last = owners.index(user), len(owners) - 1 - owners[::-1].index(user)
        assert set(owners[first:last + 1]) == set(USERS), owners
    return owners


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
