"""SLURM requeues a quantum node mid-block (``scontrol requeue``), on the lab cluster.

A requeued job keeps its id and runs its batch script again. What users rely on: the requeued run
binds a new gateway address and its node uses that one -- never the last run's address, left in a
directory named by the same job id -- and the chain ends with the result of an undisturbed run.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from hcqw.hetjob.chain import final_state, follow_chain, submit_chain
from hcqw.slurm import Phase
from hcqw.slurm.commands import run_slurm

from hcqw.lab.pytest_plugin import wait_for
from tests.hetjob.test_peer_death import LOOP, block_started, undisturbed_state

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
log = logging.getLogger(__name__)


def test_a_job_requeued_mid_block_binds_a_new_address_and_reaches_the_undisturbed_result(sbatch, slurm_lab,
                                                                                         tmp_path):
    busy = tmp_path / "block-runs-on"  # the first run's block uses the device while this file exists
    params = {"runs": 2, "seed": 8, "hold_while": str(busy)}
    expected = undisturbed_state(tmp_path, params)

    busy.touch()
    chain = submit_chain(sbatch, LOOP, params, "requeue", tmp_path / "runs")
    job = chain.job_of("q0001")
    first = block_started(chain.run_dir, "q0001")
    old = (first / "gateway.address").read_text()
    run_slurm(["scontrol", "requeue", job], env=slurm_lab.env)
    wait_for(lambda: sbatch.status([job], force=True)[job].phase is Phase.PENDING, 60, f"job {job} to be requeued")
    busy.unlink()  # the requeued run's block is as long as the undisturbed one
    # SLURM holds a requeued job back for two minutes (its BeginTime); let it start in two seconds. Not at
    # once: slurmd revoked the first run's credential in whole seconds, and a new one dated that same
    # second counts as revoked ("Job already killed, do not launch batch job": the node then fails).
    run_slurm(["scontrol", "update", f"JobId={job}", "StartTime=now+2"], env=slurm_lab.env)
    follow_chain(sbatch, chain, timeout=240)
    assert final_state(chain) == expected

    again = first.with_name(f"{first.name}.r1")  # the batch script's directory for restart 1
    log.info("first run's gateway at %s, the requeued run's at %s", old, served_at(again))
    assert served_at(first) == old and served_at(again) != old
    # The requeued run's gateway served the node's session to its end: the node connected to it.
    gateway_log = (again / "gateway.log").read_text()
    assert "session" in gateway_log and "opened: requeue/q0001" in gateway_log
    assert "gateway stopping: the node's session ended" in gateway_log


def served_at(jobdir: Path) -> str:
    """The address the gateway of ``jobdir`` served at, from its log (it removes its address file as it stops)."""
    return re.search(r"ready at (\S+)", (jobdir / "gateway.log").read_text()).group(1)
