"""Fused quantum+classical nodes on the lab cluster (``hcqw slurm run --fused``): one hetjob per
iteration whose qpu component ends with the quantum block while component 0 goes on with the
classical step. The same energies as the split chain and the embedded run (same seed), the qpu
component released before the classical step starts (SLURM's records and the run's metrics), and a
chain killed in an iteration's classical step resumes with that step alone."""

from __future__ import annotations

import logging
import re

import pytest

from hcqw.checkpoint import load_checkpoint
from hcqw.cli import main as hcqw_main
from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_split
from hcqw.errors import WorkflowError
from hcqw.hetjob.chain import ChainFailed, cancel_chain, final_state, follow_chain, run_chain, submit_chain
from hcqw.metrics import read_events
from hcqw.slurm import Phase
from hcqw.paths import state_file
from hcqw.workflow import load_loop

from hcqw.lab.pytest_plugin import wait_for

pytestmark = pytest.mark.slurm
log = logging.getLogger(__name__)
VQE = "examples.vqe.pipeline:make_loop"
PARAMS = {"iterations": 3, "shots": 500, "seed": 11}
LOOP = "tests.support.loops:make"


def test_fused_chain_matches_split_and_embedded_and_frees_the_qpu_before_the_classical_step(
        sbatch, tmp_path, capsys):
    embedded = Workflow.create(load_loop(VQE, PARAMS), tmp_path / "embedded", "vqe-emb")
    run_split([embedded], LocalDevice("qsim", directory=tmp_path / "device"))
    split = submit_chain(sbatch, VQE, PARAMS, "vqe-split", tmp_path / "runs")  # runs while the fused one does

    params = [arg for name, value in PARAMS.items() for arg in ("--param", f"{name}={value}")]
    assert hcqw_main(["slurm", "run", VQE, *params, "--runs-dir", str(tmp_path / "runs"), "--workflow-id",
                      "vqe-fused", "--fused"]) == 0
    printed = capsys.readouterr().out
    jobs = dict(re.findall(r"^  (\w+): SLURM job (\d+)$", printed, re.MULTILINE))
    assert list(jobs) == ["qc0001", "qc0002", "qc0003"]  # one job per iteration, the initial step in the submitter
    follow_chain(sbatch, split, timeout=300)

    run_dir = tmp_path / "runs" / "vqe-fused"
    fused, _ = load_checkpoint(run_dir / "checkpoints" / state_file(3), workflow="vqe-fused")
    log.info("energies: fused %s, split %s, embedded %s", fused.energies, final_state(split).energies,
             embedded.final_state().energies)
    assert fused.energies == final_state(split).energies == embedded.final_state().energies
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == \
        sorted(p.name for p in split.ctx.checkpoints.iterdir())

    metrics = run_dir / "metrics" / "qpu.jsonl"
    cpu = {e["node"]: e for e in read_events(metrics, "cpu")}
    release = {e["node"]: e for e in read_events(metrics, "release")}
    states = sbatch.status([jobs[f"qc{i:04d}"] for i in (1, 2, 3)], force=True)
    for i in (1, 2, 3):
        state = states[jobs[f"qc{i:04d}"]]
        classical_start = cpu[f"c{i:04d}"]["start"]
        qpu_end = state.component(1).end_time.timestamp()  # SLURM's record, whole seconds (truncated)
        log.info("qc%04d: qpu component ended %.0f, released (scancel returned) %.3f, classical step started %.3f",
                 i, qpu_end, release[f"q{i:04d}"]["end"], classical_start)
        assert state.phase is Phase.COMPLETED and state.released == (1,)
        assert release[f"q{i:04d}"]["end"] <= classical_start
        assert qpu_end <= classical_start
        assert state.component(0).end_time.timestamp() >= qpu_end  # component 0 ran on after the release


def test_a_fused_chain_killed_in_a_classical_step_resumes_with_that_step_alone(sbatch, tmp_path):
    params = {"iterations": 3, "classical": 6.0}
    reference = submit_chain(sbatch, LOOP, params, "split-whole", tmp_path / "runs")  # split, never killed
    chain = submit_chain(sbatch, LOOP, params, "fused-kill", tmp_path / "runs", fused=True)
    assert [n for n, _ in chain.jobs] == ["qc0001", "qc0002"]  # a window of 2 + 2 job records
    victim = chain.job_of("qc0002")
    wait_for(lambda: chain.ctx.path("quantum-0002.ckpt").exists(), 180, "qc0002's quantum checkpoint")
    sbatch.cancel(victim)  # in its 6 s classical step
    with pytest.raises(ChainFailed, match=rf"node qc0002 \(SLURM job {victim}\) ended CANCELLED"):
        follow_chain(sbatch, chain, timeout=120)
    assert not chain.ctx.path(state_file(2)).exists()

    resumed = run_chain(sbatch, LOOP, params, "fused-kill", tmp_path / "runs", timeout=180, fused=True)
    assert [n for n, _ in resumed.jobs] == ["c0002", "qc0003"]  # the classical step alone: a cpu job
    assert sbatch.status([resumed.job_of("c0002")])[resumed.job_of("c0002")].component(1) is None
    follow_chain(sbatch, reference, timeout=180)
    assert final_state(resumed) == final_state(reference)
    holds = [e["node"] for e in read_events(chain.ctx.metrics_path, "hold")]
    assert sorted(holds) == ["q0001", "q0002", "q0003"]  # q0002's block was not run again


def test_a_fused_rerun_refuses_the_live_jobs_of_a_split_run_of_its_workflow(sbatch, tmp_path):
    """Both forms write the same checkpoints: a re-run in the other form must not run beside the live jobs."""
    params = {"iterations": 1, "hold": 30.0}
    split = submit_chain(sbatch, LOOP, params, "forms", tmp_path / "runs")
    try:
        with pytest.raises(WorkflowError, match=rf"still in SLURM .*q0001={split.job_of('q0001')}"):
            submit_chain(sbatch, LOOP, params, "forms", tmp_path / "runs", fused=True)
    finally:
        cancel_chain(sbatch, split)
