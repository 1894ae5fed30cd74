"""What the parser reads (declarations, aliases, operands, broadcasting, comments) and what it refuses by name."""

from __future__ import annotations

import cirq
import pytest

from hcqw.errors import CircuitError, QasmError
from hcqw.qasm import parse

Q = cirq.LineQubit
QASM3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
QASM2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'


def gate_ops(circuit: cirq.Circuit) -> list[tuple[str, tuple]]:
    """The gates and their qubits, sorted (a circuit's moments do not keep the order of independent gates)."""
    return sorted(((str(op.gate), op.qubits) for op in circuit.all_operations() if not cirq.is_measurement(op)),
                  key=str)


@pytest.mark.parametrize("header", ["OPENQASM 3;", "OPENQASM 3.0;", "  // a comment\n/* block\n */ OPENQASM 3.1;"])
def test_the_header_forms(header):
    assert gate_ops(parse(header + '\ninclude "stdgates.inc";\nqubit q;\nx q;\n')) == [("X", (Q(0),))]


def test_qubits_are_numbered_in_declaration_order_over_every_declaration_form():
    circuit = parse(QASM3 + "qubit[2] a;\nqubit b;\nqreg c[2];\nqubit[0] empty;\nx a[1]; x b; x c[0]; x c[-1];\n")
    assert gate_ops(circuit) == [("X", (Q(i),)) for i in (1, 2, 3, 4)]


def test_registers_broadcast_and_single_qubits_repeat():
    circuit = parse(QASM2 + "qreg a[3];\nqreg b[3];\nqreg c[1];\ncx a, b;\ncx c[0], b;\nh a;\n")
    assert gate_ops(circuit) == sorted(
        [("CNOT", (Q(i), Q(3 + i))) for i in range(3)] + [("CNOT", (Q(6), Q(3 + i))) for i in range(3)]
        + [("H", (Q(i),)) for i in range(3)], key=str)


def test_zero_length_registers_are_declared_and_broadcast_over_nothing():
    circuit = parse(QASM3 + "qubit[2] q;\nqubit[0] e;\nbit[0] none;\nbit[2] c;\nh e;\nbarrier e;\n"
                    "measure e -> none;\nh q[0];\nc = measure q;\n")
    assert gate_ops(circuit) == [("H", (Q(0),))]
    assert [(op.gate.key, op.qubits) for op in circuit.all_operations() if cirq.is_measurement(op)] == \
        [("c", (Q(0), Q(1)))]


def test_aliases_slices_and_concatenation():
    circuit = parse(QASM3 + "qubit[6] q;\nlet a = q[0:2];\nlet b = q[1] ++ q[3];\nlet c = q[0:2:5] ++ q[{5, 1}];\n"
                    "let d = a[1:];\nx a;\nz b;\ny c;\nh d;\nh q[4:-1:3];\n")
    assert gate_ops(circuit) == sorted([("X", (Q(i),)) for i in (0, 1, 2)] + [("Z", (Q(i),)) for i in (1, 3)]
                                       + [("Y", (Q(i),)) for i in (0, 2, 4, 5, 1)]
                                       + [("H", (Q(i),)) for i in (1, 2, 4, 3)], key=str)
    assert "names a qubit twice" in str(error(QASM3 + "qubit[2] q;\nlet a = q ++ q[0];\n"))


def test_physical_qubits():
    assert gate_ops(parse(QASM3 + "cx $3, $0;\n")) == [("CNOT", (Q(3), Q(0)))]


def test_comments_pragmas_annotations_and_barriers_are_dropped():
    circuit = parse(QASM3 + "#pragma something\npragma other\nqubit[2] q; // trailing\n/* a\nblock */\n"
                    "@annotation with words\nh q[0];\nbarrier;\nbarrier q;\nbarrier q[0], q[1];\n"
                    "gate g a, b { barrier a, b; x a; }\ng q[0], q[1];\n")
    assert gate_ops(circuit) == [("H", (Q(0),)), ("X", (Q(0),))]


def test_user_gates_may_use_names_the_include_does_not_define():
    """Qiskit defines rzx, ecr, sxdg... in the program; the include's own names may not be redefined."""
    circuit = parse(QASM3 + "gate sxdg a { s a; h a; s a; }\nqubit q;\nsxdg q;\n")
    cirq.testing.assert_allclose_up_to_global_phase(cirq.unitary(circuit), cirq.unitary(cirq.X**-0.5), atol=1e-9)
    with pytest.raises(QasmError, match="'h' is already defined"):
        parse(QASM3 + "gate h a { x a; }\n")


def error(text: str) -> QasmError:
    with pytest.raises(QasmError) as caught:
        parse(text)
    assert isinstance(caught.value, CircuitError)
    return caught.value


