"""PennyLane operations -> Cirq gates: each conversion has PennyLane's own matrix, and emits only what
hcqw's wire decoder accepts (checked with the decoder itself)."""

from __future__ import annotations

import cirq
import numpy as np
import pennylane as qml
import pytest
from hcqw.errors import CircuitError
from hcqw.pennylane.convert import ANGLE_GATES, FIXED_GATES, MEASUREMENT_KEY, supports, tape_to_circuit
from tests.support.wire_types import wire_type_faults

def assert_only_allowed(circuit: cirq.AbstractCircuit) -> None:
    """The service's wire decoder takes the circuit and gives it back unchanged."""
    assert wire_type_faults(cirq.Circuit(circuit)) == []


def _unitary(converted, wires) -> np.ndarray:
    """The converted circuit's unitary (measurement removed, symbols resolved), over ``wires`` in order."""
    body = cirq.Circuit(op for op in converted.circuit.all_operations() if not cirq.is_measurement(op))
    resolved = cirq.resolve_parameters(body, converted.values)
    qubits = [cirq.LineQubit(i) for i in range(len(wires))]
    return resolved.unitary(qubit_order=qubits)


ANGLE = 0.7371
TWO_QUBIT_ANGLE_OPS = {"ControlledPhaseShift", "IsingXX", "IsingYY", "IsingZZ"}


def _pennylane_op(name: str):
    cls = getattr(qml, name)
    if name in ANGLE_GATES:
        return cls(ANGLE, wires=range(2 if name in TWO_QUBIT_ANGLE_OPS else 1))
    return cls(wires=range(cls.num_wires))


@pytest.mark.parametrize("name", sorted(FIXED_GATES) + sorted(ANGLE_GATES))
def test_each_gate_has_pennylanes_matrix(name):
    op = _pennylane_op(name)
    wires = list(op.wires)
    converted = tape_to_circuit(qml.tape.QuantumScript([op], [qml.sample(wires=wires)], shots=10), wires)
    assert np.allclose(_unitary(converted, wires), qml.matrix(op, wire_order=wires), atol=1e-12), name
    assert_only_allowed(converted.circuit)
    assert supports(op)


def test_angles_become_symbols_with_values_in_cirqs_unit():
    tape = qml.tape.QuantumScript([qml.RX(0.3, 0), qml.PhaseShift(np.pi / 2, 1), qml.IsingZZ(np.pi, [0, 1])],
                                  [qml.sample(wires=[0, 1])], shots=5)
    converted = tape_to_circuit(tape, [0, 1])
    assert converted.values == pytest.approx({"p0": 0.3, "p1": 0.5, "p2": 1.0})
    assert cirq.parameter_names(converted.circuit) == {"p0", "p1", "p2"}


def test_tapes_differing_only_in_angles_are_one_circuit():
    def tape(x):
        return qml.tape.QuantumScript([qml.RY(x, 0), qml.CNOT([0, 1])], [qml.sample(wires=[0, 1])], shots=5)

    first, second = tape_to_circuit(tape(0.1), [0, 1]), tape_to_circuit(tape(0.9), [0, 1])
    assert first.circuit == second.circuit and hash(first.circuit) == hash(second.circuit)
    assert first.values != second.values


def test_a_matrix_operation_without_decomposition_becomes_a_matrix_gate():
    op = qml.BlockEncode(np.array([[0.1, 0.2], [0.3, 0.4]]), wires=[0, 1])
    assert supports(op)
    converted = tape_to_circuit(qml.tape.QuantumScript([op], [qml.sample(wires=[0, 1])], shots=5), [0, 1])
    assert np.allclose(_unitary(converted, [0, 1]), qml.matrix(op), atol=1e-12)
    assert_only_allowed(converted.circuit)


def test_only_the_measured_wires_are_measured_in_their_order():
    tape = qml.tape.QuantumScript([qml.X("a")], [qml.sample(wires=["b", "a"])], shots=5)
    converted = tape_to_circuit(tape, ["a", "b", "c"])
    (measurement,) = [op for op in converted.circuit.all_operations() if cirq.is_measurement(op)]
    assert measurement.qubits == (cirq.LineQubit(1), cirq.LineQubit(0))
    assert cirq.measurement_key_name(measurement) == MEASUREMENT_KEY and converted.measured_wires == ("b", "a")


def test_a_circuit_of_every_gate_uses_only_types_the_decoder_accepts():
    ops = [_pennylane_op(name) for name in sorted(FIXED_GATES) + sorted(ANGLE_GATES)]
    ops.append(qml.QubitUnitary(qml.matrix(qml.CRX(0.4, [0, 1])), wires=[1, 2]))
    converted = tape_to_circuit(qml.tape.QuantumScript(ops, [qml.sample(wires=[0, 1, 2])], shots=5), [0, 1, 2])
    assert len(list(converted.circuit.all_operations())) == len(ops) + 1
    assert_only_allowed(converted.circuit)


def test_an_operation_the_preprocessing_should_have_decomposed_is_refused_by_name():
    tape = qml.tape.QuantumScript([qml.QFT(wires=[0, 1, 2])], [qml.sample(wires=[0])], shots=5)
    assert not supports(tape.operations[0])
    with pytest.raises(CircuitError, match="QFT.*preprocess"):
        tape_to_circuit(tape, [0, 1, 2])


def test_a_large_unitary_is_not_a_matrix_gate():
    op = qml.QubitUnitary(np.eye(32), wires=range(5))
    assert not supports(op)
