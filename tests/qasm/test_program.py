"""Measurement keys: one per classical register, qubits in bit order; mid-circuit measurements per bit."""

from __future__ import annotations

import cirq
import pytest

from hcqw.errors import QasmError
from hcqw.qasm import parse

Q = cirq.LineQubit
QASM2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'
QASM3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'


def measurements(circuit: cirq.Circuit) -> list[tuple[str, tuple]]:
    return [(op.gate.key, op.qubits) for op in circuit.all_operations() if cirq.is_measurement(op)]


def test_a_register_measured_at_once_is_one_key():
    assert measurements(parse(QASM2 + "qreg q[3];\ncreg c[3];\nh q;\nmeasure q -> c;\n")) == [("c", (Q(0), Q(1), Q(2)))]


def test_bits_measured_in_several_statements_are_one_key_in_bit_order():
    circuit = parse(QASM3 + "qubit[3] q;\nbit[3] c;\nc[2] = measure q[0];\nh q[2];\nmeasure q[1] -> c[0];\n"
                    "c[1] = measure q[2];\n")
    assert measurements(circuit) == [("c", (Q(1), Q(2), Q(0)))]
    assert circuit.are_all_measurements_terminal()


def test_each_register_is_its_own_key_in_declaration_order():
    circuit = parse(QASM3 + "qubit[3] q;\nbit[1] b;\nbit[2] a;\nbit f;\na = measure q[1:2];\nf = measure q[0];\n")
    assert measurements(circuit) == [("a", (Q(1), Q(2))), ("f", (Q(0),))]


def test_bits_never_measured_have_no_column():
    assert measurements(parse(QASM2 + "qreg q[2];\ncreg c[4];\nmeasure q[1] -> c[3];\nmeasure q[0] -> c[1];\n")) \
        == [("c", (Q(0), Q(1)))]


@pytest.mark.parametrize("after", ["x q[0];", "reset q[0];", "measure q[0] -> c[1];", "cx q[1], q[0];"])
def test_a_register_measured_mid_circuit_is_measured_in_place_per_bit(after):
    circuit = parse(QASM2 + f"qreg q[2];\ncreg c[2];\ncreg d[1];\nmeasure q[0] -> c[0];\n{after}\n"
                    "measure q[1] -> d[0];\n")
    keys = dict(measurements(circuit))
    assert keys["c[0]"] == (Q(0),) and keys["d"] == (Q(1),)
    assert "c" not in keys


def test_a_bit_written_twice_is_refused_naming_both_lines():
    with pytest.raises(QasmError, match=r"c\[0\] is written by two measurements \(lines 5 and 6\)"):
        parse(QASM2 + "qreg q[2];\ncreg c[2];\nmeasure q[0] -> c[0];\nmeasure q[1] -> c[0];\n")


def test_no_measurement_no_key():
    assert measurements(parse(QASM3 + "qubit[2] q;\nbit[2] c;\nh q;\n")) == []