REFUSALS = [
    ("if (c[0]) x q[0];", "if"), ("if (c == 1) { x q[0]; } else { h q[0]; }", "if"),
    ("for int i in [0:2] { x q[0]; }", "for"), ("while (true) { x q[0]; }", "while"),
    ("switch (i) { case 0 { x q[0]; } }", "switch"), ("def f(qubit a) { x a; }", "def"),
    ("box { x q[0]; }", "box"), ("delay[100ns] q[0];", "delay"), ("extern f(float) -> float;", "extern"),
    ('defcalgrammar "openpulse";', "defcalgrammar"), ("cal { }", "cal"), ("defcal x $0 { }", "defcal"),
    ("output bit o;", "output"), ("int[32] i = 0;", "int"), ("float x = 1.0;", "float"), ("duration d = 10ns;", "duration"),
    ("c[0] = 1;", "classical assignment"), ("c = c + 1;", "classical assignment"), ("bit b = 1;", "classical assignment"),
    ("measure q[0];", "without a target"), ("end;", "end"),
]


@pytest.mark.parametrize("statement,name", REFUSALS)
def test_control_flow_and_classical_code_are_refused_by_name_and_line(statement, name):
    err = error(QASM3 + "qubit[2] q;\nbit[2] c;\n\n" + statement + "\n")
    assert err.line == 6 and "line 6" in str(err)
    assert name in str(err)


def test_qasm2_if_is_refused_by_name():
    err = error(QASM2 + "qreg q[1];\ncreg c[1];\nif(c==1) x q[0];\n")
    assert err.line == 5 and "'if'" in str(err) and "control flow" in str(err)


def test_a_control_flow_statement_inside_a_gate_body_is_refused():
    err = error(QASM3 + "qubit q;\ngate g a {\n  if (true) { x a; }\n}\n")
    assert err.line == 5 and "if" in str(err)


@pytest.mark.parametrize("text,words", [
    ("qubit q;\nfoo q;", "unknown gate 'foo'"),
    ("qubit q;\nx r;", "'r' is not a declared qubit"),
    ("qubit[2] q;\nx q[2];", "out of range"),
    ("qubit[2] q;\nqubit[3] r;\ncx q, r;", "different sizes"),
    ("qubit[2] q;\ncx q[0], q[0];", "same qubit twice"),
    ("qubit q;\nrx(1, 2) q;", "takes 1 parameters"),
    ("qubit q;\nrx(1/0) q;", "division by zero"),
    ("qubit q;\nrx(1e999) q;", "not finite"),
    ("qubit q;\nrx(sqrt(-1)) q;", "sqrt"),
    ("input float a;\nqubit q;\nrx(sin(a)) q;", "sin() of a parameter"),
    ("input float a;\nqubit q;\nrx(2**a) q;", "parameter in an exponent"),
    ("input float a;\nqubit q;\nrx(a**17) q;", "integer exponents up to 16"),
    ("qubit q;\npow(0.5) @ U(1, 2, 3) q;", "non-integer power"),
    ("input float a;\nqubit q;\npow(a) @ x q;", "bind k to a number"),
    ("qubit q;\nctrl @ x q;", "takes 0 parameters and 1 qubits, got 0 and 0"),
    ('include "mylib.inc";', 'only "qelib1.inc" and "stdgates.inc"'),
    ("qubit q;\nqubit q;", "already declared"),
    ("qubit q;\nh q", "(or ';')"),
    ("qubit q;\n/* never closed", "never closed"),
    ("opaque g a;\nqubit q;\ng q;", "opaque gate 'g'"),
    ("qubit[2] q;\nbit[1] c;\nmeasure q -> c;", "measure of 2 qubits into 1 bits"),
    ("qubit q;\ngate g a { h a[0]; }", "indexing a qubit argument"),
    ("qubit q;\ngate g a { h b; }", "'b' is not a qubit argument"),
    ("qubit q;\ngate g a { nope a; }", "unknown gate 'nope'"),
    ("qubit q;\ngate g a, b { ctrl @ x a, a; }", "same qubit twice"),
])
def test_mistakes_are_named(text, words):
    assert words in str(error(QASM3 + text + "\n"))


def test_a_qasm3_gate_without_its_include_says_which_include():
    assert 'include "stdgates.inc"' in str(error("OPENQASM 3.0;\nqubit q;\nh q;\n"))
    assert 'include "qelib1.inc"' in str(error("OPENQASM 2.0;\nqreg q[3];\nrccx q[0], q[1], q[2];\n"))


@pytest.mark.parametrize("text", ["", "qubit q;", "OPENQASM 4.0;", "OPENQASM 2.1;", "{}"])
def test_text_without_a_valid_header_is_refused(text):
    assert "OPENQASM" in str(error(text))
