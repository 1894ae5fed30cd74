"""Staging on the multi-host lab (issue 16): a qpu host with ``Gres=qpu:3`` and its resident service
run with ``--exclusive-sessions`` (``hcqw lab up --staging-depth 3``). SLURM lets three quantum nodes
onto the host at once; each opens its session and queues its first batch; the device executes one
node's block at a time, in the service's policy order (fifo in the lab), and a staged node is never
stuck behind a predecessor that is cancelled or overruns its time limit.

Depth 3 (the site guide recommends 2) so that two nodes can be staged behind an executing one,
which the order test needs. The lab has one qpu host: one device, every node at it.
The lab is the session's ``slurm_lab_staged`` (hcqw.lab.pytest_plugin), started in the background with the
session's other labs; ``HCQW_TEST_LAB_STAGED_DIR``/``HCQW_TEST_LAB_STAGED_PORT`` move it (default
/tmp/hcqw-pytest-lab-staged, ports 7020..7029).
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from hcqw.lab import LabCluster, resident
from hcqw.lab.pytest_plugin import STAGING_DEPTH, user_dirs, wait_for
from hcqw.metrics import read_events
from hcqw.service.client import ServiceClient
from hcqw.slurm import Phase, open_backend
from tests.usage.fair_share import submit_whole_as

pytestmark = pytest.mark.slurm

DEPTH = STAGING_DEPTH
ALICE, BOB = "hcqw-alice", "hcqw-bob"
# Each block runs three batches 0.3 s apart and keeps the device 2 s more: long enough for SLURM to
# start the next node (about a second) while it executes, so the next one stages.
BLOCK = {"runs": 3, "pause": 0.3, "hold": 2.0, "shots": 20}


@pytest.fixture
def staged_lab(slurm_lab_staged) -> LabCluster:
    return slurm_lab_staged


@pytest.fixture
def backend(staged_lab, monkeypatch):
    for key, value in staged_lab.env.items():  # the resident's status below authenticates with munge
        monkeypatch.setenv(key, value)
    return open_backend("slurm", env=staged_lab.env, poll_interval=0.2)


def device(lab: LabCluster) -> str:
    return lab.layout.qpu_node_names[0]


def device_log(lab: LabCluster, workflows: set[str], kind: str) -> list[dict]:
    """The resident service's own record of ``workflows``' sessions (``hold``) or executions (``exec``)."""
    events = [e for e in read_events(resident.metrics_log(lab.layout, device(lab)), kind) if e["workflow"] in workflows]
    return sorted(events, key=lambda e: e["start"])


@pytest.fixture
def run_dir(staged_lab, request):
    """``run_dir(user)``: a fresh directory of that user's for their runs (removed after the test); the
    resident's log outlives the lab, so every test also names its workflows afresh (``fresh``)."""
    yield from user_dirs(staged_lab, request.node.name)


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def wait_all(backend, jobs: dict[str, list[tuple[str, str]]], timeout: float = 300.0) -> None:
    for wf, listed in jobs.items():
        for node, job_id in listed:
            state = backend.wait(job_id, timeout=timeout)
            assert state.phase is Phase.COMPLETED, f"{wf}/{node} (job {job_id}) ended {state.state}"


def queued_at_device(lab: LabCluster, workflow: str) -> bool:
    """Whether ``workflow`` has a run queued at the resident service (root is an operator: it sees all)."""
    with ServiceClient(lab.qpu_service_address(device(lab)), timeout=10) as client:
        return any(entry.get("workflow") == workflow for entry in client.status()["queue"])


def blocks(execs: list[dict]) -> list[tuple[str, str]]:
    """The nodes in the order the device served them, one entry per uninterrupted run of a node's execs."""
    order: list[tuple[str, str]] = []
    for e in execs:
        if not order or order[-1] != (e["workflow"], e["node"]):
            order.append((e["workflow"], e["node"]))
    return order


def test_two_users_nodes_stage_and_the_device_executes_one_node_at_a_time(staged_lab, backend, run_dir):
    workflows = {fresh("st-a0"): ALICE, fresh("st-b0"): BOB, fresh("st-a1"): ALICE}
    params = {"iterations": 2, **BLOCK}
    jobs = {wf: submit_whole_as(staged_lab, user, wf, run_dir(user), params, nice_step=1000)
            for wf, user in workflows.items()}
    wait_all(backend, jobs)
    execs = device_log(staged_lab, set(workflows), "exec")
    assert len(execs) == len(workflows) * 2 * BLOCK["runs"]
    assert {e["user"] for e in execs} == {ALICE, BOB}
    for before, after in zip(execs, execs[1:]):  # one batch at a time ...
        assert after["start"] >= before["end"], f"{before['workflow']} and {after['workflow']} executed at once"
    order = blocks(execs)  # ... and one node's block at a time: no node's execs are interrupted by another's
    assert len(order) == len(set(order)) == len(workflows) * 2, order
    # Staging really happened: a node's session was open at the device before the node ahead of it
    # had finished executing (else this test would show nothing about staging).
    sessions = {(h["workflow"], h["node"]): h for h in device_log(staged_lab, set(workflows), "hold")}
    last_exec = {node: max(e["end"] for e in execs if (e["workflow"], e["node"]) == node) for node in order}
    staged = [nxt for cur, nxt in zip(order, order[1:]) if sessions[nxt]["start"] < last_exec[cur]]
    assert staged, f"no node was staged: sessions {sessions}"


