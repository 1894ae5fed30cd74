"""Every standard gate of qelib1.inc and stdgates.inc against its matrix, written here from the OpenQASM
specification's (and Qiskit's) formulas in numpy -- independent of the parser and of Cirq's gates."""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy

from hcqw.qasm import parse
from hcqw.qasm.gates import QELIB1, STDGATES
from tests.support.wire_types import wire_type_faults

I2 = np.eye(2)
X = np.array([[0, 1], [1, 0]], complex)
Y = np.array([[0, -1j], [1j, 0]])
Z = np.diag([1, -1]).astype(complex)
H = np.array([[1, 1], [1, -1]]) / np.sqrt(2)
SX = np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]) / 2
SWAP = np.eye(4)[[0, 2, 1, 3]]


def U(theta, phi, lam):
    c, s = np.cos(theta / 2), np.sin(theta / 2)
    return np.array([[c, -np.exp(1j * lam) * s], [np.exp(1j * phi) * s, np.exp(1j * (phi + lam)) * c]])


def P(lam):
    return np.diag([1, np.exp(1j * lam)])


def rotation(pauli, theta):
    """exp(-iθ P/2) for a Pauli (product) P."""
    return np.cos(theta / 2) * np.eye(len(pauli)) - 1j * np.sin(theta / 2) * pauli


def controlled(matrix, controls=1):
    """|1..1><1..1| ⊗ matrix + the rest ⊗ I, the controls being the first qubits (OpenQASM's order)."""
    size = 2**controls * len(matrix)
    out = np.eye(size, dtype=complex)
    out[size - len(matrix):, size - len(matrix):] = matrix
    return out


def on(n, matrix, qubits):
    """``matrix`` acting on ``qubits`` of n (qubit 0 most significant, as Cirq orders LineQubits)."""
    order = list(qubits) + [q for q in range(n) if q not in qubits]
    full = np.kron(matrix, np.eye(2 ** (n - len(qubits)))).reshape((2,) * 2 * n)
    axes = [order.index(q) for q in range(n)]
    return full.transpose(axes + [n + a for a in axes]).reshape(2**n, 2**n)


def body(n, steps):
    """The product of ``(matrix, qubits)`` steps applied in order."""
    total = np.eye(2**n, dtype=complex)
    for matrix, qubits in steps:
        total = on(n, matrix, qubits) @ total
    return total


def rccx():
    u2 = U(np.pi / 2, 0, np.pi)
    CX = controlled(X)
    t = np.pi / 4
    return body(3, [(u2, [2]), (P(t), [2]), (CX, [1, 2]), (P(-t), [2]), (CX, [0, 2]), (P(t), [2]), (CX, [1, 2]),
                    (P(-t), [2]), (u2, [2])])


def rc3x():
    u2 = U(np.pi / 2, 0, np.pi)
    CX = controlled(X)
    t = np.pi / 4
    return body(4, [(u2, [3]), (P(t), [3]), (CX, [2, 3]), (P(-t), [3]), (u2, [3]), (CX, [0, 3]), (P(t), [3]),
                    (CX, [1, 3]), (P(-t), [3]), (CX, [0, 3]), (P(t), [3]), (CX, [1, 3]), (P(-t), [3]), (u2, [3]),
                    (P(t), [3]), (CX, [2, 3]), (P(-t), [3]), (u2, [3])])


A, B, C, D = 0.3, -1.1, 2.5, 0.7  # parameter values used for every gate
MATRICES = {
    "U": lambda: U(A, B, C), "u3": lambda: U(A, B, C), "u": lambda: U(A, B, C), "u2": lambda: U(np.pi / 2, A, B),
    "u1": lambda: P(A), "p": lambda: P(A), "phase": lambda: P(A), "u0": lambda: I2, "id": lambda: I2,
    "x": lambda: X, "y": lambda: Y, "z": lambda: Z, "h": lambda: H,
    "s": lambda: P(np.pi / 2), "sdg": lambda: P(-np.pi / 2), "t": lambda: P(np.pi / 4), "tdg": lambda: P(-np.pi / 4),
    "sx": lambda: SX, "sxdg": lambda: SX.conj().T,
    "rx": lambda: rotation(X, A), "ry": lambda: rotation(Y, A), "rz": lambda: rotation(Z, A),
    "cx": lambda: controlled(X), "CX": lambda: controlled(X), "cy": lambda: controlled(Y), "cz": lambda: controlled(Z),
    "ch": lambda: controlled(H), "csx": lambda: controlled(SX), "swap": lambda: SWAP,
    "ccx": lambda: controlled(X, 2), "cswap": lambda: controlled(SWAP),
    "crx": lambda: controlled(rotation(X, A)), "cry": lambda: controlled(rotation(Y, A)),
    "crz": lambda: controlled(rotation(Z, A)),
    "cp": lambda: controlled(P(A)), "cu1": lambda: controlled(P(A)), "cphase": lambda: controlled(P(A)),
    "cu3": lambda: controlled(U(A, B, C)),
    "cu": lambda: controlled(np.exp(1j * D) * U(A, B, C)),
    "rxx": lambda: rotation(np.kron(X, X), A), "rzz": lambda: rotation(np.kron(Z, Z), A),
    "c3x": lambda: controlled(X, 3), "c3sqrtx": lambda: controlled(SX, 3), "c4x": lambda: controlled(X, 4),
    "rccx": rccx, "rc3x": rc3x,
}
PARAMETERS = {"U": 3, "u3": 3, "u": 3, "u2": 2, "u1": 1, "p": 1, "phase": 1, "u0": 1, "rx": 1, "ry": 1, "rz": 1,
              "crx": 1, "cry": 1, "crz": 1, "cp": 1, "cu1": 1, "cphase": 1, "cu3": 3, "cu": 4, "rxx": 1, "rzz": 1}
