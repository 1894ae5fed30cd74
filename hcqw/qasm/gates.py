"""The standard gates of qelib1.inc and stdgates.inc as exact Cirq gates, and the gate modifiers.

A gate application expands to ``(operations, phase)``: Cirq operations whose product is the gate's
matrix as the OpenQASM specification (and Qiskit) defines it, times ``exp(i*phase)``. Keeping the
phase exact is what makes ``ctrl @`` right for every gate: under a control the phase becomes a phase
gate on the control. At the top level it is a global phase and is dropped, so it is computed only
where a control needs it (``NATIVE``'s phase functions; sympy arithmetic is the slow part of a parse).

Only the gate types the wire decoder accepts are emitted (Rx/Ry/Rz, X/Y/Z/H/CZ/CX/Swap/XX/ZZ powers,
CCX, CSWAP, IdentityGate and ControlledGate of those). Angles become exponents through ``turns``,
a float factor 1/π, so no ``sympy.pi`` power reaches the wire.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import cirq
import sympy

from hcqw.qasm.expr import Value

Expansion = tuple[list[cirq.Operation], Value]
# name -> (number of parameters, number of qubits, operations of (parameters, qubits), phase of parameters or None)
Native = tuple[int, int, Callable[[Sequence[Value], Sequence[cirq.Qid]], list[cirq.Operation]],
               Callable[[Sequence[Value]], Value] | None]

_INVERSE_PI = 1 / math.pi
# cirq.X/Y/Z are Pauli subclasses that encode as "_PauliX" pauli-string operations: the plain powers are on the wire's list
X, Y, Z = cirq.XPowGate(), cirq.YPowGate(), cirq.ZPowGate()


def turns(angle: Value) -> Value:
    """An angle in radians as a Cirq exponent (half-turns)."""
    return angle * _INVERSE_PI if isinstance(angle, sympy.Basic) else angle / math.pi


def is_zero(value: Value) -> bool:
    return not isinstance(value, sympy.Basic) and value == 0


def _fixed(gate: cirq.Gate) -> Callable:
    return lambda params, qubits: [gate.on(*qubits)]


def _rotation(make: Callable[[Value], cirq.Gate]) -> Callable:
    return lambda params, qubits: [make(params[0]).on(*qubits)]


def _u(params: Sequence[Value], qubits: Sequence[cirq.Qid]) -> list[cirq.Operation]:
    """U(θ, φ, λ) = exp(i(φ+λ)/2) Rz(φ) Ry(θ) Rz(λ); the phase is ``_u_phase``."""
    theta, phi, lam = params
    ops = [cirq.rz(lam).on(*qubits), cirq.ry(theta).on(*qubits), cirq.rz(phi).on(*qubits)]
    return [op for op, angle in zip(ops, (lam, theta, phi)) if not is_zero(angle)]


def _u_phase(params: Sequence[Value]) -> Value:
    return (params[1] + params[2]) / 2


def _u2(params: Sequence[Value], qubits: Sequence[cirq.Qid]) -> list[cirq.Operation]:
    return _u((math.pi / 2, params[0], params[1]), qubits)


def _u2_phase(params: Sequence[Value]) -> Value:
    return (params[0] + params[1]) / 2


def _identity(params: Sequence[Value], qubits: Sequence[cirq.Qid]) -> list[cirq.Operation]:
    return [cirq.I.on(*qubits)]


def _phase_gate(params: Sequence[Value], qubits: Sequence[cirq.Qid]) -> list[cirq.Operation]:
    return [cirq.ZPowGate(exponent=turns(params[0])).on(*qubits)]


def _cu3(params: Sequence[Value], qubits: Sequence[cirq.Qid]) -> list[cirq.Operation]:
    return control(_u(params, qubits[1:]), _u_phase(params), qubits[:1], (1,))


def _cu(params: Sequence[Value], qubits: Sequence[cirq.Qid]) -> list[cirq.Operation]:
    """cu(θ, φ, λ, γ): p(γ) on the control, then controlled U(θ, φ, λ) (Qiskit's CUGate)."""
    return control(_u(params[:3], qubits[1:]), _u_phase(params) + params[3], qubits[:1], (1,))


def _controlled(gate_of: Callable[[Sequence[Value]], cirq.Gate], controls: int) -> Callable:
    return lambda params, qubits: [controlled_gate(gate_of(params), controls, [1] * controls).on(*qubits)]


def _two_qubit_rotation(gate_type: type) -> Callable:
    """rxx/rzz(θ) = exp(-iθ P⊗P/2)."""
    return lambda params, qubits: [gate_type(exponent=turns(params[0]), global_shift=-0.5).on(*qubits)]


_NATIVE = {
    "U": (3, 1, _u, _u_phase), "u3": (3, 1, _u, _u_phase), "u": (3, 1, _u, _u_phase), "u2": (2, 1, _u2, _u2_phase),
    "u1": (1, 1, _phase_gate), "p": (1, 1, _phase_gate), "phase": (1, 1, _phase_gate),
    "id": (0, 1, _identity), "u0": (1, 1, _identity),
    "x": (0, 1, _fixed(X)), "y": (0, 1, _fixed(Y)), "z": (0, 1, _fixed(Z)), "h": (0, 1, _fixed(cirq.H)),
    "s": (0, 1, _fixed(Z**0.5)), "sdg": (0, 1, _fixed(Z**-0.5)),
    "t": (0, 1, _fixed(Z**0.25)), "tdg": (0, 1, _fixed(Z**-0.25)),
    "sx": (0, 1, _fixed(X**0.5)), "sxdg": (0, 1, _fixed(X**-0.5)),
    "rx": (1, 1, _rotation(cirq.rx)), "ry": (1, 1, _rotation(cirq.ry)), "rz": (1, 1, _rotation(cirq.rz)),
    "cx": (0, 2, _fixed(cirq.CNOT)), "CX": (0, 2, _fixed(cirq.CNOT)), "cy": (0, 2, _fixed(cirq.ControlledGate(Y))),
    "cz": (0, 2, _fixed(cirq.CZ)), "ch": (0, 2, _fixed(cirq.ControlledGate(cirq.H))), "csx": (0, 2, _fixed(cirq.CNOT**0.5)),
    "swap": (0, 2, _fixed(cirq.SWAP)), "ccx": (0, 3, _fixed(cirq.CCX)), "cswap": (0, 3, _fixed(cirq.CSWAP)),
    "crx": (1, 2, _controlled(lambda p: cirq.rx(p[0]), 1)), "cry": (1, 2, _controlled(lambda p: cirq.ry(p[0]), 1)),
    "crz": (1, 2, _controlled(lambda p: cirq.rz(p[0]), 1)),
    "cp": (1, 2, _rotation(lambda a: cirq.CZPowGate(exponent=turns(a)))),
    "cu1": (1, 2, _rotation(lambda a: cirq.CZPowGate(exponent=turns(a)))),
    "cphase": (1, 2, _rotation(lambda a: cirq.CZPowGate(exponent=turns(a)))),
    "cu3": (3, 2, _cu3), "cu": (4, 2, _cu),
    "rxx": (1, 2, _two_qubit_rotation(cirq.XXPowGate)), "rzz": (1, 2, _two_qubit_rotation(cirq.ZZPowGate)),
    "c3x": (0, 4, _fixed(cirq.ControlledGate(X, 3))), "c3sqrtx": (0, 4, _fixed(cirq.ControlledGate(X**0.5, 3))),
    "c4x": (0, 5, _fixed(cirq.ControlledGate(X, 4))),
}
NATIVE: dict[str, Native] = {name: entry if len(entry) == 4 else (*entry, None) for name, entry in _NATIVE.items()}

# Qiskit's qelib1.inc, whose relative-phase Toffolis are defined by their bodies
QELIB1 = frozenset({
    "u3", "u2", "u1", "cx", "id", "u0", "u", "p", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "rx", "ry", "rz",
    "sx", "sxdg", "cz", "cy", "swap", "ch", "ccx", "cswap", "crx", "cry", "crz", "cu1", "cp", "cu3", "csx", "cu",
    "rxx", "rzz", "c3x", "c3sqrtx", "c4x",
})
QELIB1_DEFINED = """
gate rccx a,b,c { u2(0,pi) c; u1(pi/4) c; cx b, c; u1(-pi/4) c; cx a, c; u1(pi/4) c; cx b, c; u1(-pi/4) c; u2(0,pi) c; }
gate rc3x a,b,c,d { u2(0,pi) d; u1(pi/4) d; cx c,d; u1(-pi/4) d; u2(0,pi) d; cx a,d; u1(pi/4) d; cx b,d;
  u1(-pi/4) d; cx a,d; u1(pi/4) d; cx b,d; u1(-pi/4) d; u2(0,pi) d; u1(pi/4) d; cx c,d; u1(-pi/4) d; u2(0,pi) d; }
"""
STDGATES = frozenset({
    "p", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "rx", "ry", "rz", "cx", "cy", "cz", "cp", "crx", "cry",
    "crz", "ch", "swap", "ccx", "cswap", "cu", "CX", "phase", "cphase", "id", "u1", "u2", "u3",
})
LIBRARIES = {"qelib1.inc": (QELIB1, QELIB1_DEFINED), "stdgates.inc": (STDGATES, "")}


# what Cirq's gate.controlled() may make of a gate that is on the wire's list (it also makes CYPowGate, which is not)
_SPECIALISED = (cirq.CXPowGate, cirq.CZPowGate, cirq.CCXPowGate, cirq.CCZPowGate, cirq.ControlledGate)


def controlled_gate(gate: cirq.Gate, count: int, values: list[int]) -> cirq.Gate:
    made = gate.controlled(count, values)
    return made if type(made) in _SPECIALISED else cirq.ControlledGate(gate, count, values)


def control(ops: list[cirq.Operation], phase: Value, controls: Sequence[cirq.Qid],
            values: Sequence[int]) -> list[cirq.Operation]:
    """The operations, each under the controls; the phase becomes a phase gate on the controls."""
    values = list(values)
    out = [controlled_gate(op.gate, len(controls), values).on(*controls, *op.qubits)
           for op in ops if not isinstance(op.gate, cirq.IdentityGate)]
    if not is_zero(phase):
        *rest, last = controls
        gate = cirq.ZPowGate(exponent=turns(phase))
        on_last = (controlled_gate(gate, len(rest), values[:-1]) if rest else gate).on(*rest, last)
        out += [X.on(last), on_last, X.on(last)] if values[-1] == 0 else [on_last]
    return out


def inverse(ops: list[cirq.Operation], phase: Value) -> Expansion:
    return [(op.gate**-1).on(*op.qubits) for op in reversed(ops)], -phase


def fractional_power(ops: list[cirq.Operation], phase: Value, exponent: float) -> Expansion | None:
    """``pow(k) @`` for a non-integer k, where the gate is one Cirq gate (its principal power); else None."""
    if len(ops) > 1:
        return None
    if not ops:
        return [], phase * exponent
    powered = cirq.pow(ops[0].gate, exponent, None)
    return None if powered is None else ([powered.on(*ops[0].qubits)], phase * exponent)
