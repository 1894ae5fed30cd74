"""hcqw.qiskit.Estimator on real qsimcirq: expectation values within a few stds of exact, grouping as sweep points,
shots from precision, one lease per run."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("qiskit")

from qiskit import QuantumCircuit  # noqa: E402
from qiskit.circuit.library import efficient_su2  # noqa: E402
from qiskit.primitives import StatevectorEstimator  # noqa: E402
from qiskit.quantum_info import SparsePauliOp  # noqa: E402

from hcqw.metrics import read_events  # noqa: E402
from hcqw.qiskit import Estimator  # noqa: E402
from hcqw.qiskit.estimator import _plan  # noqa: E402
from qiskit.primitives.containers.estimator_pub import EstimatorPub  # noqa: E402

H = SparsePauliOp.from_list([("III", -1.0), ("IIZ", 0.4), ("ZZI", -0.3), ("XXI", 0.2), ("IYY", 0.15),
                             ("XIX", -0.25), ("ZXY", 0.1)])


def circuit() -> QuantumCircuit:
    return efficient_su2(3, reps=1)


def test_expectation_values_are_within_four_stds_of_exact():
    qc = circuit()
    values = np.random.default_rng(4).uniform(-np.pi, np.pi, (4, qc.num_parameters))
    observables = [[H], [SparsePauliOp("ZZZ")], [H @ H]]  # shape (3, 1) broadcast with (4,) -> (3, 4)
    result = Estimator(seed=9).run([(qc, observables, values)]).result()[0]
    exact = StatevectorEstimator().run([(qc, observables, values)]).result()[0].data.evs
    assert result.data.evs.shape == (3, 4) == result.data.stds.shape
    assert np.all(result.data.stds > 0)
    z = (result.data.evs - exact) / result.data.stds
    assert np.all(np.abs(z) < 4), z


def test_stds_follow_the_precision_and_shots_are_ceil_of_its_inverse_square():
    qc = circuit()
    values = np.full(qc.num_parameters, 0.3)
    coarse = Estimator(seed=1).run([(qc, H, values)], precision=0.05).result()[0]
    fine = Estimator(seed=1).run([(qc, H, values)], precision=0.0125).result()[0]
    assert coarse.metadata["shots"] == math.ceil(1 / 0.05**2) == 400
    assert fine.metadata["shots"] == 6400
    assert 2 < coarse.data.stds / fine.data.stds < 6  # sqrt(16) = 4 in expectation
    assert Estimator().run([(qc, H, values)]).result()[0].metadata["shots"] == 4096  # Qiskit's default 0.015625


def test_qubit_wise_commuting_groups_are_sweep_points_of_one_circuit():
    qc = circuit()
    values = np.zeros((5, qc.num_parameters))
    plan = _plan(EstimatorPub.coerce((qc, H, values), 0.015625))
    # Z-type terms (IIZ, ZZI) share a group; XXI, IYY, XIX, ZXY do not all commute qubit-wise
    assert 2 <= plan.groups < 6
    assert len(plan.item.params) == 5 * plan.groups and plan.item.repetitions == 4096
    names = {name for point in plan.item.params for name in point}
    assert {p.name for p in qc.parameters} <= names


def test_one_run_is_one_lease(tmp_path, monkeypatch):
    metrics = tmp_path / "qpu.jsonl"
    monkeypatch.setenv("HCQW_METRICS", str(metrics))
    qc = circuit()
    Estimator(seed=1).run([(qc, H, np.zeros(qc.num_parameters)), (qc, [H, H @ H], np.ones(qc.num_parameters))],
                          precision=0.1).result()
    assert len(list(read_events(metrics, "hold"))) == 1
    assert [e["items"] for e in read_events(metrics, "exec")] == [2]


def test_an_int_seed_reproduces():
    qc = circuit()
    pub = (qc, H, np.full(qc.num_parameters, 0.2))
    assert Estimator(seed=3).run([pub]).result()[0].data.evs == Estimator(seed=3).run([pub]).result()[0].data.evs


def test_identity_only_observable_is_its_coefficient():
    qc = circuit()
    result = Estimator(seed=1).run([(qc, SparsePauliOp("III", 2.5), np.zeros(qc.num_parameters))]).result()[0]
    assert result.data.evs == pytest.approx(2.5) and result.data.stds == 0
