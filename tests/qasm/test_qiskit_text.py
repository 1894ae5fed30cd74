"""What Qiskit emits (qiskit.qasm2.dumps / qiskit.qasm3.dumps) parses to the same unitary as Qiskit's own
Operator of the circuit, for random circuits and parametrised ones. Qiskit orders qubits little-endian
(qubit 0 least significant), Cirq big-endian: the comparison reverses Cirq's qubit order."""

from __future__ import annotations

import re

import cirq
import numpy as np
import pytest

qiskit = pytest.importorskip("qiskit")
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, qasm2, qasm3  # noqa: E402
from qiskit.circuit import Parameter, ParameterVector  # noqa: E402
from qiskit.circuit.random import random_circuit  # noqa: E402
from qiskit.quantum_info import Operator  # noqa: E402

from hcqw.errors import QasmError  # noqa: E402
from hcqw.qasm import parse  # noqa: E402
from tests.support.wire_types import wire_type_faults  # noqa: E402


def assert_same_unitary(text: str, circuit: "QuantumCircuit", values: dict | None = None) -> None:
    parsed = parse(text)
    assert wire_type_faults(parsed) == []
    if values:
        parsed = cirq.resolve_parameters(parsed, values)
    order = list(reversed(cirq.LineQubit.range(circuit.num_qubits)))
    expected = Operator(circuit).data
    cirq.testing.assert_allclose_up_to_global_phase(parsed.unitary(qubit_order=order), expected, atol=1e-7)


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("dump", [qasm2.dumps, qasm3.dumps], ids=["qasm2", "qasm3"])
def test_random_circuits(seed, dump):
    circuit = random_circuit(1 + seed % 5, 6, max_operands=4, seed=seed)
    assert_same_unitary(dump(circuit), circuit)


def parametrised() -> tuple[QuantumCircuit, list[Parameter]]:
    theta, phi = ParameterVector("θ", 3), Parameter("φ")
    circuit = QuantumCircuit(QuantumRegister(3, "q"), QuantumRegister(0, "empty"), ClassicalRegister(3, "c"))
    circuit.rx(theta[0] * 2, 0)
    circuit.cu(theta[1], phi, 0.3, -theta[2] / 2, 0, 1)
    circuit.rzx(phi / 2, 1, 2)
    circuit.barrier()
    circuit.crz(theta[0] - phi, 2, 0)
    circuit.rxx(-phi, 0, 2)
    circuit.ryy(theta[2] * 3, 1, 0)
    circuit.u(theta[1], 0.5, phi + 1, 2)
    circuit.p(theta[0] / 4 + 1, 1)
    circuit.sxdg(0)
    circuit.ecr(1, 2)
    circuit.iswap(0, 1)
    return circuit, [*theta, phi]


def test_parametrised_circuits_with_unicode_names_and_zero_length_registers():
    circuit, parameters = parametrised()
    text = qasm3.dumps(circuit)
    names = re.findall(r"^input float\[64\] (\S+);", text, re.M)
    assert len(names) == len(parameters) and any("θ" in n for n in names) and "φ" in names
    rng = np.random.default_rng(7)
    for _ in range(3):
        values = {p: float(rng.uniform(-np.pi, np.pi)) for p in parameters}
        # qiskit declares its inputs in the order of circuit.parameters (sorted by name)
        by_name = dict(zip(names, (values[p] for p in circuit.parameters)))
        assert_same_unitary(text, circuit.assign_parameters(values), by_name)


def test_measurements_of_a_random_circuit_are_one_key_per_register_in_bit_order():
    circuit = random_circuit(4, 3, measure=True, seed=3)
    for dump in (qasm2.dumps, qasm3.dumps):
        parsed = parse(dump(circuit))
        (measure,) = [op for op in parsed.all_operations() if cirq.is_measurement(op)]
        expected = [cirq.LineQubit(circuit.find_bit(instruction.qubits[0]).index)
                    for instruction in sorted((i for i in circuit.data if i.operation.name == "measure"),
                                              key=lambda i: circuit.find_bit(i.clbits[0]).index)]
        assert measure.gate.key == "c" and list(measure.qubits) == expected


def test_loose_bits_and_overlapping_registers():
    """Qiskit declares loose qubits one by one and registers over them as aliases ``let q = {_qubit0, ...};``."""
    from qiskit.circuit import Clbit, Qubit

    qubits = QuantumRegister(3, "q")
    loose = [Qubit(), Clbit(), Clbit()]
    alias = QuantumRegister(bits=[qubits[0], qubits[2]], name="al")
    bits = ClassicalRegister(2, "cr")
    circuit = QuantumCircuit(qubits, alias, [loose[0]], bits, loose[1:])
    circuit.h(alias[0])
    circuit.cx(alias[0], alias[1])
    circuit.ry(0.3, loose[0])
    circuit.measure(alias, bits)
    circuit.measure(loose[0], loose[1])
    circuit.measure(qubits[1], loose[2])
    text = qasm3.dumps(circuit, allow_aliasing=True)
    assert "let q = {" in text
    assert_same_unitary(text, circuit.remove_final_measurements(inplace=False))
    keys = {op.gate.key: op.qubits for op in parse(text).all_operations() if cirq.is_measurement(op)}
    assert keys == {"cr": (cirq.LineQubit(0), cirq.LineQubit(2)), "_bit2": (cirq.LineQubit(3),),
                    "_bit3": (cirq.LineQubit(1),)}


def test_qiskit_control_flow_is_refused_by_name():
    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    circuit.measure(0, 0)
    with circuit.if_test((circuit.clbits[0], 1)):
        circuit.x(1)
    with pytest.raises(QasmError, match="'if'"):
        parse(qasm3.dumps(circuit))
    loop = QuantumCircuit(1)
    with loop.for_loop(range(3)):
        loop.x(0)
    with pytest.raises(QasmError, match="'for'"):
        parse(qasm3.dumps(loop))
