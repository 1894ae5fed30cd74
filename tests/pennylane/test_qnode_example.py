"""examples/pennylane_qnode end to end on the embedded default (real qsimcirq): the plain PennyLane
optimisation as users run it (``python -m examples.pennylane_qnode``), and the same steps as a hybrid
loop of quantum and classical nodes (what ``hcqw slurm run`` runs on a cluster), each checked against
the exact ground energy."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from examples.pennylane_qnode.pipeline import TOLERANCE, exact_ground_energy, make_loop
from examples.vqe.pipeline import exact_ground_energy as vqe_exact_energy
from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_split
from hcqw.metrics import read_events
from tests.support import ROOT

pytestmark = pytest.mark.slow


def test_the_exact_energy_is_the_h2_ground_energy_of_the_cirq_vqe():
    assert exact_ground_energy() == pytest.approx(vqe_exact_energy(), abs=1e-12)


def test_python_m_example_reaches_the_exact_energy():
    done = subprocess.run([sys.executable, "-m", "examples.pennylane_qnode", "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    energy = float(re.search(r"VQE energy\s+([-+.\d]+) Ha", done.stdout).group(1))
    assert abs(energy - exact_ground_energy()) <= TOLERANCE, done.stdout
    assert "within" in done.stdout and "NOT within" not in done.stdout


def test_the_hybrid_loop_reaches_the_exact_energy_with_one_lease_per_quantum_node(tmp_path):
    loop = make_loop(seed=5)  # the defaults: 40 iterations of 4000 shots
    workflow = Workflow.create(loop, tmp_path / "runs", "pl-qnode")
    run_split([workflow], LocalDevice("qsim", directory=tmp_path / "device"))
    state = workflow.final_state()
    assert len(state.energies) == loop.iterations
    assert abs(state.energy - exact_ground_energy()) <= TOLERANCE, state.energies[-5:]
    holds = [e for e in read_events(workflow.ctx.metrics_path, "hold") if e["node"].startswith("q")]
    execs = [e for e in read_events(workflow.ctx.metrics_path, "exec") if e["node"].startswith("q")]
    # each quantum node: one lease, in which the energy and its gradient are two device batches
    assert len(holds) == loop.iterations and len(execs) == 2 * loop.iterations
