"""examples/qiskit_vqe on the SLURM site lab, run by a lab user as README shows it (``hcqw slurm run``): each COBYLA
round is a quantum node whose hcqw EstimatorV2 runs on the node's gateway lease; the energy reaches the exact one,
and equals the embedded run's with the same seed."""

from __future__ import annotations

import shutil
import uuid

import pytest

pytest.importorskip("qiskit")

from hcqw.checkpoint import load_checkpoint  # noqa: E402
from hcqw.device import LocalDevice  # noqa: E402
from hcqw.embedded import Workflow, run_split  # noqa: E402
from hcqw.lab.pytest_plugin import make_user_dir  # noqa: E402
from hcqw.paths import state_file  # noqa: E402
from hcqw.workflow import load_loop  # noqa: E402
from tests.support.lab_user import ALICE, checkpoint_key, quantum_nodes_across_hosts, run_as  # noqa: E402

pytestmark = pytest.mark.slurm
LOOP = "examples.qiskit_vqe.pipeline:make_loop"
ROUNDS = 2


@pytest.fixture(scope="module")
def embedded_energies(tmp_path_factory) -> list[float]:
    """The same loop on the embedded default (its own key and device queue)."""
    home = tmp_path_factory.mktemp("embedded-qiskit-vqe")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HCQW_CHECKPOINT_KEY", str(home / "key"))
        mp.setenv("HCQW_STATE_DIR", str(home / "state"))
        workflow = Workflow.create(load_loop(LOOP, {"rounds": ROUNDS}), home / "runs", "qiskit-vqe-emb")
        run_split([workflow], LocalDevice("qsim", directory=home / "device"))
        return workflow.final_state().energies


def test_the_qiskit_vqe_runs_as_quantum_nodes_and_reaches_the_exact_energy(slurm_lab, embedded_energies):
    from examples.qiskit_vqe.pipeline import TOLERANCE, exact_ground_energy

    runs = make_user_dir(slurm_lab, ALICE, "qiskit-vqe") / "runs"
    workflow = f"qiskit-vqe-{uuid.uuid4().hex[:6]}"
    try:
        run_as(slurm_lab, ALICE, ["hcqw", "slurm", "run", LOOP, "--param", f"rounds={ROUNDS}", "--runs-dir", str(runs),
                                  "--workflow-id", workflow], timeout=600)
        final = runs / workflow / "checkpoints" / state_file(ROUNDS)
        state, _ = load_checkpoint(final, workflow=workflow, key=checkpoint_key(slurm_lab, ALICE))
        print(f"{workflow}: round energies {state.energies} Ha, exact {exact_ground_energy()} Ha")
        assert len(state.energies) == ROUNDS
        assert abs(state.energies[-1] - exact_ground_energy()) <= TOLERANCE, state.energies
        assert state.energies == embedded_energies  # the same seed samples alike on the node's gateway
        assert len(quantum_nodes_across_hosts(slurm_lab, workflow, ALICE)) == ROUNDS
    finally:
        shutil.rmtree(runs.parent, ignore_errors=True)
