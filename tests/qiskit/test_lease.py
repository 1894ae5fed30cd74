"""hcqw.qiskit.lease: one device lease per run, seeds, sweep points, and items split at the sweep limit."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit")

from qiskit import QuantumCircuit  # noqa: E402
from qiskit.circuit import Parameter  # noqa: E402

from hcqw.metrics import read_events  # noqa: E402
from hcqw.qiskit import Sampler  # noqa: E402
from hcqw.qiskit.lease import lease_seed, sweep_points  # noqa: E402


def test_seeds_an_int_is_itself_a_generator_draws_and_anything_else_is_refused():
    assert lease_seed(7) == 7 and lease_seed(np.int64(7)) == 7 and lease_seed(None) is None
    generator = np.random.default_rng(1)
    assert lease_seed(generator) != lease_seed(generator)  # a fresh draw per run
    with pytest.raises(TypeError, match="seed must be"):
        lease_seed(1.5)


def test_sweep_points_follow_the_bindings_in_c_order():
    values = np.arange(12, dtype=float).reshape(2, 3, 2)
    points = sweep_points(("a", "b"), values)
    assert points[0] == {"a": 0.0, "b": 1.0} and points[4] == {"a": 8.0, "b": 9.0} and len(points) == 6
    assert sweep_points((), np.zeros((4, 0))) == ({},) * 4


def test_more_bindings_than_a_work_item_carries_go_as_several_items_of_one_batch(tmp_path, monkeypatch):
    from hcqw.qiskit.lease import MAX_SWEEP_POINTS

    monkeypatch.setenv("HCQW_METRICS", str(tmp_path / "qpu.jsonl"))
    theta = Parameter("t")
    qc = QuantumCircuit(1, 1)
    qc.ry(theta, 0)
    qc.measure(0, 0)
    values = np.where(np.arange(MAX_SWEEP_POINTS + 3) % 2, np.pi, 0.0)  # 0, pi, 0, ...: outcome = index parity
    meas = Sampler(seed=1).run([(qc, values[:, None])], shots=2).result()[0].data.c
    assert meas.shape == (MAX_SWEEP_POINTS + 3,)
    assert [meas.get_int_counts(i) for i in range(meas.shape[0])] == [{i % 2: 2} for i in range(meas.shape[0])]
    assert [e["items"] for e in read_events(tmp_path / "qpu.jsonl", "exec")] == [2]
