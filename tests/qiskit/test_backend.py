"""hcqw.qiskit.Backend: a BackendV2 whose run() gives counts and memory as Qiskit's simulators do, on qsimcirq."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit")

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile  # noqa: E402
from qiskit.circuit.library import quantum_volume  # noqa: E402
from qiskit.primitives import BackendSamplerV2  # noqa: E402
from qiskit.providers import JobStatus  # noqa: E402
from qiskit.quantum_info import Statevector  # noqa: E402

from hcqw.metrics import read_events  # noqa: E402
from hcqw.qiskit import BASIS, Backend  # noqa: E402


def test_transpiling_for_the_target_stays_in_hcqws_basis():
    qc = quantum_volume(4, seed=2)
    qc.measure_all()
    transpiled = transpile(qc, Backend(), optimization_level=1, seed_transpiler=1)
    assert set(transpiled.count_ops()) <= set(BASIS)
    assert transpiled.num_qubits == 4  # no resizing: the target has no fixed width


def test_counts_and_memory_are_per_register_as_qiskit_reports_them():
    a, b = ClassicalRegister(1, "a"), ClassicalRegister(2, "b")
    qc = QuantumCircuit(QuantumRegister(2), a, b)
    qc.x(1)
    qc.measure(1, a[0])
    qc.measure(1, b[1])
    job = Backend(seed=1).run(qc, shots=7, memory=True)
    assert job.status() == JobStatus.DONE
    result = job.result()
    assert result.get_counts() == {"10 1": 7}  # b = 0b10, a = 1, registers last-first as Qiskit prints them
    assert result.get_memory() == ["10 1"] * 7


def test_samples_match_exact_probabilities_and_seed_reproduces():
    qc = quantum_volume(3, seed=7)
    exact = Statevector(qc).probabilities()
    measured = transpile(qc.measure_all(inplace=False), Backend(), seed_transpiler=1)
    shots = 4000
    counts = Backend(seed=4).run(measured, shots=shots).result().get_counts()
    for outcome, p in enumerate(exact):
        key = format(outcome, "03b")
        assert abs(counts.get(key, 0) - shots * p) <= 5 * np.sqrt(shots * p * (1 - p)) + 1, (key, counts, p)
    assert Backend(seed=4).run(measured, shots=shots).result().get_counts() == counts


def test_one_run_of_many_circuits_is_one_lease_and_backend_sampler_v2_works(tmp_path, monkeypatch):
    metrics = tmp_path / "qpu.jsonl"
    monkeypatch.setenv("HCQW_METRICS", str(metrics))
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    result = BackendSamplerV2(backend=Backend(seed=2)).run([bell, bell], shots=1000).result()
    for pub in result:
        assert set(pub.data.meas.get_int_counts()) == {0, 3}
    again = BackendSamplerV2(backend=Backend(seed=2)).run([bell, bell], shots=1000).result()  # the backend's seed
    assert [p.data.meas.get_bitstrings() for p in again] == [p.data.meas.get_bitstrings() for p in result]
    assert len(list(read_events(metrics, "hold"))) == 2  # one per run
    assert [e["items"] for e in read_events(metrics, "exec")] == [2, 2]


def test_unbound_parameters_and_unknown_options_are_refused():
    from qiskit.circuit import Parameter

    qc = QuantumCircuit(1, 1)
    qc.rx(Parameter("t"), 0)
    qc.measure(0, 0)
    with pytest.raises(ValueError, match="unbound parameters"):
        Backend().run(qc)
    with pytest.raises(ValueError, match="does not take options"):
        Backend().run(qc.assign_parameters([0.1]), noise_model=object())
