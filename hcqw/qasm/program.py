"""What a program declares and does, turned into a ``cirq.Circuit``.

Qubits are ``cirq.LineQubit(i)``, numbered in declaration order (``qreg a[2]; qreg b[1];`` gives
a[0], a[1], b[0] = 0, 1, 2); a program that names physical qubits (``$3``) gets ``LineQubit(3)``.

Measurements: results come back per classical register. Where every measurement into a register
is terminal (nothing acts on its qubit afterwards), the register becomes one ``MeasurementGate``
keyed by its name at the end of the circuit, its qubits in bit order -- one column per measured bit;
bits never measured have no column. A register with a measurement in mid-circuit is measured where
the program says, one key per bit (``c[0]``, ``c[1]``). A bit written twice is refused: the result
holds one value per bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import cirq
import sympy

from hcqw.qasm import gates
from hcqw.qasm.expr import Node, Tally, Value, check_symbolic, evaluate, integer
from hcqw.qasm.lexer import Problem

MAX_QUBITS = 1_000
MAX_BITS = 10_000
MAX_WORK = 100_000  # gate applications, counted at every level of gate-definition expansion
MAX_NESTING = 64  # gate definitions calling gate definitions


@dataclass(frozen=True)
class Call:
    """One gate call: ``modifiers`` are ``(kind, node or None, pos)``, outermost first."""

    name: str
    params: list[Node]
    operands: list[Any]  # qubit operands: names in a gate body, resolved lists at the top level
    modifiers: list[tuple[str, Node | None, int]]
    pos: int


@dataclass(frozen=True)
class Definition:
    params: list[str]
    qubits: list[str]
    body: list[Call]
    cost: int  # gate applications one call expands to, as far as known before the call (see Program.cost)


OPAQUE = "opaque"
GPHASE = "gphase"
Gate = Union[gates.Native, Definition, str]


@dataclass
class _Measure:
    qubit: cirq.Qid
    register: str
    bit: int


@dataclass
class Program:
    version: int
    qubits: list[cirq.Qid] = field(default_factory=list)
    quantum: dict[str, list[cirq.Qid]] = field(default_factory=dict)  # registers and aliases
    classical: dict[str, int] = field(default_factory=dict)  # register -> size
    scope: dict[str, Value] = field(default_factory=dict)  # inputs and constants
    constants: dict[str, float] = field(default_factory=dict)
    gates: dict[str, Gate] = field(default_factory=dict)
    physical: bool = False
    ops: list[Any] = field(default_factory=list)
    work: int = 0
    symbolic: Tally = field(default_factory=Tally)
    _pending: dict[cirq.Qid, str] = field(default_factory=dict)  # qubit -> register of its last measurement
    _mid_circuit: set[str] = field(default_factory=set)
    _written: dict[tuple[str, int], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.gates["U"] = gates.NATIVE["U"]
        if self.version == 2:
            self.gates["CX"] = gates.NATIVE["CX"]
        else:
            self.gates["gphase"] = GPHASE

    # declarations

    @property
    def has_inputs(self) -> bool:
        return len(self.scope) > len(self.constants)

    def declare(self, name: str, pos: int) -> None:
        if name in self.quantum or name in self.classical or name in self.scope or name in self.gates:
            raise Problem(f"'{name}' is already declared", pos)

    def add_qubits(self, name: str, size: int, pos: int) -> None:
        self.declare(name, pos)
        if self.physical:
            raise Problem("a program that names physical qubits ($0, $1, ...) cannot also declare qubits", pos)
        if size < 0 or len(self.qubits) + size > MAX_QUBITS:
            raise Problem(f"qubit register '{name}[{size}]': at most {MAX_QUBITS} qubits in all", pos)
        start = len(self.qubits)
        self.qubits += [cirq.LineQubit(start + i) for i in range(size)]
        self.quantum[name] = self.qubits[start:]

    def add_bits(self, name: str, size: int, pos: int) -> None:
        self.declare(name, pos)
        if size < 0 or sum(self.classical.values()) + size > MAX_BITS:
            raise Problem(f"bit register '{name}[{size}]': at most {MAX_BITS} bits in all", pos)
        self.classical[name] = size

    def physical_qubit(self, number: int, pos: int) -> cirq.Qid:
        if self.quantum:
            raise Problem(f"physical qubit ${number} in a program that declares qubits", pos)
        if number >= MAX_QUBITS:
            raise Problem(f"physical qubit ${number}: at most {MAX_QUBITS} qubits", pos)
        self.physical = True
        return cirq.LineQubit(number)

    def include(self, library: str, pos: int, define: Any) -> None:
        if library not in gates.LIBRARIES:
            raise Problem(f'include "{library}": only "qelib1.inc" and "stdgates.inc" are known; '
                          "put the gates you need in the program as gate definitions", pos)
        names, defined = gates.LIBRARIES[library]
        for name in names:
            self.gates.setdefault(name, gates.NATIVE[name])
        if defined:
            define(defined)

    def define(self, name: str, gate: Gate, pos: int) -> None:
        if name in self.gates:
            raise Problem(f"gate '{name}' is already defined (by an include or earlier in the program)", pos)
        self.declare(name, pos)
        self.gates[name] = gate

    # operations

    def spend(self, count: int, pos: int) -> None:
        self.work += count
        if self.work > MAX_WORK:
            raise Problem(f"the program expands to more than {MAX_WORK:,} gate applications", pos)

    def cost(self, body: list[Call]) -> int:
        """What a gate body expands to: its calls' costs, times their powers where those are constants."""
        total = 0
        for call in body:
            gate = self.gates.get(call.name)
            cost = gate.cost if isinstance(gate, Definition) else 1
            for kind, node, pos in call.modifiers:
                if kind == "pow":
                    try:
                        cost *= max(1, abs(int(evaluate(node, self.constants))))
                    except (Problem, TypeError, ValueError):
                        pass  # depends on the gate's parameters: counted when expanded
            total += cost
        return min(total, MAX_WORK + 1)

    def apply(self, call: Call, params: list[Value], qubits: list[cirq.Qid]) -> None:
        """A top-level gate call on one set of qubits; its global phase is dropped."""
        if len(set(qubits)) != len(qubits):
            raise Problem(f"'{call.name}' is given the same qubit twice", call.pos)
        ops, _ = self.expand(call, params, qubits, self.scope, 0, False)
        pending = self._pending
        if pending:
            for op in ops:
                for qubit in op.qubits:
                    if qubit in pending:
                        self._mid_circuit.add(pending.pop(qubit))
        self.ops += ops

    def expand(self, call: Call, params: list[Value], qubits: list[cirq.Qid], env: dict[str, Any],
               depth: int, phase_needed: bool) -> gates.Expansion:
        """The call's operations, and its phase where ``phase_needed`` (0 where not: the caller drops it)."""
        controls, values, powers = [], [], []
        for kind, node, pos in call.modifiers:
            if kind in ("ctrl", "negctrl"):
                count = 1 if node is None else integer(node, env, pos, f"{kind}(n)")
                if count < 1:
                    raise Problem(f"{kind}({count}): the number of controls must be at least 1", pos)
                controls += qubits[len(controls):len(controls) + count]
                values += [int(kind == "ctrl")] * count
            else:
                powers.append((kind, node, pos))
        if len(controls) != len(values):
            raise Problem(f"'{call.name}' with {len(values)} controls needs more qubits", call.pos)
        ops, phase = self.gate(call.name, params, qubits[len(controls):], call.pos, depth,
                               phase_needed or bool(controls))
        for kind, node, pos in reversed(powers):
            if self.has_inputs:  # the operations may hold parameters, each a sympy step to invert or raise
                for _ in ops:
                    self.symbolic.step(pos)
            if kind == "inv":
                ops, phase = gates.inverse(ops, phase)
            else:
                ops, phase = self.power(call.name, ops, phase, evaluate(node, env), pos)
            self.spend(len(ops), pos)
        if controls:
            if isinstance(phase, sympy.Basic):
                self.symbolic.step(call.pos)
                phase = check_symbolic(phase, call.pos)
            ops, phase = gates.control(ops, phase, controls, values), 0.0
            self.spend(len(ops), call.pos)
        return ops, phase

    def power(self, name: str, ops: list[cirq.Operation], phase: Value, exponent: Value,
              pos: int) -> gates.Expansion:
        if isinstance(exponent, sympy.Basic):
            raise Problem(f"pow(k) @ {name} with a parameter k: bind k to a number", pos)
        if exponent == int(exponent):
            k = int(exponent)
            if k < 0:
                ops, phase = gates.inverse(ops, phase)
            self.spend(len(ops) * abs(k), pos)
            return ops * abs(k), phase * abs(k)
        powered = gates.fractional_power(ops, phase, exponent)
        if powered is None:
            raise Problem(f"pow({exponent}) @ {name}: a non-integer power is supported for a gate that is one "
                          f"Cirq gate (x, sx, s, t, rx, p, cx, ...), and {name} here is {len(ops)} gates", pos)
        return powered

    def gate(self, name: str, params: list[Value], qubits: list[cirq.Qid], pos: int, depth: int,
             phase_needed: bool) -> gates.Expansion:
        gate = self.gates.get(name)
        if gate is None:
            raise self.unknown_gate(name, pos)
        if gate == OPAQUE:
            raise Problem(f"opaque gate '{name}' has no definition, so hcqw cannot run it", pos)
        if gate == GPHASE:
            n_params, n_qubits = 1, 0
        elif isinstance(gate, Definition):
            n_params, n_qubits = len(gate.params), len(gate.qubits)
        else:
            n_params, n_qubits = gate[0], gate[1]
        if len(params) != n_params or len(qubits) != n_qubits:
            raise Problem(f"gate '{name}' takes {n_params} parameters and {n_qubits} qubits, "
                          f"got {len(params)} and {len(qubits)}", pos)
        if gate == GPHASE:
            return [], params[0] if phase_needed else 0.0
        if not isinstance(gate, Definition):
            if any(isinstance(param, sympy.Basic) for param in params):
                self.symbolic.step(pos)  # Cirq's own arithmetic on the parameter
                params = [check_symbolic(p, pos) if isinstance(p, sympy.Basic) else p for p in params]
            ops = gate[2](params, qubits)
            self.spend(len(ops), pos)
            return ops, gate[3](params) if phase_needed and gate[3] else 0.0
        if depth >= MAX_NESTING:
            raise Problem(f"gate definitions nested more than {MAX_NESTING} deep", pos)
        if self.work + gate.cost > MAX_WORK:  # refused before the work, not after
            self.spend(gate.cost, pos)
        env = dict(self.constants)
        env.update(zip(gate.params, params))
        where = dict(zip(gate.qubits, qubits))
        ops, phase = [], 0.0
        for call in gate.body:
            sub_ops, sub_phase = self.expand(call, [evaluate(p, env, self.symbolic) for p in call.params],
                                             [where[q] for q in call.operands], env, depth + 1, phase_needed)
            ops += sub_ops
            if not gates.is_zero(sub_phase):
                if isinstance(sub_phase, sympy.Basic) or isinstance(phase, sympy.Basic):
                    self.symbolic.step(call.pos)
                phase = phase + sub_phase
        self.spend(len(ops), pos)
        return ops, phase

    def unknown_gate(self, name: str, pos: int) -> Problem:
        preferred = sorted(gates.LIBRARIES, key=lambda lib: lib != ("qelib1.inc" if self.version == 2 else "stdgates.inc"))
        library = next((lib for lib in preferred if name in gates.LIBRARIES[lib][0]
                        or f"gate {name} " in gates.LIBRARIES[lib][1]), None)
        hint = f'add include "{library}"' if library else "define it with a gate definition"
        return Problem(f"unknown gate '{name}': {hint}", pos)

    def measure(self, qubit: cirq.Qid, register: str, bit: int, pos: int, line_of: Any) -> None:
        if (register, bit) in self._written:
            raise Problem(f"{register}[{bit}] is written by two measurements (lines {line_of(self._written[register, bit])} "
                          f"and {line_of(pos)}); hcqw returns one result per bit: measure into another bit", pos)
        self._written[register, bit] = pos
        if qubit in self._pending:
            self._mid_circuit.add(self._pending[qubit])
        self._pending[qubit] = register
        self.spend(1, pos)
        self.ops.append(_Measure(qubit, register, bit))

    def reset(self, qubit: cirq.Qid, pos: int) -> None:
        if qubit in self._pending:
            self._mid_circuit.add(self._pending.pop(qubit))
        self.spend(1, pos)
        self.ops.append(cirq.ResetChannel().on(qubit))

    def circuit(self) -> cirq.Circuit:
        ops, terminal = [], {}
        for op in self.ops:
            if not isinstance(op, _Measure):
                ops.append(op)
            elif op.register in self._mid_circuit:
                ops.append(cirq.MeasurementGate(1, key=f"{op.register}[{op.bit}]").on(op.qubit))
            else:
                terminal.setdefault(op.register, {})[op.bit] = op.qubit
        for register in self.classical:
            if register in terminal:
                bits = terminal[register]
                ops.append(cirq.MeasurementGate(len(bits), key=register).on(*(bits[b] for b in sorted(bits))))
        return cirq.Circuit(ops)
