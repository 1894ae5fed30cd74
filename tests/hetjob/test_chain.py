"""A 5-iteration split chain of the VQE example on the lab cluster: killed mid-chain it stops
with a clear error; re-run, it resumes from the last checkpoint and reaches exactly the
energy of the embedded run with the same seed."""

from __future__ import annotations

import logging

import pytest

from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_split
from hcqw.hetjob.chain import ChainFailed, final_state, follow_chain, run_chain, submit_chain
from hcqw.slurm import Phase
from hcqw.workflow import load_loop

from hcqw.lab.pytest_plugin import wait_for

pytestmark = pytest.mark.slurm
log = logging.getLogger(__name__)
VQE = "examples.vqe.pipeline:make_loop"
PARAMS = {"iterations": 5, "shots": 500, "seed": 11}


def test_vqe_chain_killed_resumes_and_matches_embedded(sbatch, tmp_path):
    embedded = Workflow.create(load_loop(VQE, PARAMS), tmp_path / "embedded", "vqe-emb")
    run_split([embedded], LocalDevice("qsim", directory=tmp_path / "device"))
    expected = embedded.final_state()

    chain = submit_chain(sbatch, VQE, PARAMS, "vqe-chain", tmp_path / "runs")
    assert [n for n, _ in chain.jobs][:3] == ["init", "q0001", "c0001"] and len(chain.jobs) == 11
    victim = chain.job_of("q0003")
    wait_for(lambda: sbatch.status([victim])[victim].phase is Phase.RUNNING, 120, "q0003 to run")
    sbatch.cancel(victim)
    with pytest.raises(ChainFailed) as failed:
        follow_chain(sbatch, chain, timeout=120)
    message = str(failed.value)
    log.info("chain failure: %s", message.splitlines()[0])
    assert f"node q0003 (SLURM job {victim}) ended CANCELLED" in message
    assert "q0003-" in message and "state-0002.ckpt" in message

    resumed = run_chain(sbatch, VQE, PARAMS, "vqe-chain", tmp_path / "runs", timeout=120)
    assert resumed.skipped[-1] == "c0002" and resumed.jobs[0][0] == "q0003"
    state = final_state(resumed)
    log.info("chain energy %.6f, embedded %.6f", state.energy, expected.energy)
    assert state.energies == expected.energies
    assert state.energy == expected.energy