def test_staged_nodes_execute_in_the_services_order_not_their_own_users(staged_lab, backend, run_dir):
    """fifo at the service: alice's second node staged after bob's runs after bob's, although alice's
    first node has the device when it arrives (staging never lets a user's nodes pass another's)."""
    a0, b0, a1 = fresh("ord-a0"), fresh("ord-b0"), fresh("ord-a1")
    first = submit_whole_as(staged_lab, ALICE, a0, run_dir(ALICE), {**BLOCK, "hold": 20.0}, 0)
    wait_for(lambda: queued_at_device(staged_lab, a0) or device_log(staged_lab, {a0}, "exec"), 90,
             "alice's first node at the device")
    bob = submit_whole_as(staged_lab, BOB, b0, run_dir(BOB), BLOCK, 0)
    wait_for(lambda: queued_at_device(staged_lab, b0), 60, "bob's node staged at the device")
    second = submit_whole_as(staged_lab, ALICE, a1, run_dir(ALICE), BLOCK, 0)
    wait_for(lambda: queued_at_device(staged_lab, a1), 60, "alice's second node staged at the device")
    assert not device_log(staged_lab, {b0, a1}, "exec"), "a staged node executed before its turn"
    wait_all(backend, {a0: first, b0: bob, a1: second})
    order = [wf for wf, _ in blocks(device_log(staged_lab, {a0, b0, a1}, "exec"))]
    assert order == [a0, b0, a1]


@pytest.mark.parametrize("end", ["cancelled", "overruns its time limit"])
def test_a_staged_node_starts_when_the_node_ahead_of_it_ends_abnormally(staged_lab, backend, run_dir, end):
    tag = fresh("cancel" if end == "cancelled" else "overrun")
    # Alice's node keeps the device far longer than its 1-minute limit allows (or until cancelled).
    ahead = submit_whole_as(staged_lab, ALICE, f"{tag}-a", run_dir(ALICE), {**BLOCK, "hold": 600.0}, 0,
                      time_limit=1)
    wait_for(lambda: device_log(staged_lab, {f"{tag}-a"}, "exec"), 90, "alice's node executing")
    staged = submit_whole_as(staged_lab, BOB, f"{tag}-b", run_dir(BOB), BLOCK, 0)
    wait_for(lambda: queued_at_device(staged_lab, f"{tag}-b"), 60, "bob's node staged at the device")
    (_, ahead_job), = [(n, j) for n, j in ahead if n.startswith("q")]
    try:
        if end == "cancelled":
            subprocess.run(["scancel", ahead_job], env=staged_lab.env, check=True, timeout=30)
        wait_all(backend, {f"{tag}-b": staged}, timeout=180)
        assert backend.wait(ahead_job, timeout=60).phase is not Phase.COMPLETED
    finally:  # the rest of alice's chain waits on a node that did not complete
        subprocess.run(["scancel", *(job for _, job in ahead)], env=staged_lab.env, timeout=30)
    ahead_session, = device_log(staged_lab, {f"{tag}-a"}, "hold")
    staged_execs = device_log(staged_lab, {f"{tag}-b"}, "exec")
    assert len(staged_execs) == BLOCK["runs"] and staged_execs[0]["start"] >= ahead_session["end"]


def test_a_per_call_driver_requesting_ahead_finds_its_next_calls_job_started_and_leaves_nothing_held(staged_lab,
                                                                                                       run_dir):
    """``HCQW_PER_CALL_AHEAD=1`` on a staged host: each call's job after the first was submitted as the call before it
    ended, and had started (its gateway ready) before the driver asked for it; the device executed one call at a
    time; when the driver exits, the job it requested ahead for a call that never came is cancelled."""
    from hcqw import environment
    from tests.support.per_call import call_jobs, stamp

    home, workflow, calls = run_dir(ALICE), fresh("ahead"), 3
    python, driver = staged_lab.site.bin / "python", staged_lab.site.src / "tests" / "hetjob" / "percall_driver.py"
    done = staged_lab.exec(ALICE, [str(python), str(driver), str(home / "calls.jsonl"), str(calls), "3"], cwd=home,
                           env={environment.DEVICE: environment.PER_CALL, environment.WORKFLOW: workflow,
                                environment.PER_CALL_SERVICE: staged_lab.layout.qpu_service_address_pattern,
                                environment.PER_CALL_GRES: "qpu:1", environment.PER_CALL_AHEAD: "1",
                                environment.METRICS: str(home / "qpu.jsonl")},
                           capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    acquires = sorted(read_events(home / "qpu.jsonl", "acquire"), key=lambda e: e["start"])
    assert len(acquires) == calls and len({a["job"] for a in acquires}) == calls
    assert acquires[0]["submitted"] >= acquires[0]["start"]  # the first call's job is requested when it asks
    # One job per call and the one requested ahead for a fourth call: all ended, none left holding the host.
    jobs = lambda: call_jobs(workflow, staged_lab.env)  # noqa: E731
    wait_for(lambda: len(jobs()) == calls + 1 and all(j["JobState"] in ("COMPLETED", "CANCELLED") for j in jobs()),
             30, "every call job, and the one requested ahead, to end")
    started = {j["JobId"]: stamp(j["StartTime"]) for j in jobs()}  # whole seconds, truncated
    for before, after in zip(acquires, acquires[1:]):  # the others as the call before ended, started before asked
        assert before["end"] < after["submitted"] < after["start"] and started[str(after["job"])] <= after["start"]
    execs = device_log(staged_lab, {workflow}, "exec")
    assert len(execs) == calls and all(b["start"] >= a["end"] for a, b in zip(execs, execs[1:]))
