"""PennyLane tapes -> Cirq circuits made only of what hcqw's wire decoder accepts.

The device's preprocessing (``hcqw.pennylane.device``) decomposes every tape to the gates named
here, so a tape reaching ``tape_to_circuit`` holds nothing else. Every gate angle becomes a
symbol (``p0``, ``p1``, ... in tape order) and its value a sweep point, so tapes that differ only
in their angles -- the shifted tapes of a parameter-shift gradient, the points of a broadcast --
become one circuit run over a sweep: one work item. A symbol's value is already in the Cirq
gate's own unit (an exponent where the gate takes one), so no circuit carries an expression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import cirq
import numpy as np
import sympy

from hcqw.errors import CircuitError

MEASUREMENT_KEY = "m"

# Gates without parameters. The Paulis are plain XPowGate etc.: cirq.X would make a Pauli-string operation,
# a type the decoder does not take; controlled gates (CY, CRX, ...) are left to PennyLane's decompositions.
FIXED_GATES: dict[str, cirq.Gate] = {
    "PauliX": cirq.XPowGate(), "PauliY": cirq.YPowGate(), "PauliZ": cirq.ZPowGate(), "Hadamard": cirq.H,
    "S": cirq.S, "T": cirq.T, "SX": cirq.XPowGate(exponent=0.5),
    "CNOT": cirq.CNOT, "CZ": cirq.CZ, "SWAP": cirq.SWAP,
    "ISWAP": cirq.ISWAP, "SISWAP": cirq.ISwapPowGate(exponent=0.5),
    "CSWAP": cirq.CSWAP, "Toffoli": cirq.CCX, "CCZ": cirq.CCZ,
}

_PER_PI = 1 / math.pi  # PennyLane angle -> Cirq exponent

# Gates of one angle: (the Cirq gate of a symbol, the factor taking PennyLane's angle to the symbol's value).
ANGLE_GATES: dict[str, tuple[Callable[[sympy.Symbol], cirq.Gate], float]] = {
    "RX": (cirq.rx, 1.0),
    "RY": (cirq.ry, 1.0),
    "RZ": (cirq.rz, 1.0),
    "PhaseShift": (lambda s: cirq.ZPowGate(exponent=s), _PER_PI),
    "ControlledPhaseShift": (lambda s: cirq.CZPowGate(exponent=s), _PER_PI),
    # exp(-i phi P P / 2): the global shift -1/2 makes Cirq's (P P)**t exactly that for t = phi / pi
    "IsingXX": (lambda s: cirq.XXPowGate(exponent=s, global_shift=-0.5), _PER_PI),
    "IsingYY": (lambda s: cirq.YYPowGate(exponent=s, global_shift=-0.5), _PER_PI),
    "IsingZZ": (lambda s: cirq.ZZPowGate(exponent=s, global_shift=-0.5), _PER_PI),
}

MATRIX_GATE_MAX_QUBITS = 4  # the wire decoder's bound on cirq.MatrixGate
# Operations that change no sample: left out of the circuit.
NO_EFFECT = frozenset({"Identity", "GlobalPhase", "Barrier"})

SUPPORTED = frozenset(FIXED_GATES) | frozenset(ANGLE_GATES) | NO_EFFECT


def supports(op: Any) -> bool:
    """Whether ``tape_to_circuit`` converts this operation as it is (else the device decomposes it).

    Besides the gates named above: ``QubitUnitary``, and an operation with a matrix but no
    decomposition (``BlockEncode``), on at most four wires, as a numeric ``cirq.MatrixGate``."""
    if op.name in SUPPORTED:
        return True
    small = len(op.wires) <= MATRIX_GATE_MAX_QUBITS and not op.batch_size and op.has_matrix
    return small and (op.name == "QubitUnitary" or not op.has_decomposition)


@dataclass(frozen=True)
class Converted:
    """One tape as a circuit of symbols and the values of those symbols for this tape."""

    circuit: cirq.FrozenCircuit  # hashable: equal circuits are one work item
    values: dict[str, float]
    measured_wires: tuple  # the wires measured under MEASUREMENT_KEY, in the order of its columns


def tape_to_circuit(tape: Any, wire_order: Any) -> Converted:
    """Convert a decomposed, diagonalised tape; its measured wires are those of its measurements,
    which the device turns from samples of these wires into the measurements' results."""
    qubit = {wire: cirq.LineQubit(i) for i, wire in enumerate(wire_order)}
    values: dict[str, float] = {}
    operations = []
    for op in tape.operations:
        qubits = [qubit[w] for w in op.wires]
        if op.name in NO_EFFECT:
            continue
        if op.name in FIXED_GATES:
            operations.append(FIXED_GATES[op.name].on(*qubits))
        elif op.name in ANGLE_GATES:
            make_gate, factor = ANGLE_GATES[op.name]
            symbol = sympy.Symbol(f"p{len(values)}")
            values[symbol.name] = _angle(op) * factor
            operations.append(make_gate(symbol).on(*qubits))
        elif supports(op):
            operations.append(cirq.MatrixGate(np.asarray(op.matrix(), dtype=complex)).on(*qubits))
        else:
            raise CircuitError(f"hcqw.qpu cannot convert the operation {op.name} on wires {list(op.wires)}; "
                               "the device's preprocessing should have decomposed it (run the tape through "
                               "the device's preprocess_transforms() first)")
    measured = tuple(dict.fromkeys(w for mp in tape.measurements for w in mp.wires))
    circuit = cirq.Circuit(operations)
    if measured:
        circuit.append(cirq.measure(*(qubit[w] for w in measured), key=MEASUREMENT_KEY))
    return Converted(circuit.freeze(), values, measured)


def _angle(op: Any) -> float:
    (angle,) = op.parameters
    try:
        return float(angle)
    except TypeError:
        raise CircuitError(f"{op.name} on wires {list(op.wires)} has the angle {angle!r}, not one number; "
                           "hcqw.qpu runs concrete values (broadcasting is expanded before this)") from None
