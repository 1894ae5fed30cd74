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
from hcqw.hetjob.chain import WINDOW_RECORDS
from hcqw.lab import LabCluster, users
from hcqw.lab.config import PARENT_ACCOUNT
from hcqw.slurm import Phase

HEAVY, LIGHT = "hcqw-alice", "hcqw-bob"
RECORD_SLACK = 1.0  # s: SLURM's records have whole seconds

# Run as the submitting lab user (its own environment, the site's Python): submit one chain of the
# hetjob tests' loop with the given window and nice step (and time limit in minutes), print "submitted",
# follow it to its end (the follower refills the window), unless told not to (a whole chain needs no
# follower), and print [[node, job id], ...].
_SUBMIT = """
import json, sys
from dataclasses import replace
from hcqw.hetjob.chain import follow_chain, submit_chain
from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.slurm import open_backend
args = json.loads(sys.argv[1])
settings = NodeJobSettings(device_service=args["device_service"])
if args.get("time_limit"):
    limit = args["time_limit"]
    settings = replace(settings, cpu=replace(settings.cpu, time_limit=limit), qpu=replace(settings.qpu, time_limit=limit))
backend = open_backend("slurm", poll_interval=0.5)
chain = submit_chain(backend, "tests.support.loops:make", args["params"], args["workflow"],
                     args["runs_dir"], settings, args["nice_step"], window=args["window"])
print("submitted", flush=True)
if args["follow"]:
    follow_chain(backend, chain, timeout=600)
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


def _sshare(lab: LabCluster, field: str) -> dict[str, str]:
    out = subprocess.run(["sshare", "-a", "-n", "-P", "-o", f"User,{field}"], env=lab.env, check=True,
                         capture_output=True, text=True, timeout=30).stdout
    rows = (line.partition("|") for line in out.splitlines())
    return {user.strip(): value for user, _, value in rows if user.strip()}


def raw_usage(lab: LabCluster) -> dict[str, int]:
    """Each lab user's recorded usage (``sshare``'s RawUsage, billing-seconds): slurmctld adds it as jobs run."""
    return {user: int(raw or 0) for user, raw in _sshare(lab, "RawUsage").items()}


def fair_share_factors(lab: LabCluster) -> dict[str, float]:
    """Each lab user's fair-share factor (``sshare``'s FairShare), what a job's priority is computed from
    when it is submitted: slurmctld recomputes it from the recorded usage every PriorityCalcPeriod only."""
    return {user: float(value or 0) for user, value in _sshare(lab, "FairShare").items()}


def charge_qpu_job(lab: LabCluster, backend, user: str, seconds: int = 5, timeout: float = 30.0
                   ) -> tuple[float, float]:
    """Run a plain qpu job as ``user``; return what SLURM billed it (billing x elapsed, from sacct) and how
    much ``user``'s RawUsage rose, waiting up to ``timeout`` s after the job ended for all of it (slurmctld
    adds a finished job's usage when it ends, given ``limits`` in AccountingStorageEnforce)."""
    before = raw_usage(lab).get(user, 0)
    result = lab.exec(user, ["sbatch", "--parsable", "-p", "qpu", "--gres=qpu:1", "-o", "/dev/null", "--wrap",
                             f"sleep {seconds}"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    job = result.stdout.strip().split(";")[0]
    state = backend.wait(job, timeout=120)
    assert state.phase is Phase.COMPLETED, state
    deadline = time.monotonic() + timeout
    billed = _billed(lab, job, deadline)
    # A tick of the decay thread while the job ran may have added part of it already: wait for all.
    while (risen := raw_usage(lab).get(user, 0) - before) < 0.99 * billed and time.monotonic() < deadline:
        time.sleep(0.5)
    return billed, float(risen)


def _billed(lab: LabCluster, job: str, deadline: float) -> float:
    """billing x elapsed seconds of ``job`` as slurmdbd recorded it."""
    while True:
        out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "ElapsedRaw,AllocTRES,End", "-j", job], env=lab.env,
                             check=True, capture_output=True, text=True, timeout=30).stdout.split("|")
        if len(out) == 3 and out[2].strip() not in ("", "Unknown"):
            tres = dict(item.split("=", 1) for item in out[1].split(","))
            return int(out[0]) * float(tres["billing"])
        assert time.monotonic() < deadline, f"slurmdbd did not record job {job}'s end"
        time.sleep(0.5)


