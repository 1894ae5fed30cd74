"""A quantum node's peer dies mid-block, on the lab cluster: the gateway (its own simulator) or the
resident QPU service behind a relay gateway. What users rely on: the qpu node is free within 15 s
of the death, the node fails with an error naming the dead peer, its host and its log, and a
re-run resumes to the result an undisturbed run gives.

The node keeps using the device (``runs`` batches ``pause`` s apart); the death is noticed by the
node's background keep-alive (the gateway's srun step ended, or its link stayed down), which frees
the qpu component at once, and the node's next run raises.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest

from hcqw.embedded import Workflow, run_split
from hcqw.hetjob.chain import ChainFailed, final_state, follow_chain, run_chain, submit_chain
from hcqw.slurm import Phase
from hcqw.workflow import load_loop

from hcqw.lab.pytest_plugin import wait_for
from hcqw.service.device import ServiceDevice
from tests.support.live import LiveService
from tests.hetjob.test_quantum_node import prepare, qpu_holders, submit_q1

pytestmark = pytest.mark.slurm
log = logging.getLogger(__name__)
LOOP = "tests.support.loops:make"
PARAMS = {"runs": 16, "pause": 0.5, "seed": 9}  # an 8 s block
FREED_WITHIN_S = 15.0


def block_started(run_dir: Path, node: str) -> Path:
    """The job directory of ``node`` once its session is open (gateway address published, first run done)."""
    jobdir = wait_for(lambda: next((p.parent for p in (run_dir / "jobs").glob(f"{node}.*/gateway.address")
                                    if p.read_text()), None) if (run_dir / "jobs").exists() else None,
                      90, f"{node}'s gateway")
    time.sleep(1.5)  # the node opens its session and starts its runs
    return jobdir


def undisturbed_state(tmp_path: Path, params: dict, loop: str = LOOP):
    """The final state of an undisturbed run of ``loop``: on this machine, through a QPU service with the
    gateway's backend (the test loop sends circuits as Cirq JSON, which a service takes)."""
    (tmp_path / "reference").mkdir()
    service = LiveService(tmp_path / "reference", "tcp://127.0.0.1:*", "--simulator", "qsim")
    try:
        embedded = Workflow.create(load_loop(loop, params), tmp_path / "embedded", "undisturbed")
        run_split([embedded], ServiceDevice(service.address))
    finally:
        service.stop()
    return embedded.final_state()


def freed_after(state, killed_at: float) -> float:
    """Seconds from the kill to SLURM ending the qpu component (whole-second EndTime)."""
    return state.component(1).end_time.timestamp() - killed_at


def test_gateway_killed_mid_block_frees_the_qpu_names_the_gateway_and_the_rerun_resumes(sbatch, slurm_lab, tmp_path):
    expected = undisturbed_state(tmp_path, PARAMS)
    chain = submit_chain(sbatch, LOOP, PARAMS, "peer-gw", tmp_path / "runs")
    jobdir = block_started(chain.run_dir, "q0001")
    killed_at = time.time()
    os.kill(int((jobdir / "gateway.pid").read_text()), signal.SIGKILL)
    with pytest.raises(ChainFailed) as failed:
        follow_chain(sbatch, chain, timeout=120)
    state = sbatch.status([chain.job_of("q0001")])[chain.job_of("q0001")]
    log.info("gateway SIGKILL -> qpu component ended %.1f s later", freed_after(state, killed_at))
    assert freed_after(state, killed_at) <= FREED_WITHIN_S
    assert chain.job_of("q0001") not in qpu_holders(slurm_lab.env)
    message = str(failed.value)
    node = state.component(1).nodelist
    assert f"lost the device gateway of SLURM job {chain.job_of('q0001')}" in message
    assert f"on node {node} at tcp://" in message and str(jobdir / "gateway.log") in message
    assert "its srun step" in message and "ended" in message

    resumed = run_chain(sbatch, LOOP, PARAMS, "peer-gw", tmp_path / "runs", timeout=120)
    assert resumed.jobs[0][0] == "q0001"
    assert final_state(resumed) == expected


def test_resident_service_killed_mid_block_frees_the_qpu_and_names_the_service(sbatch, slurm_lab, tmp_path,
                                                                               resident_per_host):
    upstream, residents = resident_per_host
    ctx, nodes = prepare(tmp_path, "peer-res", PARAMS)
    job = submit_q1(sbatch, ctx, nodes, PARAMS, device_service=upstream)
    block_started(ctx.run_dir, "q0001")
    node = sbatch.status([job], force=True)[job].component(1).nodelist
    killed_at = time.time()
    os.killpg(residents[node].proc.pid, signal.SIGKILL)  # the service's own process group
    state = sbatch.wait(job, timeout=90)
    assert state.phase is Phase.FAILED
    log.info("resident service SIGKILL -> qpu component ended %.1f s later", freed_after(state, killed_at))
    assert freed_after(state, killed_at) <= FREED_WITHIN_S
    output = sbatch.failure(state).output_tail
    assert f"lost the device gateway of SLURM job {job}" in output
    assert f"the resident QPU service at {upstream.replace('%n', node)} on {node} went away" in output
    assert not ctx.path(nodes[1].output).exists()
