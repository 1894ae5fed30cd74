"""The Parsl VQE example (examples/parsl/vqe.py) against the lab-pipeline VQE with the same seed.

- embedded: same energy as ``hcqw.embedded``, reached by a script restarted after its first step
  (it resumes from the checkpoints; a restart with other parameters would be refused, see
  tests/test_workflow.py);
- SLURM: two scripts at once, as README runs them, by the lab's two users (hcqw-alice, hcqw-bob)
  from the site's checkout, each the same energy; every qpu app is a hetjob of its user whose
  cpu part ran on a cpu host and qpu part on a qpu host; its qpu component ends within 2 s of
  its quantum block (SLURM's own component EndTime against the block end the app logged), and
  each of the two qpu nodes served one app at a time;
- SLURM session option: same energy, all quantum steps in one qpu allocation.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from examples.vqe.pipeline import make_loop
from hcqw.checkpoint import load_checkpoint
from hcqw.embedded import Workflow, run_workflow
from hcqw.metrics import read_events
from hcqw.slurm import merge_components
from hcqw.slurm.commands import run_slurm
from hcqw.slurm.parsing import group_by_leader, parse_scontrol
from hcqw.paths import quantum_file, state_file

from hcqw.lab.pytest_plugin import wait_for
from tests.support.parsl_runs import run_example
from tests.support.lab_user import ALICE, BOB, assert_private, checkpoint_key, quantum_nodes_across_hosts, run_as

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


def parsl_energy(runs, workflow: str, key: bytes | None = None) -> float:
    state, _ = load_checkpoint(runs / workflow / "checkpoints" / state_file(ITERATIONS), workflow=workflow, key=key)
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
def test_slurm_two_users_same_energy_release_and_one_app_per_device(slurm_lab, lab_user_dir, reference_energy):
    runs = {user: (lab_user_dir(user), f"vqe-{user[-1]}-{uuid.uuid4().hex[:4]}") for user in (ALICE, BOB)}
    with ThreadPoolExecutor(len(runs)) as pool:  # both scripts at once
        for done in [pool.submit(run_as, slurm_lab, user, ["python", "-m", "examples.parsl.vqe", *ARGS, "--backend", "slurm",
                                                           "--runs-dir", str(path), "--workflow-id", wf], timeout=300)
                     for user, (path, wf) in runs.items()]:
            done.result()
    intervals = []
    for user, (path, wf) in runs.items():
        assert parsl_energy(path, wf, checkpoint_key(slurm_lab, user)) == reference_energy
        releases = {e["job"]: e for e in read_events(path / wf / "metrics" / "qpu.jsonl", "release")}
        jobs = qpu_jobs(wf)
        assert len(jobs) == ITERATIONS
        assert len(quantum_nodes_across_hosts(slurm_lab, wf, user)) == ITERATIONS
        for state in jobs:
            qpu = state.component(1)
            assert state.phase.value == "completed" and state.released == (1,), state
            block_end = releases[qpu.raw_id]["start"]  # the app closed its lease here
            # SLURM's EndTime has whole seconds (truncated): the lag is within (-1, 2].
            assert qpu.end_time.timestamp() - block_end <= 2.0, (wf, qpu)
            intervals.append((qpu.start_time, qpu.end_time, wf, qpu.nodelist))
    log.info("qpu apps (start, end, workflow, node): %s", sorted(intervals))
    assert {i[3] for i in intervals} <= set(slurm_lab.layout.qpu_node_names)
    for node in slurm_lab.layout.qpu_node_names:  # one app at a time on each device
        on_node = sorted(i for i in intervals if i[3] == node)
        assert all(a[1] <= b[0] for a, b in zip(on_node, on_node[1:])), on_node
    path, wf = runs[ALICE]
    assert_private(slurm_lab, ALICE, [path / wf, path / wf / "checkpoints" / state_file(ITERATIONS),
                                      path / wf / "metrics" / "qpu.jsonl"], BOB)


@pytest.mark.slurm
def test_slurm_session_one_allocation(tmp_path, job_env, slurm_lab, reference_energy):
    workflow = f"vqe-s-{uuid.uuid4().hex[:4]}"
    run_example("examples.parsl.vqe", *ARGS, "--backend", "slurm", "--session", "10", "--runs-dir", str(tmp_path),
                "--workflow-id", workflow)
    assert parsl_energy(tmp_path, workflow) == reference_energy
    jobs = qpu_jobs(workflow)
    assert len(jobs) == 1, jobs  # both quantum steps in one qpu allocation
    assert jobs[0].phase.value == "completed" and jobs[0].released == (1,), jobs[0]


def assert_released_before_each_classical_step(metrics, jobs=()) -> None:
    """Each iteration's hold (and on SLURM its qpu component, SLURM's whole seconds) ended before its classical step."""
    cpu = {e["node"][1:]: e["start"] for e in read_events(metrics, "cpu")}
    holds = {e["node"][1:]: e["end"] for e in read_events(metrics, "hold")}
    assert sorted(holds) == sorted(cpu) == [f"{i:04d}" for i in range(1, ITERATIONS + 1)]
    assert all(holds[i] <= cpu[i] for i in cpu), (holds, cpu)
    releases = {e["job"]: e["node"][1:] for e in read_events(metrics, "release")}
    for state in jobs:
        qpu = state.component(1)
        assert state.released == (1,) and qpu.end_time.timestamp() <= cpu[releases[qpu.raw_id]], (state, cpu)


@pytest.mark.slow
def test_embedded_fused_same_energy(tmp_path, job_env, reference_energy):
    run_example("examples.parsl.vqe", *ARGS, "--fused", "--runs-dir", str(tmp_path), "--workflow-id", "fused")
    assert parsl_energy(tmp_path, "fused") == reference_energy
    assert_released_before_each_classical_step(tmp_path / "fused" / "metrics" / "qpu.jsonl")


@pytest.mark.slurm
def test_slurm_fused_one_qpu_app_per_iteration(tmp_path, job_env, slurm_lab, reference_energy):
    workflow = f"vqe-f-{uuid.uuid4().hex[:4]}"
    run_example("examples.parsl.vqe", *ARGS, "--fused", "--backend", "slurm", "--runs-dir", str(tmp_path), "--workflow-id",
                workflow)
    assert parsl_energy(tmp_path, workflow) == reference_energy
    jobs = qpu_jobs(workflow)
    assert len(jobs) == ITERATIONS  # one hetjob per iteration, quantum and classical step
    assert_released_before_each_classical_step(tmp_path / workflow / "metrics" / "qpu.jsonl", jobs)
