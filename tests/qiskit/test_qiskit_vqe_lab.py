"""examples/qiskit_vqe on the SLURM site lab, run by a lab user as README shows it (``hcqw slurm run``): each COBYLA
round is a quantum node whose hcqw EstimatorV2 runs on the node's gateway lease; the energy reaches the exact one."""

from __future__ import annotations

import shutil
import uuid

import pytest

pytest.importorskip("qiskit")

from hcqw.checkpoint import load_checkpoint  # noqa: E402
from hcqw.lab.pytest_plugin import make_user_dir  # noqa: E402
from hcqw.paths import state_file  # noqa: E402
from tests.support.lab_user import ALICE, checkpoint_key, quantum_nodes_across_hosts, run_as  # noqa: E402

pytestmark = pytest.mark.slurm
LOOP = "examples.qiskit_vqe.pipeline:make_loop"
ROUNDS = 2


def test_the_qiskit_vqe_runs_as_quantum_nodes_and_reaches_the_exact_energy(slurm_lab):
    from examples.qiskit_vqe.pipeline import TOLERANCE, exact_ground_energy

    runs = make_user_dir(slurm_lab, ALICE, "qiskit-vqe") / "runs"
    workflow = f"qiskit-vqe-{uuid.uuid4().hex[:6]}"
    try:
        run_as(slurm_lab, ALICE, ["hcqw", "slurm", "run", LOOP, "--param", f"rounds={ROUNDS}", "--runs-dir", str(runs),
                                  "--workflow-id", workflow], timeout=600)
        final = runs / workflow / "checkpoints" / state_file(ROUNDS)
        state, _ = load_checkpoint(final, workflow=workflow, key=checkpoint_key(slurm_lab, ALICE))
        assert len(state.energies) == ROUNDS
        assert abs(state.energies[-1] - exact_ground_energy()) <= TOLERANCE, state.energies
        assert len(quantum_nodes_across_hosts(slurm_lab, workflow, ALICE)) == ROUNDS
    finally:
        shutil.rmtree(runs.parent, ignore_errors=True)
