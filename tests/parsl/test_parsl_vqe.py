"""The Parsl VQE example (examples/parsl/vqe.py) against the lab-pipeline VQE with the same seed.

- embedded: same energy as ``hcqw.embedded``, reached by a script restarted after its first step
  (it resumes from the checkpoints; a restart with other parameters would be refused, see
  tests/test_workflow.py);
- SLURM: two scripts at once, each the same energy; every qpu app's qpu component ends within
  2 s of its quantum block (SLURM's own component EndTime against the block end the app
  logged), and the two scripts' qpu apps interleave on the one qpu node;
- SLURM session option: same energy, all quantum steps in one qpu allocation.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid

import pytest

from examples.vqe.pipeline import make_loop
from hcqw.checkpoint import load_checkpoint
from hcqw.embedded import Workflow, run_workflow
from hcqw.metrics import read_events
from hcqw.slurm import merge_components
from hcqw.slurm.commands import run_slurm
from hcqw.slurm.parsing import group_by_leader, parse_scontrol
from hcqw.workflow import quantum_file, state_file

from hcqw.lab.pytest_plugin import wait_for
from parsl_testlib import REPO, run_example

log = logging.getLogger(__name__)
ITERATIONS = 2
SEED = 7
ARGS = ["--iterations", str(ITERATIONS), "--seed", str(SEED), "--shots", "1000"]


@pytest.fixture(scope="module")
def reference_energy(tmp_path_factory) -> float:
    """The lab pipeline on the embedded default (hcqw.embedded), same loop and seed; once per module,
    with a key and device queue of its own (the per-test ones do not exist yet at module scope)."""
    home = tmp_path_factory.mktemp("reference")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HCQW_CHECKPOINT_KEY", str(home / "key"))
        mp.setenv("HCQW_STATE_DIR", str(home / "state"))
        workflow = Workflow.create(make_loop(iterations=ITERATIONS, shots=1000, seed=SEED), home / "runs", "lab")
        run_workflow(workflow)
        return workflow.final_state().energy


def parsl_energy(runs, workflow: str) -> float:
    state, _ = load_checkpoint(runs / workflow / "checkpoints" / state_file(ITERATIONS), workflow=workflow)
    return state.energy


def qpu_jobs(workflow: str) -> list:
    """Merged SLURM records of this workflow's qpu jobs, from the controller, once all have ended
    (the script returns when the last app's result is in; its job is then still exiting)."""

    def ended():
        out = run_slurm(["scontrol", "-o", "show", "job"]).stdout
        records = [r for r in parse_scontrol(out) if (r.name or "").startswith(f"hcqw:{workflow}:qpu-")]
        states = [merge_components(leader, comps) for leader, comps in group_by_leader(records).items()]
        return all(s.done for s in states) and states

    return wait_for(ended, 30, f"the qpu jobs of {workflow} to end")


@pytest.mark.slow
def test_embedded_same_energy_and_resume(tmp_path, job_env, reference_energy):
    common = ["--seed", str(SEED), "--shots", "1000", "--runs-dir", str(tmp_path), "--workflow-id", "emb",
              "--iterations", str(ITERATIONS)]
    run_example("examples.parsl.vqe", *common)
    for name in (state_file(ITERATIONS), quantum_file(ITERATIONS)):  # as if stopped after the first step
        (tmp_path / "emb" / "checkpoints" / name).unlink()
    resumed = run_example("examples.parsl.vqe", *common)
    assert "resumed emb: 3 node(s) already had checkpoints" in resumed.stderr  # init, q0001, c0001
    assert parsl_energy(tmp_path, "emb") == reference_energy


@pytest.mark.slurm
def test_slurm_two_scripts_same_energy_release_and_interleave(tmp_path, job_env, slurm_lab, reference_energy):
    workflows = [f"vqe-a-{uuid.uuid4().hex[:4]}", f"vqe-b-{uuid.uuid4().hex[:4]}"]
    procs = [subprocess.Popen([sys.executable, "-m", "examples.parsl.vqe", *ARGS, "--slurm", "--runs-dir",
                               str(tmp_path), "--workflow-id", wf], cwd=REPO, env=os.environ.copy(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for wf in workflows]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    intervals = []
    for wf in workflows:
        assert parsl_energy(tmp_path, wf) == reference_energy
        releases = {e["job"]: e for e in read_events(tmp_path / wf / "metrics" / "qpu.jsonl", "release")}
        jobs = qpu_jobs(wf)
        assert len(jobs) == ITERATIONS
        for state in jobs:
            qpu = state.component(1)
            assert state.phase.value == "completed" and state.released == (1,), state
            block_end = releases[qpu.raw_id]["start"]  # the app closed its lease here
            # SLURM's EndTime has whole seconds (truncated): the lag is within (-1, 2].
            assert qpu.end_time.timestamp() - block_end <= 2.0, (wf, qpu)
            intervals.append((qpu.start_time, qpu.end_time, wf, qpu.nodelist))
    intervals.sort()
    assert {i[3] for i in intervals} == {slurm_lab.layout.qpu_node_name}
    assert all(a[1] <= b[0] for a, b in zip(intervals, intervals[1:]))  # one at a time
    order = [i[2] for i in intervals]
    switches = sum(a != b for a, b in zip(order, order[1:]))
    log.info("qpu node order: %s", " ".join(order))
    assert switches >= 2, order  # interleaved (A B A ...), not one script after the other


@pytest.mark.slurm
def test_slurm_session_one_allocation(tmp_path, job_env, slurm_lab, reference_energy):
    workflow = f"vqe-s-{uuid.uuid4().hex[:4]}"
    run_example("examples.parsl.vqe", *ARGS, "--slurm", "--session", "10", "--runs-dir", str(tmp_path),
                "--workflow-id", workflow)
    assert parsl_energy(tmp_path, workflow) == reference_energy
    jobs = qpu_jobs(workflow)
    assert len(jobs) == 1, jobs  # both quantum steps in one qpu allocation
    assert jobs[0].phase.value == "completed" and jobs[0].released == (1,), jobs[0]
