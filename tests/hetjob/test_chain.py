"""A 5-iteration split chain of the VQE example on the lab cluster: killed mid-chain it stops
with a clear error; re-run, it resumes from the last checkpoint and reaches exactly the
energy of the embedded run with the same seed."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_split
from hcqw.errors import WorkflowError
from hcqw.hetjob.chain import ChainFailed, final_state, follow_chain, run_chain, submit_chain
from hcqw.slurm import Phase
from hcqw.workflow import load_loop

from hcqw.lab.pytest_plugin import controller_down, wait_for
from tests.hetjob.test_peer_death import block_started

pytestmark = pytest.mark.slurm
log = logging.getLogger(__name__)
VQE = "examples.vqe.pipeline:make_loop"
PARAMS = {"iterations": 5, "shots": 500, "seed": 11}


def test_vqe_chain_killed_resumes_and_matches_embedded(sbatch, tmp_path):
    embedded = Workflow.create(load_loop(VQE, PARAMS), tmp_path / "embedded", "vqe-emb")
    run_split([embedded], LocalDevice("qsim", directory=tmp_path / "device"))
    expected = embedded.final_state()

    chain = submit_chain(sbatch, VQE, PARAMS, "vqe-chain", tmp_path / "runs")
    # The submitter wrote the initial state; SLURM has a window of the chain: 2 + 1 + 2 job records.
    assert chain.skipped == [] and chain.ctx.path("state-0000.ckpt").exists()
    assert [n for n, _ in chain.jobs] == ["q0001", "c0001", "q0002"] and chain.window == 5
    outcome: dict = {}
    follower = threading.Thread(target=lambda: outcome.update(error=_follow(sbatch, chain, timeout=120)))
    follower.start()
    wait_for(lambda: "q0003" in dict(chain.jobs), 120, "the follower to submit q0003")
    victim = chain.job_of("q0003")
    wait_for(lambda: sbatch.status([victim])[victim].phase is Phase.RUNNING, 120, "q0003 to run")
    sbatch.cancel(victim)
    follower.join(180)
    assert not follower.is_alive() and isinstance(outcome["error"], ChainFailed), outcome
    message = str(outcome["error"])
    log.info("chain failure: %s", message.splitlines()[0])
    assert f"node q0003 (SLURM job {victim}) ended CANCELLED" in message
    assert "q0003-" in message and "state-0002.ckpt" in message

    resumed = run_chain(sbatch, VQE, PARAMS, "vqe-chain", tmp_path / "runs", timeout=120)
    assert resumed.skipped[-1] == "c0002" and resumed.jobs[0][0] == "q0003"
    state = final_state(resumed)
    log.info("chain energy %.6f, embedded %.6f", state.energy, expected.energy)
    assert state.energies == expected.energies
    assert state.energy == expected.energy


LOOP = "tests.support.loops:make"


def test_rerun_adopts_the_live_jobs_of_its_workflow_and_refuses_others(sbatch, slurm_lab, tmp_path):
    """A re-run while the last run's jobs are still in SLURM (its follower died) submits nothing again: it
    adopts them when they are the next nodes to run (a window's worth) and submits the rest after them."""
    params = {"iterations": 1, "hold": 1.0}
    first = submit_chain(sbatch, LOOP, params, "adopt", tmp_path / "runs")
    again = submit_chain(sbatch, LOOP, params, "adopt", tmp_path / "runs")
    assert again.jobs == first.jobs
    follow_chain(sbatch, again, timeout=120)
    assert final_state(again) == final_state(first)

    params = {"iterations": 1, "hold": 5.0}
    prefix = submit_chain(sbatch, LOOP, params, "prefix", tmp_path / "runs")
    sbatch.cancel(prefix.job_of("c0001"))  # the user cancelled the last job; q0001 runs on
    wait_for(lambda: sbatch.status([prefix.job_of("c0001")], force=True)[prefix.job_of("c0001")].done, 30,
             "c0001 to be cancelled")
    resumed = submit_chain(sbatch, LOOP, params, "prefix", tmp_path / "runs")
    # q0001 adopted, c0001 submitted again after it (the window has room for both).
    assert resumed.jobs[0] == ("q0001", prefix.job_of("q0001")) and [n for n, _ in resumed.jobs] == ["q0001", "c0001"]
    assert resumed.job_of("c0001") != prefix.job_of("c0001")
    follow_chain(sbatch, resumed, timeout=120)
    assert final_state(resumed) is not None

    # A live job that is not the next node to run (here one named as c0001 while q0001 has not run): refused.
    import subprocess

    stray = subprocess.run(["sbatch", "--parsable", "-p", "cpu", "-J", "hcqw:stray:c0001", "-o", "/dev/null",
                            "--wrap", "sleep 60"], env=slurm_lab.env, capture_output=True, text=True, check=True)
    stray_id = stray.stdout.strip().split(";")[0]
    try:
        with pytest.raises(WorkflowError, match=rf"still in SLURM .*c0001={stray_id}.*scancel"):
            submit_chain(sbatch, LOOP, params, "stray", tmp_path / "runs")
    finally:
        sbatch.cancel(stray_id)


def test_chain_rides_out_a_controller_restart(sbatch, slurm_lab, tmp_path):
    """slurmctld stops mid-chain (a quantum block ends, and is released, while it is down) and comes back:
    the follower waits instead of failing, the chain completes and reaches the undisturbed result."""
    params = {"iterations": 2, "runs": 6, "pause": 0.5}
    reference = run_chain(sbatch, LOOP, params, "outage-ref", tmp_path / "runs", timeout=180)
    chain = submit_chain(sbatch, LOOP, params, "outage", tmp_path / "runs")
    # Down once q0001's block runs, the case this test is about. A restart while the gateway's step waits for
    # a busy qpu host: tests/hetjob/test_command_job.py; a gateway started during an outage:
    # tests/hetjob/test_address.py.
    block_started(tmp_path / "runs" / "outage", "q0001")
    outcome: dict = {}
    follower = threading.Thread(target=lambda: outcome.update(error=_follow(sbatch, chain)))
    follower.start()
    with controller_down(slurm_lab):
        time.sleep(8)  # q0001's block ends and releases meanwhile: the release rides out the outage
    follower.join(300)
    assert not follower.is_alive() and outcome["error"] is None, outcome.get("error")
    assert final_state(chain) == final_state(reference)


def _follow(backend, chain, timeout: float = 300) -> BaseException | None:
    try:
        follow_chain(backend, chain, timeout=timeout)
    except BaseException as err:  # noqa: BLE001 - reported by the test
        return err
    return None
