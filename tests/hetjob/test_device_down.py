"""A device that stays down (offline, calibrating) while a quantum node waits for it, on the lab
cluster: the node gives the qpu node back after its ``device_wait`` bound -- not at its time limit
-- with an error saying why and how to resume, and a re-run once the device is back completes."""

from __future__ import annotations

import logging

import pytest

from hcqw.service.client import ServiceClient
from hcqw.slurm import Phase

from tests.hetjob.test_quantum_node import prepare, qpu_holders, submit_q1

pytestmark = pytest.mark.slurm
log = logging.getLogger(__name__)
DEVICE_WAIT = 6.0


def test_node_waiting_on_an_offline_device_gives_the_qpu_back_and_resumes(sbatch, slurm_lab, tmp_path,
                                                                          resident_per_host):
    upstream, residents = resident_per_host
    for resident in residents.values():
        with ServiceClient(resident.address) as admin:
            admin.set_status("offline", "cryostat warm-up")
    ctx, nodes = prepare(tmp_path, "down", {})
    job = submit_q1(sbatch, ctx, nodes, {}, device_service=upstream, device_wait=DEVICE_WAIT)
    state = sbatch.wait(job, timeout=120)
    assert state.phase is Phase.FAILED
    qpu = state.component(1)
    held = qpu.end_time.timestamp() - qpu.start_time.timestamp()  # whole seconds
    log.info("qpu component held %.0f s with the device offline (bound %g s)", held, DEVICE_WAIT)
    assert held <= DEVICE_WAIT + 15  # the bound plus start-up, never the 10-minute time limit
    assert job not in qpu_holders(slurm_lab.env)
    output = sbatch.failure(state).output_tail
    assert "the device is offline (cryostat warm-up)" in output
    assert "re-run the workflow once the device is back" in output
    assert not ctx.path(nodes[1].output).exists()

    for resident in residents.values():
        with ServiceClient(resident.address) as admin:
            admin.set_status("idle")
    again = submit_q1(sbatch, ctx, nodes, {}, device_service=upstream, device_wait=DEVICE_WAIT)
    assert sbatch.wait(again, timeout=120).phase is Phase.COMPLETED
    assert ctx.path(nodes[1].output).exists()