HEADERS = {
    2: 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[{n}];\n',
    3: 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[{n}] q;\n',
}
CASES = [(2, name) for name in sorted(QELIB1 | {"U", "CX", "rccx", "rc3x"})] + \
        [(3, name) for name in sorted(STDGATES | {"U"})]


def unitary(text: str, n: int) -> np.ndarray:
    circuit = parse(text)
    assert wire_type_faults(circuit) == []
    return circuit.unitary(qubit_order=cirq.LineQubit.range(n))


def call(name: str, operands: str) -> str:
    params = ", ".join(map(str, (A, B, C, D)[:PARAMETERS.get(name, 0)]))
    return f"{name}({params}) {operands};\n" if params else f"{name} {operands};\n"


def test_the_numpy_helpers_agree_with_known_identities():
    np.testing.assert_allclose(on(2, X, [0]), np.kron(X, I2))
    np.testing.assert_allclose(on(2, X, [1]), np.kron(I2, X))
    np.testing.assert_allclose(on(3, controlled(X), [2, 0]),
                               body(3, [(H, [0]), (H, [2]), (controlled(X), [0, 2]), (H, [0]), (H, [2])]), atol=1e-12)
    np.testing.assert_allclose(controlled(X, 2)[6:, 6:], X)
    np.testing.assert_allclose(rccx() @ rccx().conj().T, np.eye(8), atol=1e-12)


@pytest.mark.parametrize("dialect,name", CASES)
def test_each_standard_gate_is_its_matrix(dialect, name):
    matrix = MATRICES[name]()
    n = int(np.log2(len(matrix)))
    operands = ", ".join(f"q[{i}]" for i in range(n))
    got = unitary(HEADERS[dialect].format(n=n) + call(name, operands), n)
    cirq.testing.assert_allclose_up_to_global_phase(got, matrix, atol=1e-9)


@pytest.mark.parametrize("dialect,name", [(d, name) for d, name in CASES if len(MATRICES[name]()) <= 4])
def test_each_standard_gate_under_ctrl_keeps_its_phase(dialect, name):
    """ctrl @ g is exactly |0><0|⊗I + |1><1|⊗G: the gate's own phase becomes a relative phase."""
    matrix = MATRICES[name]()
    n = int(np.log2(len(matrix)))
    operands = ", ".join(f"q[{i}]" for i in range(n + 1))
    got = unitary(HEADERS[dialect].format(n=n + 1) + "ctrl @ " + call(name, operands), n + 1)
    cirq.testing.assert_allclose_up_to_global_phase(got, controlled(matrix), atol=1e-9)


@pytest.mark.parametrize("dialect,name", [(d, name) for d, name in CASES if len(MATRICES[name]()) <= 8])
def test_inv_is_the_adjoint_and_pow_the_power(dialect, name):
    matrix = MATRICES[name]()
    n = int(np.log2(len(matrix)))
    operands = ", ".join(f"q[{i}]" for i in range(n))
    got = unitary(HEADERS[dialect].format(n=n) + "inv @ " + call(name, operands), n)
    cirq.testing.assert_allclose_up_to_global_phase(got, matrix.conj().T, atol=1e-9)
    got = unitary(HEADERS[dialect].format(n=n) + "pow(3) @ " + call(name, operands), n)
    cirq.testing.assert_allclose_up_to_global_phase(got, np.linalg.matrix_power(matrix, 3), atol=1e-9)
    got = unitary(HEADERS[dialect].format(n=n) + "pow(-2) @ " + call(name, operands), n)
    cirq.testing.assert_allclose_up_to_global_phase(got, np.linalg.matrix_power(matrix.conj().T, 2), atol=1e-9)


@pytest.mark.parametrize("text,matrix", [
    ("pow(0.5) @ x q[0];", SX),
    ("pow(1/2) @ s q[0];", P(np.pi / 4)),
    ("pow(0.25) @ z q[0];", P(np.pi / 4)),
    ("inv @ pow(0.5) @ x q[0];", SX.conj().T),
])
def test_fractional_powers_are_principal_roots(text, matrix):
    cirq.testing.assert_allclose_up_to_global_phase(unitary(HEADERS[3].format(n=1) + text, 1), matrix, atol=1e-9)