def make_heavier(lab: LabCluster, backend, user: str, other: str, timeout: float = 180.0) -> None:
    """Make ``user`` the one with more recorded QPU usage: clear both users' usage (``sacctmgr ... set
    RawUsage=0`` on their parent account; the database outlives a lab, so earlier runs left some), then
    charge ``user`` one plain qpu job, and wait until the fair-share factors rank ``user`` below ``other``
    (``timeout`` s: a few PriorityCalcPeriods)."""
    subprocess.run(["sacctmgr", "-i", "modify", "account", "where", f"name={PARENT_ACCOUNT}",
                    f"cluster={lab.cluster_name}", "set", "RawUsage=0"], env=lab.env, check=True,
                   capture_output=True, text=True, timeout=30)
    deadline = time.monotonic() + 30
    while any(raw_usage(lab).get(u, 0) for u in (user, other)):  # slurmdbd passes the reset on to slurmctld
        assert time.monotonic() < deadline, f"sacctmgr's usage reset did not reach slurmctld: {raw_usage(lab)}"
        time.sleep(0.5)
    billed, _ = charge_qpu_job(lab, backend, user)
    usage = raw_usage(lab)
    assert usage.get(user, 0) > usage.get(other, 0), \
        f"fair share did not count {user}'s qpu job (billed {billed}): {usage}"
    # Jobs get their priority from the factors when submitted, and the factors follow the usage only
    # at slurmctld's next PriorityCalcPeriod tick: until then both users may still look equal.
    deadline = time.monotonic() + timeout
    while not (factors := fair_share_factors(lab)).get(user, 1.0) < factors.get(other, 0.0):
        assert time.monotonic() < deadline, \
            f"fair share did not rank {user} below {other}: {factors}, usage {raw_usage(lab)}"
        time.sleep(2)


def _start(lab: LabCluster, user: str, order: dict) -> subprocess.Popen:
    return subprocess.Popen(users.as_user(user, [str(lab.site.python), "-c", _SUBMIT, json.dumps(order)]),
                            env={**lab.user_env(user), "PYTHONPATH": str(lab.site.src)}, cwd=lab.home(user),
                            umask=users.USER_UMASK, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def submit_as(lab: LabCluster, user: str, workflow: str, runs_dir: Path, params: dict, nice_step: int,
              time_limit: int | None = None, window: int | None = WINDOW_RECORDS) -> subprocess.Popen:
    """One chain submitted and followed by ``user`` (its jobs, run directory and SLURM charge are the user's),
    returned once its first jobs are in SLURM; ``time_limit``: minutes per component (default
    NodeJobSettings'). ``jobs_of`` waits for its end and gives its jobs."""
    follower = _start(lab, user, {"params": params, "workflow": workflow, "runs_dir": str(runs_dir),
                                  "nice_step": nice_step, "device_service": lab.qpu_service_address("%n"),
                                  "time_limit": time_limit, "window": window, "follow": True})
    line = follower.stdout.readline()
    if line.strip() != "submitted":
        follower.kill()
        raise AssertionError(f"{user} could not submit {workflow}: {line}{follower.stderr.read()[-2000:]}")
    return follower


def submit_whole_as(lab: LabCluster, user: str, workflow: str, runs_dir: Path, params: dict, nice_step: int,
                    time_limit: int | None = None) -> list[tuple[str, str]]:
    """One chain submitted whole by ``user`` (``nice = iteration * nice_step``), nobody following it: its jobs,
    in order, as soon as they are in SLURM (for tests that watch or cancel a chain's jobs while it runs)."""
    submitter = _start(lab, user, {"params": params, "workflow": workflow, "runs_dir": str(runs_dir),
                                   "nice_step": nice_step, "device_service": lab.qpu_service_address("%n"),
                                   "time_limit": time_limit, "window": None, "follow": False})
    out, err = submitter.communicate(timeout=60)
    lines = out.strip().splitlines()
    assert submitter.returncode == 0 and lines[:1] == ["submitted"], f"{user} could not submit {workflow}: {out}{err[-2000:]}"
    return [(node, job) for node, job in json.loads(lines[-1])]


def jobs_of(follower: subprocess.Popen, workflow: str, timeout: float) -> list[tuple[str, str]]:
    """The jobs of a chain ``submit_as`` started, in order, once its follower has ended."""
    out, err = follower.communicate(timeout=timeout)
    assert follower.returncode == 0, f"{workflow} failed: {err[-2000:]}"
    return [(node, job) for node, job in json.loads(out.strip().splitlines()[-1])]


def run(lab: LabCluster, backend, tag: str, heavy_workflows: int = 4, iterations: int = 3, hold: float = 1.0,
        nice_step: int = 0, timeout: float = 600.0, window: int | None = WINDOW_RECORDS
        ) -> tuple[Fairness, dict[str, list[tuple[str, str]]]]:
    """Submit the heavy user's chains, then the light user's, one after another at once; follow them to the end.
    ``window``: the chains' (None: each submitted whole, with ``nice = iteration * nice_step``)."""
    params = {"iterations": iterations, "hold": hold, "shots": 20}
    owners = {f"{tag}-a{j}": HEAVY for j in range(heavy_workflows)} | {f"{tag}-b0": LIGHT}
    followers = {wf: submit_as(lab, user, wf, lab.home(user) / "fair-share", params, nice_step, window=window)
                 for wf, user in owners.items()}
    jobs = {wf: jobs_of(follower, wf, timeout) for wf, follower in followers.items()}
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
                # The first is ready when submitted (the submitter wrote the initial state).
                ready[job_id] = previous_end if previous_end is not None else leader.submit_time.timestamp()
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
