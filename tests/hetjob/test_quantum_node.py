"""A quantum node as a cpu+qpu hetjob on the real lab cluster: early release, release on
failure and on SIGKILL, and the MPI DPM transport.

Timing bounds come from SLURM's own records (component StartTime/EndTime, whole seconds)
and the run's metrics log, never from test-side sleeps.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hcqw.hetjob.jobs import NodeJobSettings, node_request
from hcqw.hetjob.records import qpu_timeline
from hcqw.metrics import read_events
from hcqw.slurm import ComponentSpec, Phase
from hcqw.workflow import RunContext, build_dag, load_loop, run_node

from hcqw.lab.pytest_plugin import wait_for

pytestmark = pytest.mark.slurm
log = logging.getLogger(__name__)
LOOP = "tests.support.loops:make"


def prepare(tmp_path: Path, workflow: str, params: dict) -> tuple[RunContext, list]:
    """Run ``init`` here and return the run context and the DAG."""
    loop = load_loop(LOOP, params)
    ctx = RunContext(workflow, tmp_path / workflow)
    nodes = build_dag(loop)
    run_node(loop, nodes[0], ctx, None)
    return ctx, nodes


def submit_q1(backend, ctx: RunContext, nodes: list, params: dict, **settings) -> str:
    request = node_request(nodes[1], loop_ref=LOOP, params=params, workflow=ctx.workflow, run_dir=ctx.run_dir,
                           settings=NodeJobSettings(**settings))
    (ctx.run_dir / "slurm").mkdir(parents=True, exist_ok=True)
    return backend.submit(request)


def qpu_holders(env: dict) -> str:
    """Jobs SLURM still runs on the qpu node, per squeue."""
    out = subprocess.run(["squeue", "-h", "-t", "R,CG", "-p", "qpu", "-o", "%i %T"], capture_output=True, text=True,
                         env={**os.environ, **env}, check=True)
    return out.stdout.strip()


def test_qpu_component_released_at_block_end_and_next_node_starts(sbatch, slurm_lab, tmp_path):
    params = {"after_block": 6.0}  # classical remainder of the node after its quantum block
    ctx_a, nodes = prepare(tmp_path, "wf-a", params)
    ctx_b, _ = prepare(tmp_path, "wf-b", params)
    # Both on one qpu node (the lab has two), so B waits for the device A holds.
    qpu_node = slurm_lab.layout.qpu_node_names[0]
    pinned = ComponentSpec("qpu", gres="qpu:1", time_limit=10, extra=(f"--nodelist={qpu_node}",))
    log_start = controller_log(slurm_lab).stat().st_size
    job_a = submit_q1(sbatch, ctx_a, nodes, params, qpu=pinned)
    job_b = submit_q1(sbatch, ctx_b, nodes, params, qpu=pinned)  # pends on qpu:1 behind A
    state_a, state_b = sbatch.wait(job_a, timeout=90), sbatch.wait(job_b, timeout=90)
    assert state_a.phase is Phase.COMPLETED and state_b.phase is Phase.COMPLETED
    assert state_a.released == (1,)
    for state in (state_a, state_b):  # across hosts: the node's code on a cpu host, its gateway on the qpu host
        assert state.component(0).nodelist in slurm_lab.layout.cpu_node_names
        assert state.component(1).nodelist == qpu_node
    a = qpu_timeline(ctx_a.metrics_path, "wf-a", "q0001", state_a)
    b = qpu_timeline(ctx_b.metrics_path, "wf-b", "q0001", state_b)
    log.info("A: block end %.2f, qpu end %s (lag %.2f s), leader end %s; B qpu start %s",
             a.hold_end, a.qpu_end, a.release_lag, a.leader_end, b.qpu_start)
    # SLURM's EndTime has 1 s resolution (truncated): the lag is within (-1, 2].
    assert a.release_lag is not None and a.release_lag <= 2.0
    assert a.qpu_end < a.leader_end  # component 0 was still running
    assert b.qpu_start < a.leader_end  # B got the device before A's node finished
    release = [e for e in read_events(ctx_a.metrics_path, "release") if e["node"] == "q0001"]
    assert release and release[0]["end"] - release[0]["start"] < 2.0
    assert ctx_a.path(nodes[1].output).exists()
    # One release request per quantum node (issue 22): the node's scancel; the gateway and the trap saw it.
    for job in (job_a, job_b):
        assert kill_requests(slurm_lab, job, log_start) == 1, kill_requests(slurm_lab, job, log_start)


def controller_log(lab) -> Path:
    return lab.root / "log" / "slurmctld.log"


def kill_requests(lab, leader: str, since: int) -> int:
    """REQUEST_KILL_JOBs slurmctld logged (from byte ``since`` of its log) for hetjob ``leader``'s components."""
    with open(controller_log(lab), "rb") as handle:
        handle.seek(since)
        text = handle.read().decode(errors="replace")
    qpu = str(int(leader) + 1)
    return len(re.findall(rf"REQUEST_KILL_JOB JobId=(?:{leader}\+1|{leader}|{qpu}) ", text))



def test_user_step_raising_releases_the_qpu(sbatch, slurm_lab, tmp_path):
    params = {"fail_in_block": True}
    ctx, nodes = prepare(tmp_path, "wf-raise", params)
    job = submit_q1(sbatch, ctx, nodes, params)
    state = sbatch.wait(job, timeout=90)
    assert state.phase is Phase.FAILED
    assert "user step failed inside the quantum block" in sbatch.failure(state).output_tail
    timeline = qpu_timeline(ctx.metrics_path, ctx.workflow, "q0001", state)
    assert timeline.qpu_end is not None and timeline.qpu_end - timeline.hold_end <= 15.0
    assert job not in qpu_holders(slurm_lab.env)
    assert not ctx.path(nodes[1].output).exists()


def test_sigkill_of_component0_releases_the_qpu(sbatch, slurm_lab, tmp_path):
    params = {"hold": 60.0}  # holds the device until killed
    ctx, nodes = prepare(tmp_path, "wf-kill", params)
    job = submit_q1(sbatch, ctx, nodes, params)
    session_open = lambda: any(p.read_text() for p in (ctx.run_dir / "jobs").glob("q0001.*/gateway.address"))  # noqa: E731
    wait_for(lambda: (ctx.run_dir / "jobs").exists() and session_open(), 60, "the gateway")
    pid_file = next((ctx.run_dir / "jobs").glob("q0001.*/node.pid"))
    time.sleep(1.0)  # let the step open its session and start holding
    killed_at = time.time()
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    state = sbatch.wait(job, timeout=60)
    assert state.phase is Phase.FAILED
    qpu_end = state.component(1).end_time.timestamp()
    log.info("SIGKILL -> qpu component ended %.2f s later", qpu_end - killed_at)
    assert qpu_end - killed_at <= 15.0
    assert job not in qpu_holders(slurm_lab.env)


def test_mpi_transport(sbatch, tmp_path):
    params = {}
    ctx, nodes = prepare(tmp_path, "wf-mpi", params)
    job = submit_q1(sbatch, ctx, nodes, params, transport="mpi")
    state = sbatch.wait(job, timeout=90)
    assert state.phase is Phase.COMPLETED, sbatch.failure(state)
    gateway_log = next((ctx.run_dir / "jobs").glob("q0001.*/gateway.log")).read_text()
    assert "MPI port open" in gateway_log
    timeline = qpu_timeline(ctx.metrics_path, ctx.workflow, "q0001", state)
    assert timeline.release_lag is not None and timeline.release_lag <= 2.0
