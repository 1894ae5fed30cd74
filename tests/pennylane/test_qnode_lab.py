"""examples/pennylane_qnode on the site lab: ``hcqw slurm run`` of its hybrid loop as hcqw-alice, each
quantum node a hetjob whose gateway runs the QNode's circuits (energy and parameter-shift gradient,
through the wire codec) and whose qpu component is freed when the node's lease closes. It reaches the
same energies as the embedded run of the same loop and seed, within the tolerance of the exact
ground energy.

Fused nodes (``--fused``: each iteration one hetjob, its qpu component freed before the classical step)
and 12 iterations with Adam's step 0.2 (instead of the example's 40 x 0.1) keep the chain to 12 jobs."""

from __future__ import annotations

import shutil
import uuid

import pytest

from examples.pennylane_qnode.pipeline import TOLERANCE, exact_ground_energy
from hcqw.checkpoint import load_checkpoint
from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_split
from hcqw.lab.pytest_plugin import make_user_dir
from hcqw.paths import state_file
from hcqw.workflow import load_loop
from tests.support.lab_user import ALICE, checkpoint_key, quantum_nodes_across_hosts, run_as

pytestmark = pytest.mark.slurm
LOOP = "examples.pennylane_qnode.pipeline:make_loop"
PARAMS = {"iterations": 12, "stepsize": 0.2, "seed": 5}


@pytest.fixture(scope="module")
def embedded_state(tmp_path_factory):
    home = tmp_path_factory.mktemp("embedded-qnode")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HCQW_CHECKPOINT_KEY", str(home / "key"))
        mp.setenv("HCQW_STATE_DIR", str(home / "state"))
        workflow = Workflow.create(load_loop(LOOP, PARAMS), home / "runs", "qnode-emb")
        run_split([workflow], LocalDevice("qsim", directory=home / "device"))
        return workflow.final_state()


@pytest.mark.timeout(1200)  # the lab's start (a site venv on first use) and 12 hetjobs on a shared machine
def test_slurm_run_of_the_qnode_loop_as_a_lab_user_reaches_the_exact_energy(slurm_lab, embedded_state):
    runs = make_user_dir(slurm_lab, ALICE, "pl-qnode") / "runs"
    workflow = f"pl-qnode-{uuid.uuid4().hex[:6]}"
    params = [arg for name, value in PARAMS.items() for arg in ("--param", f"{name}={value}")]
    try:
        run_as(slurm_lab, ALICE, ["hcqw", "slurm", "run", LOOP, *params, "--runs-dir", str(runs),
                                  "--workflow-id", workflow, "--fused"], timeout=900)
        final = runs / workflow / "checkpoints" / state_file(PARAMS["iterations"])
        state, _ = load_checkpoint(final, workflow=workflow, key=checkpoint_key(slurm_lab, ALICE))
        assert state.energies == embedded_state.energies
        assert abs(state.energy - exact_ground_energy()) <= TOLERANCE, state.energies[-5:]
        assert len(quantum_nodes_across_hosts(slurm_lab, workflow, ALICE)) == PARAMS["iterations"]
    finally:
        shutil.rmtree(runs.parent, ignore_errors=True)
