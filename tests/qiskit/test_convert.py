"""The Qiskit -> Cirq converter: exact unitaries gate by gate, parameters, measurement mapping, refusals,
and only the Cirq types the wire decoder accepts."""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy

pytest.importorskip("qiskit")

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister  # noqa: E402
from qiskit.circuit import Parameter, ParameterVector  # noqa: E402
from qiskit.circuit.library import get_standard_gate_name_mapping  # noqa: E402
from qiskit.circuit.random import random_circuit  # noqa: E402
from qiskit.quantum_info import Operator  # noqa: E402

from hcqw.qiskit.convert import GATES, UnsupportedCircuit, to_cirq  # noqa: E402
from tests.support.wire_types import wire_type_faults  # noqa: E402

def unitary(converted, num_qubits: int, resolver=None) -> np.ndarray:
    circuit = cirq.resolve_parameters(converted.circuit, resolver or {})
    order = cirq.LineQubit.range(num_qubits)[::-1]  # Qiskit's matrices: qubit 0 is the least significant index bit
    return circuit.unitary(qubit_order=order, qubits_that_should_be_present=order)


def check_allowed(circuit: cirq.AbstractCircuit) -> None:
    """The service's wire decoder takes the circuit and gives it back unchanged."""
    assert wire_type_faults(circuit) == []


@pytest.mark.parametrize("name", sorted(GATES))
def test_each_basis_gate_has_the_same_unitary_and_phase(name):
    gate = get_standard_gate_name_mapping()[name]
    rng = np.random.default_rng(len(name))
    if gate.params:
        gate = gate.base_class(*rng.uniform(-np.pi, np.pi, len(gate.params)))
    qc = QuantumCircuit(gate.num_qubits)
    qc.append(gate, list(range(gate.num_qubits))[::-1] if gate.num_qubits > 1 else [0])  # not the identity order
    converted = to_cirq(qc)
    check_allowed(converted.circuit)
    np.testing.assert_allclose(unitary(converted, qc.num_qubits), Operator(qc).data, atol=1e-9)


def test_random_circuits_translate_to_the_same_unitary_up_to_global_phase():
    for seed in range(8):
        qc = random_circuit(4, 6, max_operands=3, seed=seed)
        converted = to_cirq(qc)
        check_allowed(converted.circuit)
        assert cirq.allclose_up_to_global_phase(unitary(converted, 4), Operator(qc).data, atol=1e-8), seed


def test_parameters_become_symbols_of_the_same_name_and_expressions_sympy_arithmetic():
    theta, phi = Parameter("θ"), Parameter("_φ_0_")
    vector = ParameterVector("v", 2)
    qc = QuantumCircuit(2)
    qc.rx(2 * theta + 0.5, 0)
    qc.ry(theta * phi - vector[1] / theta, 1)
    qc.rzz(phi**2 + vector[0], 0, 1)
    qc.p(-theta, 1)
    converted = to_cirq(qc)
    check_allowed(converted.circuit)
    assert converted.parameters == tuple(p.name for p in qc.parameters)
    assert {s.name for s in cirq.parameter_symbols(converted.circuit)} == {"θ", "_φ_0_", "v[0]", "v[1]"}
    values = {"θ": 0.7, "_φ_0_": -1.3, "v[0]": 0.4, "v[1]": 2.2}
    bound = qc.assign_parameters({p: values[p.name] for p in qc.parameters})
    np.testing.assert_allclose(unitary(converted, 2, values), Operator(bound).data, atol=1e-9)


@pytest.mark.parametrize("make, named", [
    (lambda t: t.sin(), "applies sin"), (lambda t: t.exp(), "applies exp"), (lambda t: 2**t, "raises to t"),
    (lambda t: t**40, "raises to 40"),
])
def test_functions_of_parameters_are_refused_by_name(make, named):
    qc = QuantumCircuit(1)
    qc.rx(make(Parameter("t")), 0)
    with pytest.raises(UnsupportedCircuit, match=named):
        to_cirq(qc)


def test_control_flow_is_refused_by_name():
    qc = QuantumCircuit(1, 1)
    with qc.for_loop(range(3)):
        qc.h(0)
    with pytest.raises(UnsupportedCircuit, match="for_loop"):
        to_cirq(qc)


def test_a_custom_gate_named_like_a_basis_gate_is_refused_not_trusted():
    fake = QuantumCircuit(1, name="rx")
    fake.h(0)
    qc = QuantumCircuit(1)
    qc.append(fake.to_gate(), [0])
    with pytest.raises(UnsupportedCircuit, match="not Qiskit's standard RXGate"):
        to_cirq(qc)


def test_measurements_map_to_registers_the_last_write_winning_and_aliases_sharing_bits():
    a, b = ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    qc = QuantumCircuit(QuantumRegister(3), a, b)
    qc.x(2)
    qc.measure(0, 0)
    qc.measure(2, 0)  # overwrites a[0]
    qc.measure(1, 2)
    qc.reset(2)
    qc.barrier()
    converted = to_cirq(qc)
    check_allowed(converted.circuit)
    assert not any(isinstance(op.gate, cirq.IdentityGate) for op in converted.circuit.all_operations())
    assert [bit is None for bit in converted.registers["a"]] == [False, True]
    result = cirq.Simulator().run(converted.circuit, repetitions=5)
    registers = converted.registers_from_samples(result.measurements, 5)
    assert registers["a"].tolist() == [[1, 0]] * 5 and registers["b"].tolist() == [[0]] * 5


def test_a_cirq_circuit_from_text_reads_each_measurement_key_as_a_register():
    """What a QASM-text pub becomes (hcqw.qasm parses it to Cirq): key -> register, column j -> bit j."""
    from hcqw.qiskit.convert import ConvertedCircuit

    q = cirq.LineQubit.range(3)
    circuit = cirq.Circuit(cirq.X(q[0]), cirq.ry(sympy.Symbol("θ")).on(q[2]),
                           cirq.measure(q[0], q[1], key="c"), cirq.measure(q[2], key="d"))
    converted = ConvertedCircuit.from_cirq(circuit)
    assert converted.registers == {"c": (("c", 0), ("c", 1)), "d": (("d", 0),)} and converted.parameters == ("θ",)
    result = cirq.Simulator().run(circuit, {"θ": np.pi}, repetitions=3)
    registers = converted.registers_from_samples(result.measurements, 3)
    assert registers["c"].tolist() == [[1, 0]] * 3 and registers["d"].tolist() == [[1]] * 3
