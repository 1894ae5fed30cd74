"""The ``hcqw.qpu`` PennyLane device on the embedded local device (real qsimcirq): its measurements
agree with PennyLane's exact simulator within shot noise, one ``execute`` batch is one lease (read
from the QPU timeline the lease writes), a seed reproduces, analytic mode is refused."""

from __future__ import annotations

import numpy as np
import pennylane as qml
import pytest
from pennylane import numpy as pnp

from hcqw.device import LocalDevice
from hcqw.metrics import read_events
from hcqw.pennylane import HcqwDevice

SHOTS = 20_000
# 5 standard deviations of a mean of SHOTS values in [-1, 1] (times the largest coefficient for sums)
NOISE = 5 / SHOTS**0.5

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # PennyLane deprecates device-level shots


def _ansatz(x, y):
    qml.RX(x, 0)
    qml.RY(y, 1)
    qml.CNOT([0, 1])
    qml.Hadamard(2)
    qml.CRZ(x + y, [2, 0])  # decomposed by the device's preprocessing


def _both(circuit, *args, seed=3):
    """(hcqw.qpu result, default.qubit exact result) of the same quantum function."""
    sampled = qml.set_shots(qml.QNode(circuit, qml.device("hcqw.qpu", wires=3, seed=seed)), shots=SHOTS)
    exact = qml.QNode(circuit, qml.device("default.qubit", wires=3))
    return sampled(*args), exact(*args)


def test_the_device_is_found_by_its_entry_point_name():
    dev = qml.device("hcqw.qpu", wires=2, shots=100)
    assert isinstance(dev, HcqwDevice) and dev.name == "hcqw.qpu"


def test_expectations_of_pauli_words_and_a_hamiltonian_match_the_exact_values():
    hamiltonian = qml.Hamiltonian([0.5, -0.8, 0.3], [qml.Z(0) @ qml.Z(1), qml.X(2), qml.Y(0) @ qml.X(1)])

    def circuit(x, y):
        _ansatz(x, y)
        return (qml.expval(qml.Z(0)), qml.expval(qml.X(1) @ qml.Y(2)), qml.expval(hamiltonian),
                qml.var(qml.Z(0) @ qml.Z(1)))

    sampled, exact = _both(circuit, 0.4, 1.1)
    assert np.array(sampled, dtype=float) == pytest.approx(np.array(exact, dtype=float), abs=2 * NOISE)


def test_probabilities_samples_and_counts_match_the_exact_distribution():
    def circuit(x, y):
        _ansatz(x, y)
        return qml.probs(wires=[0, 1]), qml.counts(wires=[2]), qml.sample(wires=[0, 1, 2])

    sampled = qml.set_shots(qml.QNode(circuit, qml.device("hcqw.qpu", wires=3, seed=5)), shots=SHOTS)
    probs, counts, samples = sampled(0.9, 2.0)
    exact_probs = circuit_exact_probs(0.9, 2.0)
    assert probs == pytest.approx(exact_probs, abs=NOISE)
    assert sum(counts.values()) == SHOTS and counts["0"] / SHOTS == pytest.approx(0.5, abs=NOISE)
    assert samples.shape == (SHOTS, 3) and set(samples.ravel().tolist()) <= {0, 1}
    assert (samples[:, 0] * 2 + samples[:, 1] == 0).mean() == pytest.approx(exact_probs[0], abs=NOISE)


def circuit_exact_probs(x, y):
    @qml.qnode(qml.device("default.qubit", wires=3))
    def circuit():
        _ansatz(x, y)
        return qml.probs(wires=[0, 1])

    return circuit()


def test_a_hermitian_observable_is_measured_in_its_own_eigenbasis():
    matrix = pnp.array([[1.0, 0.5 - 0.3j], [0.5 + 0.3j, -0.4]])

    def circuit(x, y):
        _ansatz(x, y)
        return qml.expval(qml.Hermitian(matrix, wires=1)), qml.expval(qml.Z(0))

    sampled, exact = _both(circuit, 0.3, 0.8)
    assert np.array(sampled, dtype=float) == pytest.approx(np.array(exact, dtype=float), abs=1.5 * NOISE)


