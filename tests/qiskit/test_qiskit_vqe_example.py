"""examples/qiskit_vqe end to end on the embedded default (real qsimcirq): the energy reaches the exact one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("qiskit")

from hcqw.checkpoint import load_checkpoint  # noqa: E402
from hcqw.cli import main as hcqw_main  # noqa: E402
from hcqw.metrics import read_events  # noqa: E402
from tests.support import ROOT  # noqa: E402


@pytest.mark.slow
def test_the_plain_qiskit_vqe_reaches_the_exact_energy(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HCQW_METRICS": str(tmp_path / "qpu.jsonl")}
    done = subprocess.run([sys.executable, "-m", "examples.qiskit_vqe", "--seed", "7"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "(within 0.01)" in done.stdout, done.stdout + done.stderr
    evaluations = int(done.stdout.split(" energy evaluations")[0].rsplit(" ", 1)[1])
    # every Estimator.run is one lease: the optimisation's energies plus the final one
    assert len(list(read_events(tmp_path / "qpu.jsonl", "hold"))) == evaluations + 1


@pytest.mark.slow
def test_the_rounds_loop_runs_each_round_on_its_nodes_lease(tmp_path):
    from examples.qiskit_vqe.pipeline import TOLERANCE, exact_ground_energy

    assert hcqw_main(["run", "examples.qiskit_vqe.pipeline:make_loop", "--runs-dir", str(tmp_path),
                      "--workflow-id", "qv"]) == 0
    state = load_checkpoint(tmp_path / "qv" / "checkpoints" / "state-0002.ckpt", workflow="qv")[0]
    assert len(state.energies) == 2 and abs(state.energies[-1] - exact_ground_energy()) <= TOLERANCE
    assert len(list(read_events(tmp_path / "qv" / "metrics" / "qpu.jsonl", "hold"))) == 2  # one per quantum node
