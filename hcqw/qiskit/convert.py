"""Qiskit ``QuantumCircuit`` -> ``cirq.Circuit``, gate by gate, on the client.

The circuit is first translated (``qiskit.transpile(..., optimization_level=0)``) to ``BASIS``, a
fixed set of Qiskit gates each of which has an exact Cirq counterpart (same unitary, same global
phase), so every emitted operation is one of the Cirq types a QPU service's decoder accepts
(``MeasurementGate``, ``ResetChannel``, ``XPowGate``, ``Rx``, ``CZPowGate``, ...). A circuit already
in the basis is not transpiled at all. Barriers and delays are dropped; the circuit's global phase
is dropped (sampling cannot see it). Control flow (``if_test``, ``for_loop``, ...) is refused.

Qubit ``i`` of the Qiskit circuit becomes ``cirq.LineQubit(i)``. Each ``measure`` becomes a
one-qubit measurement with its own key; ``ConvertedCircuit.registers`` says, for each classical
register's bits, which key holds the bit's final value (the last measurement into it), so samples
map back to Qiskit's registers -- also registers that alias the same bits.

Parameters: a ``Parameter`` becomes ``sympy.Symbol`` of the same name (any Unicode; a
``ParameterVector`` element is ``v[0]``); a ``ParameterExpression`` becomes sympy arithmetic of
``+``, ``*`` and ``**`` with a numeric exponent. Functions (``sin``, ``exp``, ...) are refused with
an error naming them: the wire carries no functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cirq
import numpy as np
import sympy
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ControlFlowOp, Parameter, ParameterExpression, library as lib
from qiskit.exceptions import QiskitError

from hcqw.errors import CircuitError

MAX_EXPONENT = 16  # |n| of symbol**n the wire decoder accepts


class UnsupportedCircuit(CircuitError, QiskitError):
    """A Qiskit circuit hcqw cannot convert (control flow, functions of parameters, ...)."""

    def __init__(self, message: str):
        CircuitError.__init__(self, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


Angle = float | sympy.Expr


def _one(gate: cirq.Gate) -> Callable:
    return lambda params, qubits: gate.on(*qubits)


def _angle_over_pi(angle: Angle) -> Angle:
    # A float factor, not ``/ sympy.pi``: Pow(pi, -1) has no symbol in its base, which the wire refuses.
    return angle * (1.0 / np.pi)


def _pow_gate(cls: type, global_shift: float = 0.0) -> Callable:
    """A Qiskit gate exp(-i theta P / 2) (or a phase gate with shift 0) as Cirq's ``cls`` of exponent theta/pi."""
    return lambda params, qubits: cls(exponent=_angle_over_pi(params[0]), global_shift=global_shift).on(*qubits)


# Qiskit gate name -> (its class, how to build the exact Cirq operation from (params, qubits)).
GATES: dict[str, tuple[type, Callable]] = {
    "id": (lib.IGate, _one(cirq.IdentityGate(1))),
    "x": (lib.XGate, _one(cirq.X)),
    "y": (lib.YGate, _one(cirq.Y)),
    "z": (lib.ZGate, _one(cirq.Z)),
    "h": (lib.HGate, _one(cirq.H)),
    "s": (lib.SGate, _one(cirq.S)),
    "sdg": (lib.SdgGate, _one(cirq.ZPowGate(exponent=-0.5))),
    "t": (lib.TGate, _one(cirq.T)),
    "tdg": (lib.TdgGate, _one(cirq.ZPowGate(exponent=-0.25))),
    "sx": (lib.SXGate, _one(cirq.XPowGate(exponent=0.5))),
    "sxdg": (lib.SXdgGate, _one(cirq.XPowGate(exponent=-0.5))),
    "rx": (lib.RXGate, lambda params, qubits: cirq.rx(params[0]).on(*qubits)),
    "ry": (lib.RYGate, lambda params, qubits: cirq.ry(params[0]).on(*qubits)),
    "rz": (lib.RZGate, lambda params, qubits: cirq.rz(params[0]).on(*qubits)),
    "p": (lib.PhaseGate, _pow_gate(cirq.ZPowGate)),
    "cx": (lib.CXGate, _one(cirq.CNOT)),
    "cz": (lib.CZGate, _one(cirq.CZ)),
    "cp": (lib.CPhaseGate, _pow_gate(cirq.CZPowGate)),
    "swap": (lib.SwapGate, _one(cirq.SWAP)),
    "iswap": (lib.iSwapGate, _one(cirq.ISWAP)),
    "rxx": (lib.RXXGate, _pow_gate(cirq.XXPowGate, -0.5)),
    "ryy": (lib.RYYGate, _pow_gate(cirq.YYPowGate, -0.5)),
    "rzz": (lib.RZZGate, _pow_gate(cirq.ZZPowGate, -0.5)),
    "ccx": (lib.CCXGate, _one(cirq.CCX)),
    "ccz": (lib.CCZGate, _one(cirq.CCZ)),
    "cswap": (lib.CSwapGate, _one(cirq.CSWAP)),
}
_DROPPED = ("barrier", "delay")
# The fixed basis circuits are translated to: the gates above, plus the non-unitary instructions.
BASIS: tuple[str, ...] = (*GATES, "measure", "reset", *_DROPPED)


