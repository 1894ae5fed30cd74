"""The fair-share scenario of issue 14, shared by the test and ``bench/fair_share.py``.

A heavy lab user submits several split chains and a light user one, together, all on one qpu
node (the others drained). Every figure comes from SLURM's own records of the jobs:

- a quantum node's *wait* runs from when it became ready (its predecessor job ended) to the
  start of its qpu component;
- a *quantum block* is a qpu component's allocation (start to end);
- a *hand-over* is the gap between one qpu component's end and the next one's start on the node,
  when the next one was already waiting.

SLURM records whole seconds, so comparisons carry one second of slack (``RECORD_SLACK``).
"""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from hcqw.hetjob.records import qpu_component_times
from hcqw.lab import LabCluster
from hcqw.slurm import Phase

HEAVY, LIGHT = "hcqw-alice", "hcqw-bob"
RECORD_SLACK = 1.0  # s: SLURM's records have whole seconds

# Run as the submitting lab user (its own environment, the site's Python): submit one chain of the
# hetjob tests' loop with the given nice step, print [[node, job id], ...].
_SUBMIT = """
import json, sys
from hcqw.hetjob.chain import submit_chain
from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.slurm import open_backend
args = json.loads(sys.argv[1])
chain = submit_chain(open_backend("slurm"), "tests.support.loops:make", args["params"], args["workflow"],
                     args["runs_dir"], NodeJobSettings(device_service=args["device_service"]), args["nice_step"])
print(json.dumps(chain.jobs))
"""


@dataclass(frozen=True)
class Fairness:
    """What the light user got, from SLURM's records."""

    light_waits: tuple[float, ...]  # the light user's waits for the QPU, in order
    light_wait_max: float  # the light user's longest wait for the QPU
    block_max: float  # the longest quantum block (qpu component allocation)
    handover_max: float  # the longest hand-over between two quantum nodes
    light_end: float  # when the light user's workflow ended (its last job)
    heavy_last_end: float  # when the heavy user's last workflow ended
    makespan: float

    @property
    def light_not_starved(self) -> bool:
        return self.light_wait_max <= self.block_max + self.handover_max + RECORD_SLACK

    @property
    def light_finishes_first(self) -> bool:
        return self.light_end < self.heavy_last_end


@contextmanager
def only_qpu_node(lab: LabCluster, keep: str) -> Iterator[None]:
    """Drain every qpu node but ``keep`` (SLURM runs nothing new there) for the duration."""
    others = [h.name for h in lab.hosts if h.role == "qpu" and h.name != keep]
    scontrol = lambda *args: subprocess.run(["scontrol", "update", *args], env=lab.env, check=True,  # noqa: E731
                                            capture_output=True, text=True, timeout=30)
    for node in others:
        scontrol(f"NodeName={node}", "State=DRAIN", "Reason=fair-share run on one QPU")
    try:
        yield
    finally:
        for node in others:
            scontrol(f"NodeName={node}", "State=RESUME")


def raw_usage(lab: LabCluster) -> dict[str, int]:
    """Each lab user's recorded usage as fair share sees it (``sshare``'s RawUsage, billing-seconds)."""
    out = subprocess.run(["sshare", "-a", "-n", "-P", "-o", "User,RawUsage"], env=lab.env, check=True,
                         capture_output=True, text=True, timeout=30).stdout
    usage: dict[str, int] = {}
    for line in out.splitlines():
        user, _, raw = line.partition("|")
        if user.strip():
            usage[user.strip()] = usage.get(user.strip(), 0) + int(raw or 0)
    return usage


