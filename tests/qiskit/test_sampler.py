"""hcqw.qiskit.Sampler on real qsimcirq: counts against exact probabilities, registers, seeds, one lease per run."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit")

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister  # noqa: E402
from qiskit.circuit import Parameter  # noqa: E402
from qiskit.circuit.library import real_amplitudes  # noqa: E402
from qiskit.primitives import PrimitiveResult, SamplerPubResult  # noqa: E402
from qiskit.quantum_info import Statevector  # noqa: E402

from hcqw.metrics import read_events  # noqa: E402
from hcqw.qiskit import Sampler, UnsupportedCircuit  # noqa: E402

SHOTS = 4000


def assert_counts_match(counts: dict[int, int], probabilities: np.ndarray, shots: int) -> None:
    """Each outcome within 5 binomial standard deviations (+1 count) of its exact expectation."""
    for outcome, p in enumerate(probabilities):
        expected = shots * p
        allowance = 5 * np.sqrt(shots * p * (1 - p)) + 1
        assert abs(counts.get(outcome, 0) - expected) <= allowance, (outcome, counts, expected)
    assert sum(counts.values()) == shots


def ansatz() -> QuantumCircuit:
    qc = QuantumCircuit(3)
    qc.append(real_amplitudes(num_qubits=3, reps=2), range(3))
    return qc


def test_parameter_bindings_are_the_sweep_and_match_exact_probabilities():
    qc = ansatz()
    values = np.random.default_rng(1).uniform(-np.pi, np.pi, (2, 3, qc.num_parameters))
    measured = qc.measure_all(inplace=False)
    result = Sampler(seed=11).run([(measured, values)], shots=SHOTS).result()
    assert isinstance(result, PrimitiveResult) and isinstance(result[0], SamplerPubResult)
    meas = result[0].data.meas
    assert meas.shape == (2, 3) and meas.num_shots == SHOTS and meas.num_bits == 3
    for index in np.ndindex(2, 3):
        exact = Statevector(qc.assign_parameters(values[index])).probabilities()
        assert_counts_match(meas.get_int_counts(index), exact, SHOTS)


def test_registers_map_back_bit_by_bit():
    a, b = ClassicalRegister(2, "a"), ClassicalRegister(3, "b")
    qc = QuantumCircuit(QuantumRegister(3), a, b)
    qc.x(0)
    qc.h(1)
    qc.measure(0, a[1])  # always 1 -> a = 0b10
    qc.measure(1, b[0])
    qc.measure(0, b[2])  # b = 0b100 or 0b101
    data = Sampler(seed=3).run([qc], shots=SHOTS).result()[0].data
    assert data.a.get_int_counts() == {2: SHOTS}
    assert set(data.b.get_int_counts()) == {4, 5}
    assert_counts_match({k - 4: v for k, v in data.b.get_int_counts().items()}, np.array([0.5, 0.5]), SHOTS)


def test_mid_circuit_measurement_and_reset():
    qc = QuantumCircuit(1, 2)
    qc.x(0)
    qc.measure(0, 0)
    qc.reset(0)
    qc.measure(0, 1)
    assert Sampler(seed=1).run([qc], shots=100).result()[0].data.c.get_int_counts() == {1: 100}


def test_an_int_seed_reproduces_and_another_differs():
    qc = ansatz().measure_all(inplace=False)
    pub = (qc, np.linspace(0, 1, qc.num_parameters))
    first = Sampler(seed=5).run([pub], shots=500).result()[0].data.meas.get_bitstrings()
    again = Sampler(seed=5).run([pub], shots=500).result()[0].data.meas.get_bitstrings()
    other = Sampler(seed=6).run([pub], shots=500).result()[0].data.meas.get_bitstrings()
    assert first == again and first != other


def test_one_run_is_one_lease_and_one_pub_one_work_item(tmp_path, monkeypatch):
    metrics = tmp_path / "qpu.jsonl"
    monkeypatch.setenv("HCQW_METRICS", str(metrics))
    qc = ansatz().measure_all(inplace=False)
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    Sampler(seed=1).run([(qc, np.zeros((4, qc.num_parameters))), bell, (bell, None, 10)], shots=100).result()
    holds, execs = list(read_events(metrics, "hold")), list(read_events(metrics, "exec"))
    assert len(holds) == 1 and len(execs) == 1
    assert execs[0]["items"] == 3 and execs[0]["shots"] == 4 * 100 + 100 + 10


def test_a_circuit_that_measures_nothing_reads_zeros_without_the_device(tmp_path, monkeypatch):
    monkeypatch.setenv("HCQW_METRICS", str(tmp_path / "qpu.jsonl"))
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    result = Sampler().run([qc], shots=10).result()
    assert result[0].data.c.get_int_counts() == {0: 10}
    assert not (tmp_path / "qpu.jsonl").exists()


def test_unicode_parameter_names_bind_by_name():
    theta = Parameter("θ_0")
    qc = QuantumCircuit(1, 1)
    qc.ry(theta, 0)
    qc.measure(0, 0)
    result = Sampler(seed=2).run([(qc, {"θ_0": [0.0, np.pi]})], shots=50).result()
    assert result[0].data.c.get_int_counts(0) == {0: 50} and result[0].data.c.get_int_counts(1) == {1: 50}


def test_a_function_of_a_parameter_is_refused_before_the_device(tmp_path, monkeypatch):
    monkeypatch.setenv("HCQW_METRICS", str(tmp_path / "qpu.jsonl"))
    theta = Parameter("t")
    qc = QuantumCircuit(1, 1)
    qc.ry(theta.cos(), 0)
    qc.measure(0, 0)
    with pytest.raises(UnsupportedCircuit, match="applies cos"):
        Sampler().run([(qc, [0.3])])
    assert not (tmp_path / "qpu.jsonl").exists()


def test_qasm_text_pub():
    text = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nbit[1] c;\nx q[0];\nc[0] = measure q[0];\n'
    data = Sampler(seed=1).run([text], shots=20).result()[0].data
    assert [bits.get_int_counts() for bits in data.values()] == [{1: 20}]


def test_a_lone_pub_is_refused_with_qiskits_message():
    with pytest.raises(ValueError, match="wrap it with"):
        Sampler().run("OPENQASM 3.0;\nqubit q;\n")