Bit = tuple[str, int] | None  # (measurement key, column) holding a classical bit's final value; None: never measured


@dataclass(frozen=True)
class ConvertedCircuit:
    """A circuit as Cirq, with what maps results and parameters back."""

    circuit: cirq.Circuit
    registers: dict[str, tuple[Bit, ...]]  # classical register name -> where each of its bits comes from
    parameters: tuple[str, ...]  # symbol names, in the Qiskit circuit's parameter order

    @classmethod
    def from_cirq(cls, circuit: cirq.Circuit, parameters: tuple[str, ...] | None = None) -> "ConvertedCircuit":
        """A Cirq circuit (from OpenQASM text, say): each measurement key is a register, column j its bit j."""
        widths: dict[str, int] = {}
        for op in circuit.all_operations():
            if isinstance(op.gate, cirq.MeasurementGate):
                widths[op.gate.key] = max(widths.get(op.gate.key, 0), op.gate.num_qubits())
        if parameters is None:
            parameters = tuple(sorted(s.name for s in cirq.parameter_symbols(circuit)))
        return cls(circuit, {key: tuple((key, j) for j in range(width)) for key, width in widths.items()}, parameters)

    @property
    def measures(self) -> bool:
        return any(bit is not None for bits in self.registers.values() for bit in bits)

    def registers_from_samples(self, samples: dict[str, np.ndarray], shots: int) -> dict[str, np.ndarray]:
        """Each classical register's bits, ``(shots, size)`` uint8, bit 0 first (unmeasured bits 0)."""
        out = {}
        for name, bits in self.registers.items():
            array = np.zeros((shots, len(bits)), dtype=np.uint8)
            for column, bit in enumerate(bits):
                if bit is not None:
                    array[:, column] = samples[bit[0]][:, bit[1]]
            out[name] = array
        return out


def to_cirq(circuit: QuantumCircuit) -> ConvertedCircuit:
    """Convert ``circuit`` (see the module docstring); raises ``UnsupportedCircuit`` naming what is refused."""
    if not isinstance(circuit, QuantumCircuit):
        raise UnsupportedCircuit(f"expected a qiskit QuantumCircuit, got {type(circuit).__name__}")
    for instruction in circuit.data:
        if isinstance(instruction.operation, ControlFlowOp):
            raise UnsupportedCircuit(
                f"circuit {circuit.name!r} has control flow ({instruction.operation.name}); hcqw runs circuits without "
                "classical control: unroll loops and drop conditionals before running")
    parameters = tuple(p.name for p in circuit.parameters)  # the caller's circuit's order, which its bindings follow
    if not all(_in_basis(instruction.operation) for instruction in circuit.data):
        try:  # barriers are no basis gate to the transpiler, but it keeps them
            circuit = transpile(circuit, basis_gates=[*GATES, "measure", "reset", "delay"], optimization_level=0)
        except QiskitError as err:
            raise UnsupportedCircuit(f"circuit {circuit.name!r} cannot be translated to hcqw's basis {BASIS}: {err}") from None
    symbols = _Symbols()
    qubits = cirq.LineQubit.range(circuit.num_qubits)
    clbits: list[Bit] = [None] * circuit.num_clbits
    operations = []
    measures = 0
    for instruction in circuit.data:
        operation = instruction.operation
        name = operation.name
        if name in _DROPPED:
            continue
        targets = [qubits[circuit.find_bit(q).index] for q in instruction.qubits]
        if name == "measure":
            key = f"m{measures}"
            measures += 1
            clbits[circuit.find_bit(instruction.clbits[0]).index] = (key, 0)  # the last measurement into a bit wins
            operations.append(cirq.MeasurementGate(1, key).on(*targets))
        elif name == "reset":
            operations.append(cirq.ResetChannel().on(*targets))
        else:
            cls, build = GATES.get(name, (None, None))
            if operation.base_class is not cls:
                if cls is not None:  # the transpiler keeps whatever bears a basis gate's name
                    raise UnsupportedCircuit(
                        f"circuit {circuit.name!r}: gate {name!r} is a {type(operation).__name__}, not Qiskit's standard "
                        f"{cls.__name__} of that name; give the custom gate another name")
                raise UnsupportedCircuit(f"circuit {circuit.name!r}: gate {name!r} cannot be expressed in hcqw's basis {BASIS}")
            # Qiskit numbers qubits little-endian and Cirq big-endian: both name them by index, so multi-qubit
            # gates map argument for argument (control first) without reordering.
            operations.append(build([symbols.angle(p, name) for p in operation.params], targets))
    return ConvertedCircuit(
        circuit=cirq.Circuit(operations),
        registers={reg.name: tuple(clbits[circuit.find_bit(bit).index] for bit in reg) for reg in circuit.cregs},
        parameters=parameters,
    )