def make_heavier(lab: LabCluster, backend, user: str, other: str, seconds: int = 5, timeout: float = 180.0) -> None:
    """Give ``user`` more recorded QPU usage than ``other`` (a plain qpu job), and wait until fair share
    counts it: SLURM adds usage only every PriorityCalcPeriod (1 min), so on a fresh database every user
    is equal until then and fair share cannot prefer anyone."""
    if raw_usage(lab).get(user, 0) > raw_usage(lab).get(other, 0):
        return
    result = lab.exec(user, ["sbatch", "--parsable", "-p", "qpu", "--gres=qpu:1", "-o", "/dev/null", "--wrap",
                             f"sleep {seconds}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    state = backend.wait(result.stdout.strip().split(";")[0], timeout=timeout)
    assert state.phase is Phase.COMPLETED, state
    deadline = time.monotonic() + timeout
    while not raw_usage(lab).get(user, 0) > raw_usage(lab).get(other, 0):
        assert time.monotonic() < deadline, f"fair share did not count {user}'s usage: {raw_usage(lab)}"
        time.sleep(2)


def submit_as(lab: LabCluster, user: str, workflow: str, runs_dir: Path, params: dict, nice_step: int
              ) -> list[tuple[str, str]]:
    """One chain submitted by ``user`` (its jobs, run directory and SLURM charge are the user's)."""
    order = {"params": params, "workflow": workflow, "runs_dir": str(runs_dir), "nice_step": nice_step,
             "device_service": lab.qpu_service_address("%n")}
    result = lab.exec(user, [str(lab.site.python), "-c", _SUBMIT, json.dumps(order)], capture_output=True, text=True,
                      timeout=300, env={"PYTHONPATH": str(lab.site.src)})
    assert result.returncode == 0, f"{user} could not submit {workflow}: {result.stderr[-2000:]}"
    return [(node, job) for node, job in json.loads(result.stdout.strip().splitlines()[-1])]


def run(lab: LabCluster, backend, tag: str, heavy_workflows: int = 4, iterations: int = 3, hold: float = 1.0,
        nice_step: int = 1000, timeout: float = 600.0) -> tuple[Fairness, dict[str, list[tuple[str, str]]]]:
    """Submit the heavy user's chains, then the light user's, one after another at once; follow them to the end."""
    params = {"iterations": iterations, "hold": hold, "shots": 20}
    owners = {f"{tag}-a{j}": HEAVY for j in range(heavy_workflows)} | {f"{tag}-b0": LIGHT}
    jobs = {wf: submit_as(lab, user, wf, lab.home(user) / "fair-share", params, nice_step)
            for wf, user in owners.items()}
    deadline = time.monotonic() + timeout
    for wf, listed in jobs.items():
        for node, job_id in listed:
            state = backend.wait(job_id, timeout=max(1.0, deadline - time.monotonic()))
            assert state.phase is Phase.COMPLETED, f"{wf}/{node} (job {job_id}) ended {state.state}"
    states = backend.status([job for listed in jobs.values() for _, job in listed], force=True)
    return measure(jobs, states, light={wf for wf, user in owners.items() if user == LIGHT}), jobs


def measure(jobs: dict[str, list[tuple[str, str]]], states: dict, light: set[str]) -> Fairness:
    """``Fairness`` of a run from SLURM's records (``states``: job id -> NodeState, jobs in chain order)."""
    ready: dict[str, float] = {}  # job id -> when its predecessor ended
    holds: list[tuple[float, float, str]] = []  # (qpu start, qpu end, job id)
    ends: dict[str, float] = {}
    for wf, listed in jobs.items():
        previous_end = None
        for node, job_id in listed:
            leader = states[job_id].component(0)
            if node.startswith("q"):
                start, end = qpu_component_times(states[job_id])
                assert start is not None and end is not None, f"no qpu component times for {wf}/{node}"
                holds.append((start, end, job_id))
                if previous_end is not None:
                    ready[job_id] = previous_end
            previous_end = leader.end_time.timestamp()
        ends[wf] = previous_end
    holds.sort()
    handovers = [nxt[0] - cur[1] for cur, nxt in zip(holds, holds[1:])
                 if ready.get(nxt[2], float("-inf")) <= cur[1]]  # the next one was waiting
    light_jobs = {job for wf in light for _, job in jobs[wf]}
    light_waits = [start - ready[job] for start, _, job in holds if job in light_jobs and job in ready]
    starts = [states[job].component(0).start_time.timestamp() for listed in jobs.values() for _, job in listed[:1]]
    return Fairness(light_waits=tuple(light_waits), light_wait_max=max(light_waits), block_max=max(end - start for start, end, _ in holds),
                    handover_max=max(handovers, default=0.0),
                    light_end=max(ends[wf] for wf in light),
                    heavy_last_end=max(end for wf, end in ends.items() if wf not in light),
                    makespan=max(ends.values()) - min(starts))