def test_one_execute_batch_is_one_lease_and_a_gradients_tapes_are_one_work_item(tmp_path, monkeypatch):
    monkeypatch.setenv("HCQW_METRICS", str(tmp_path / "qpu.jsonl"))
    dev = qml.device("hcqw.qpu", wires=3, seed=11)

    @qml.set_shots(shots=4000)
    @qml.qnode(dev, diff_method="parameter-shift")
    def energy(params):
        _ansatz(params[0], params[1])
        return qml.expval(qml.Z(0) @ qml.Z(1))

    params = pnp.array([0.4, 1.1], requires_grad=True)
    gradient = qml.grad(energy)(params)
    holds, execs = list(read_events(tmp_path / "qpu.jsonl", "hold")), list(read_events(tmp_path / "qpu.jsonl", "exec"))
    # the forward pass and the gradient: one lease each, each one device batch
    assert len(holds) == 2 and len(execs) == 2
    # the shifted tapes differ only in angles: one work item, a sweep with a point per tape
    shifted, _ = qml.gradients.param_shift(qml.workflow.construct_tape(energy)(params))
    assert len(shifted) == 8  # RX, RY: 2 each; CRZ's four-term rule: 4
    assert execs[1]["items"] == 1 and execs[1]["shots"] == len(shifted) * 4000
    exact = qml.grad(qml.QNode(energy.func, qml.device("default.qubit", wires=3)))(params)
    assert gradient == pytest.approx(exact, abs=0.1)


def test_the_same_seed_samples_the_same_and_another_seed_does_not():
    def run(seed):
        @qml.set_shots(shots=200)
        @qml.qnode(qml.device("hcqw.qpu", wires=2, seed=seed))
        def circuit():
            qml.Hadamard(0)
            qml.Hadamard(1)
            return qml.sample(wires=[0, 1])

        return circuit(), circuit()

    first, second = run(21), run(21)
    assert (first[0] == second[0]).all() and (first[1] == second[1]).all()
    assert not (first[0] == first[1]).all(), "each batch of a seeded device draws its own seed"
    assert not (run(22)[0] == first[0]).all()


def test_analytic_mode_is_refused_with_what_to_do():
    @qml.qnode(qml.device("hcqw.qpu", wires=1))
    def circuit():
        return qml.expval(qml.Z(0))

    with pytest.raises(qml.exceptions.DeviceError, match=r"shots=None.*not supported.*set_shots"):
        circuit()


def test_a_lease_given_to_the_device_runs_every_batch_and_stays_open(tmp_path):
    lease = LocalDevice("qsim", directory=tmp_path / "device").acquire("wf", "q0001", seed=4)
    try:
        dev = qml.device("hcqw.qpu", wires=1, lease=lease)

        @qml.set_shots(shots=100)
        @qml.qnode(dev)
        def circuit():
            qml.X(0)
            return qml.expval(qml.Z(0))

        assert circuit() == -1 and circuit() == -1
        assert lease.is_open
    finally:
        lease.close()


def test_shot_vectors_and_broadcasting():
    @qml.qnode(qml.device("hcqw.qpu", wires=1, seed=2))
    def circuit(x):
        qml.RX(x, 0)
        return qml.expval(qml.Z(0))

    results = qml.set_shots(circuit, shots=[(5000, 2)])(pnp.array([0.0, pnp.pi]))
    assert len(results) == 2 and all(r == pytest.approx([1.0, -1.0]) for r in results)


def test_a_bad_seed_is_refused():
    with pytest.raises(qml.exceptions.DeviceError, match="seed must be an int"):
        qml.device("hcqw.qpu", wires=1, seed="global")


def test_a_mid_circuit_measurement_is_deferred():
    @qml.set_shots(shots=2000)
    @qml.qnode(qml.device("hcqw.qpu", wires=3, seed=8))
    def circuit():
        qml.Hadamard(0)
        m = qml.measure(0)
        qml.cond(m, qml.X)(1)
        return qml.expval(qml.Z(0) @ qml.Z(1)), qml.probs(wires=[1])

    correlation, probs = circuit()
    assert correlation == 1.0 and probs == pytest.approx([0.5, 0.5], abs=0.05)


def test_a_device_without_wires_runs_each_circuit_on_its_own_wires():
    @qml.set_shots(shots=100)
    @qml.qnode(qml.device("hcqw.qpu", seed=1))
    def circuit():
        qml.X("a")
        qml.CNOT(["a", "b"])
        return qml.probs()

    assert circuit() == pytest.approx([0, 0, 0, 1])


def test_the_state_is_refused_since_the_device_only_samples():
    @qml.set_shots(shots=100)
    @qml.qnode(qml.device("hcqw.qpu", wires=1))
    def circuit():
        return qml.state()

    with pytest.raises(qml.exceptions.DeviceError, match="not accepted with finite shots"):
        circuit()
