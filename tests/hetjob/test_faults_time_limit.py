"""A quantum node's time limit hits inside its quantum block, on the lab cluster.

The node's job (component 0, where its code runs) has a 1-minute limit; its block keeps using the
device for longer. The qpu component's own limit is the default 10 minutes: SLURM ends a hetjob
component at its own limit, so nothing but hcqw frees the qpu node before then. What users rely on:
the qpu node is free within 15 s of SLURM ending the node, the error says the time limit was hit
and to raise it, the checkpoint before the node is intact, and a re-run with a larger limit resumes
to the result an undisturbed run gives.
"""

from __future__ import annotations

import logging

import pytest

from hcqw.checkpoint import load_checkpoint
from hcqw.hetjob.chain import ChainFailed, final_state, follow_chain, run_chain, submit_chain
from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.slurm import ComponentSpec
from hcqw.workflow import build_dag, state_file

from tests.hetjob.test_peer_death import LOOP, block_started, undisturbed_state
from tests.hetjob.test_quantum_node import qpu_holders

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
log = logging.getLogger(__name__)
FREED_WITHIN_S = 15.0


def test_time_limit_mid_block_frees_the_qpu_says_raise_the_limit_and_the_rerun_resumes(sbatch, slurm_lab, tmp_path):
    busy = tmp_path / "block-runs-on"  # the block uses the device while this file exists
    params = {"runs": 2, "seed": 5, "hold_while": str(busy)}
    expected = undisturbed_state(tmp_path, params)

    busy.touch()
    short = NodeJobSettings(cpu=ComponentSpec("cpu", time_limit=1))
    chain = submit_chain(sbatch, LOOP, params, "timelimit", tmp_path / "runs", short)
    block_started(chain.run_dir, "q0001")
    with pytest.raises(ChainFailed) as failed:
        follow_chain(sbatch, chain, timeout=180)
    job = chain.job_of("q0001")
    state = sbatch.status([job], force=True)[job]
    node, qpu = state.component(0), state.component(1)
    log.info("time limit: node ran %s..%s, qpu component ended %s %s", node.start_time, node.end_time, qpu.state,
             qpu.end_time)
    assert node.state == "TIMEOUT"
    assert qpu.state == "CANCELLED"  # released by hcqw (SLURM timed out component 0 only)
    assert (qpu.end_time - node.end_time).total_seconds() <= FREED_WITHIN_S  # not at its own 10-minute limit
    assert job not in qpu_holders(slurm_lab.env)
    message = str(failed.value)
    assert f"node q0001 (SLURM job {job}) ended TIMEOUT" in message
    assert "the time limit was hit" in message and "raise it" in message
    assert "Re-run to resume from checkpoint state-0000.ckpt" in message
    assert "DUE TO TIME LIMIT" in message  # SLURM's own line, in the job output's tail
    load_checkpoint(chain.ctx.path(state_file(0)), workflow="timelimit")  # intact: it verifies
    assert not chain.ctx.path(build_dag(chain.loop)[1].output).exists()  # q0001 wrote nothing

    busy.unlink()  # the re-run's block is as long as the undisturbed one
    resumed = run_chain(sbatch, LOOP, params, "timelimit", tmp_path / "runs", NodeJobSettings(), timeout=120)
    assert resumed.jobs[0][0] == "q0001"
    assert final_state(resumed) == expected