@pytest.mark.parametrize("text,matrix", [
    ("negctrl @ x q[0], q[1];", np.kron(np.diag([1, 0]), X) + np.kron(np.diag([0, 1]), I2)),
    ("ctrl(2) @ x q[0], q[1], q[2];", controlled(X, 2)),
    ("ctrl @ ctrl @ x q[0], q[1], q[2];", controlled(X, 2)),
    ("ctrl @ gphase(0.7) q[0];", P(0.7)),
    ("negctrl @ gphase(0.7) q[0];", np.diag([np.exp(0.7j), 1])),
    ("ctrl @ negctrl @ gphase(0.7) q[0], q[1];", np.diag([1, 1, np.exp(0.7j), 1])),
    ("negctrl @ ctrl @ rz(0.4) q[0], q[1], q[2];",
     np.kron(np.diag([1, 0]), controlled(rotation(Z, 0.4))) + np.kron(np.diag([0, 1]), np.eye(4))),
])
def test_control_modifiers(text, matrix):
    n = int(np.log2(len(matrix)))
    cirq.testing.assert_allclose_up_to_global_phase(unitary(HEADERS[3].format(n=n) + text, n), matrix, atol=1e-9)


def test_a_symbolic_parameter_resolves_to_the_same_matrix():
    circuit = parse('OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float[64] _θ_0_;\ninput angle φ;\nqubit[2] q;\n'
                    "cu(_θ_0_ * 2 - φ, -φ / 2, π - _θ_0_, 2 * φ) q[0], q[1];\n"
                    "ctrl @ u3(_θ_0_, φ, 1e-1) q[1], q[0];\n")
    assert wire_type_faults(circuit) == []
    assert {s.name for s in cirq.parameter_symbols(circuit)} == {"_θ_0_", "φ"}
    t, f = 0.4, -0.9
    got = cirq.resolve_parameters(circuit, {"_θ_0_": t, "φ": f}).unitary(qubit_order=cirq.LineQubit.range(2))
    expected = on(2, controlled(U(t, f, 0.1)), [1, 0]) @ controlled(np.exp(2j * f) * U(2 * t - f, -f / 2, np.pi - t))
    cirq.testing.assert_allclose_up_to_global_phase(got, expected, atol=1e-9)


def test_gate_definitions_expand_with_their_parameters():
    text = HEADERS[3].format(n=3) + """
gate inner(a) x { rx(a) x; }
gate outer(a, b) x, y { inner(a * 2) x; ctrl @ inner(b) x, y; gphase(b); }
outer(0.25, -0.5) q[2], q[0];
inv @ outer(0.1, 0.2) q[0], q[1];
"""
    got = unitary(text, 3)
    first = on(3, rotation(X, 0.5), [2]) @ np.eye(8)
    first = on(3, controlled(rotation(X, -0.5)), [2, 0]) @ first
    second = on(3, controlled(rotation(X, 0.2)), [0, 1]) @ on(3, rotation(X, 0.2), [0])
    cirq.testing.assert_allclose_up_to_global_phase(got, second.conj().T @ first, atol=1e-9)
    controlled_outer = unitary(HEADERS[3].format(n=3) + "gate g(b) x { gphase(b); }\nctrl @ g(0.3) q[0], q[1];\n", 3)
    cirq.testing.assert_allclose_up_to_global_phase(controlled_outer, on(3, P(0.3), [0]), atol=1e-9)


def test_a_symbolic_parameter_is_only_built_from_what_the_wire_carries():
    circuit = parse(HEADERS[3].format(n=1) + "input float a;\nrx(a * a / (a + 1) - 2 ** 3 * a) q[0];\np(-a / 3) q[0];\n")
    assert wire_type_faults(circuit) == []
    assert isinstance(next(circuit.all_operations()).gate.exponent, sympy.Expr)


@pytest.mark.parametrize("dialect", [2, 3])
def test_qsim_runs_every_gate_as_cirq_does(dialect):
    """The simulator behind the embedded default takes every gate the parser emits (controlled, negated
    controls, shifted XX/ZZ powers): its final state equals Cirq's."""
    import qsimcirq

    rng = np.random.default_rng(dialect)

    def qubits(count: int) -> str:
        return ", ".join(f"q[{i}]" for i in rng.permutation(6)[:count])

    lines = [HEADERS[dialect].format(n=6), "h q;\n"]
    for name in (name for d, name in CASES if d == dialect):
        width = int(np.log2(len(MATRICES[name]())))
        lines.append(call(name, qubits(width)))
    if dialect == 3:
        lines += [f"negctrl @ ctrl @ rz({A}) {qubits(3)};\n", f"ctrl(2) @ cu({A}, {B}, {C}, {D}) {qubits(4)};\n",
                  f"negctrl @ gphase({A}) {qubits(1)};\n", f"pow(0.5) @ cx {qubits(2)};\n"]
    circuit = parse("".join(lines))
    order = cirq.LineQubit.range(6)
    expected = cirq.Simulator(dtype=np.complex128).simulate(circuit, qubit_order=order).final_state_vector
    got = qsimcirq.QSimSimulator().simulate(circuit, qubit_order=order).final_state_vector
    cirq.testing.assert_allclose_up_to_global_phase(got, expected, atol=1e-5)