def _in_basis(operation) -> bool:
    """In the basis as the very gate class, not merely by name (a custom gate called "rx" is not Qiskit's RXGate)."""
    if operation.name in ("measure", "reset", *_DROPPED):
        return True
    return operation.base_class is GATES.get(operation.name, (None,))[0]  # base_class: singletons' own class


class _Symbols:
    """Qiskit parameters and expressions -> sympy, one Symbol per parameter name."""

    def __init__(self):
        self._cache: dict[Parameter, sympy.Symbol] = {}

    def angle(self, value, gate: str) -> Angle:
        if isinstance(value, Parameter):
            symbol = self._cache.get(value)
            if symbol is None:
                symbol = self._cache[value] = sympy.Symbol(value.name)
            return symbol
        if isinstance(value, ParameterExpression):
            if not value.parameters:
                return float(value.numeric().real)
            expression = self._rebuild(value, gate)
            _check_expression(expression, gate, value)
            return expression
        try:
            return float(value)
        except (TypeError, ValueError):
            raise UnsupportedCircuit(f"gate {gate!r} has a parameter of type {type(value).__name__} ({value!r}); "
                                     "expected a number or a qiskit Parameter(Expression)") from None


    def _rebuild(self, expression: ParameterExpression, gate: str) -> sympy.Expr:
        """The expression from Qiskit's own record of how it was built (``_qpy_replay``, what QPY and
        ``ParameterExpression.sympify`` read), arithmetic only: a function is refused by name."""
        stack: list = []
        for step in expression._qpy_replay:
            for operand in (step.lhs, step.rhs):
                if operand is not None:
                    stack.append(self._operand(operand, gate))
            op = str(step.op).rsplit(".", 1)[-1]  # "OpCode.ADD"
            if op not in _ARITHMETIC:
                raise UnsupportedCircuit(
                    f"gate {gate!r}: parameter expression {expression} applies {op.lower()}; hcqw sends only +, -, *, / "
                    "and ** of parameters (no functions): compute the angle classically and bind it as a parameter")
            rhs, lhs = stack.pop(), stack.pop()
            stack.append(_ARITHMETIC[op](lhs, rhs))
        if len(stack) != 1:
            raise UnsupportedCircuit(f"gate {gate!r}: cannot read parameter expression {expression}")
        return sympy.sympify(stack[0]) if not isinstance(stack[0], sympy.Basic) else stack[0]

    def _operand(self, operand, gate: str):
        if isinstance(operand, ParameterExpression):  # a Parameter is one too
            return self.angle(operand, gate)
        if isinstance(operand, complex):
            if operand.imag:
                raise UnsupportedCircuit(f"gate {gate!r}: parameter expression has a complex constant {operand}")
            return sympy.Float(operand.real)
        return sympy.Integer(operand) if isinstance(operand, int) else sympy.Float(float(operand))


# Qiskit's replay operations (lhs, rhs): the reversed ones come with their operands swapped already.
_ARITHMETIC: dict[str, Callable] = {
    "ADD": lambda a, b: a + b, "SUB": lambda a, b: a - b, "MUL": lambda a, b: a * b, "DIV": lambda a, b: a / b,
    "POW": lambda a, b: a**b, "RSUB": lambda a, b: b - a, "RDIV": lambda a, b: b / a, "RPOW": lambda a, b: b**a,
}


def _check_expression(expression: sympy.Basic, gate: str, original) -> None:
    for node in sympy.preorder_traversal(expression):
        if isinstance(node, sympy.Symbol) or node.is_Number or node is sympy.pi:
            continue
        if isinstance(node, (sympy.Add, sympy.Mul)):
            continue
        if isinstance(node, sympy.Pow):
            base, exponent = node.args
            if exponent.is_Number and abs(float(exponent)) <= MAX_EXPONENT and base.free_symbols:
                continue
            raise UnsupportedCircuit(
                f"gate {gate!r}: parameter expression {original} raises to {exponent}; hcqw sends only powers of "
                f"parameters to a numeric exponent of at most {MAX_EXPONENT} in size: assign the values first")
        raise UnsupportedCircuit(
            f"gate {gate!r}: parameter expression {original} uses {type(node).__name__}; hcqw sends only +, * and ** "
            "of parameters (no functions): compute the angle classically and bind it as the parameter's value")
