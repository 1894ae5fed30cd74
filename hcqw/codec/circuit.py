"""Circuits from the wire: Cirq JSON decoded against an allow-list, its cost bounded before any work.

``cirq.read_json`` is not a decoder for data from other users: its resolvers build sympy
expressions from strings through ``sympify`` (which evaluates them), compute ``sympy.Pow`` of
integers while decoding, and accept every type Cirq knows. This decoder reads Cirq's JSON
format itself and builds only what the simulators run:

- containers: ``Circuit``, ``Moment``, ``FrozenCircuit``/``CircuitOperation`` (with Cirq's
  ``VAL``/``REF`` sharing), gate, controlled, tagged (string tags) and single-Pauli operations;
- qubits: ``LineQubit``, ``GridQubit``, ``NamedQubit``;
- gates: the ``ALLOWED_GATES`` below, each from the fields Cirq writes for it;
- parameters: numbers and sympy ``Symbol``, ``Integer``, ``Float``, ``Rational``, ``pi``, ``E``,
  ``Add``, ``Mul`` and ``Pow`` with a small numeric exponent of a symbolic base.

Nothing is built from a string (a symbol's name stays a name); anything else is refused with a
``CircuitError`` naming the type and where it stood. The cost is bounded before it is paid: the
text's size before parsing, the number of JSON nodes, expression size and depth and nesting while
decoding, and the operation count with every ``CircuitOperation``'s repetitions expanded
(``Shape.operations``), which the service's cost model then prices (``hcqw.service.limits``).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from hcqw.errors import CircuitError


@dataclass(frozen=True)
class CircuitBounds:
    """What one circuit message may ask of a decoder (the defaults admit every hcqw workload)."""

    text_bytes: int = 8 * 1024 * 1024
    json_nodes: int = 2_000_000  # objects and arrays in the parsed text
    operations: int = 10_000_000  # with CircuitOperation repetitions expanded
    qubits: int = 4096
    subcircuit_depth: int = 8  # CircuitOperations inside CircuitOperations
    control_depth: int = 4  # ControlledGates inside ControlledGates
    expression_nodes: int = 64  # sympy nodes of one parameter expression
    expression_depth: int = 8
    exponent: float = 16.0  # |exponent| of a sympy.Pow
    integer_bits: int = 64  # sympy.Integer / Rational / JSON integers in expressions
    name_chars: int = 256  # symbol names, measurement keys, qubit names, tags
    matrix_qubits: int = 4  # MatrixGate


DEFAULT_BOUNDS = CircuitBounds()


@dataclass(frozen=True)
class Shape:
    """What the cost model needs of a circuit, counted while decoding (``CircuitOperation``
    repetitions expanded)."""

    qubits: int
    operations: int
    measured_bits: int
    terminal: bool  # every measurement at the end: one simulation serves all shots


@dataclass(frozen=True)
class Decoded:
    circuit: Any  # cirq.Circuit
    shape: Shape


def decode_circuit(text: Any, bounds: CircuitBounds = DEFAULT_BOUNDS) -> Decoded:
    """Decode one circuit's Cirq JSON text (see the module docstring); ``CircuitError`` on anything else."""
    tree = _parse(text, bounds)
    try:
        return _Decoder(bounds).top(tree)
    except RecursionError:
        raise CircuitError("circuit JSON is nested too deeply") from None


def screen_circuit(text: Any, bounds: CircuitBounds = DEFAULT_BOUNDS) -> int:
    """What a relay checks before it forwards a circuit, without building it (no cirq or sympy
    import, so a gateway stays quick to start): the size; that every object's type is one the
    decoder accepts somewhere; the bounds on JSON nodes, names, integers and powers; and the
    operation count with sub-circuit repetitions expanded, which it returns. Whatever the decoder
    accepts passes (the tests check it on the fuzzer's messages); the service decodes in full."""
    tree = _parse(text, bounds)
    nodes, stack = 0, [tree]
    while stack:
        node = stack.pop()
        nodes += 1
        if nodes > bounds.json_nodes:
            raise CircuitError(f"the circuit has more than {bounds.json_nodes} JSON nodes")
        if isinstance(node, dict):
            kind = node.get("cirq_type")
            if kind is not None and (not isinstance(kind, str) or kind not in ACCEPTED_TYPES):
                shown = kind if isinstance(kind, str) and len(kind) <= 64 else _kind(kind)
                raise CircuitError(f"type {shown!r} is not accepted in a circuit")
            if kind == "sympy.Pow":
                _screen_exponent(node.get("args"), bounds)
            stack.extend(node)  # field names: a long one is no field the decoder knows
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and len(node) > bounds.name_chars:
            raise CircuitError(f"a string of {len(node)} characters exceeds the limit of {bounds.name_chars}")
        elif isinstance(node, int) and not isinstance(node, bool) and node.bit_length() > bounds.integer_bits:
            raise CircuitError(f"an integer of {node.bit_length()} bits exceeds the limit of {bounds.integer_bits}")
    try:
        return _screen_operations(tree, bounds, {}, 0)
    except RecursionError:
        raise CircuitError("circuit JSON is nested too deeply") from None


def _parse(text: Any, bounds: CircuitBounds) -> Any:
    if not isinstance(text, str):
        raise CircuitError(f"circuit must be a Cirq JSON string, got {type(text).__name__}")
    if len(text) > bounds.text_bytes:  # characters >= bytes / 4: checked before any work
        raise CircuitError(f"circuit JSON of {len(text)} characters exceeds the limit of {bounds.text_bytes}; "
                           "split the circuit or send fewer operations")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise CircuitError(f"circuit is not valid JSON: {err}") from None
    except RecursionError:
        raise CircuitError("circuit JSON is nested too deeply") from None
    except ValueError as err:  # a constant refused, or an integer literal of too many digits
        raise CircuitError(f"circuit JSON: {err}") from None


def _screen_exponent(args: Any, bounds: CircuitBounds) -> None:
    if not isinstance(args, list) or len(args) != 2:
        return  # the decoder names the malformed power
    exponent = args[1]
    if isinstance(exponent, dict) and isinstance(exponent.get("cirq_type"), str):
        kind = exponent["cirq_type"]
        exponent = {"sympy.Integer": exponent.get("i"), "sympy.Float": exponent.get("approx")}.get(kind, exponent)
        if kind == "sympy.Rational" and isinstance(exponent.get("p"), int) and isinstance(exponent.get("q"), int) \
                and exponent["q"]:
            exponent = exponent["p"] / exponent["q"]
    if isinstance(exponent, (int, float)) and not isinstance(exponent, bool) and abs(exponent) > bounds.exponent:
        raise CircuitError(f"a power's exponent must be a number of magnitude at most {bounds.exponent:g}")


def _screen_operations(node: Any, bounds: CircuitBounds, shared: dict, depth: int) -> int:
    """The operations of a circuit's JSON, counted as the decoder counts them (``Shape.operations``)."""
    if not isinstance(node, dict):
        return 0
    kind, key = node.get("cirq_type"), node.get("key")
    if kind == "REF":
        return shared.get(key, 0) if isinstance(key, (str, int, float)) else 0
    if kind == "VAL":
        count = _screen_operations(node.get("val"), bounds, shared, depth)
        if isinstance(key, (str, int, float)):
            shared.setdefault(key, count)
        return count
    total = 0
    for moment in node.get("moments") if isinstance(node.get("moments"), list) else ():
        operations = moment.get("operations") if isinstance(moment, dict) else None
        for op in operations if isinstance(operations, list) else ():
            while isinstance(op, dict) and op.get("cirq_type") == "TaggedOperation":
                op = op.get("sub_operation")
            if isinstance(op, dict) and op.get("cirq_type") == "CircuitOperation":
                if depth >= bounds.subcircuit_depth:
                    raise CircuitError(f"sub-circuits nested deeper than {bounds.subcircuit_depth}")
                times = op.get("repetitions")
                times = abs(times) if isinstance(times, int) and not isinstance(times, bool) else 1
                total += times * _screen_operations(op.get("circuit"), bounds, shared, depth + 1)
            else:
                total += 1
            if total > bounds.operations:
                raise CircuitError(f"more than {bounds.operations} operations with sub-circuit repetitions "
                                   "expanded; split the circuit")
    return total


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a circuit may carry")


Node = Any
_Build = Callable[["_Decoder", dict, str], Any]


class _Decoder:
    """One message's decoding: the bounds, the budget spent so far and Cirq's shared sub-circuits."""

    def __init__(self, bounds: CircuitBounds):
        import cirq
        import sympy

        self.cirq, self.sympy, self.bounds = cirq, sympy, bounds
        self.nodes = 0
        self.shared: dict[Any, tuple[Any, tuple[int, int, bool]]] = {}  # VAL key -> (FrozenCircuit, counts)
        self.subcircuit_depth = 0
        # qubits and gates of plain values already built, by _plain_key: circuits repeat them
        self.qubits: dict[tuple, Any] = {}
        self.gates: dict[tuple, Any] = {}

    # -- shape of the JSON -----------------------------------------------------------------

    def _object(self, node: Node, where: str, allowed: dict[str, Any]) -> tuple[str, dict]:
        self.nodes += 1
        if self.nodes > self.bounds.json_nodes:
            raise CircuitError(f"{where}: the circuit has more than {self.bounds.json_nodes} JSON objects")
        if not isinstance(node, dict):
            raise CircuitError(f"{where}: expected a Cirq object, got {_kind(node)}")
        kind = node.get("cirq_type")
        if not isinstance(kind, str) or kind not in allowed:
            shown = kind if isinstance(kind, str) and len(kind) <= 64 else _kind(kind)
            raise CircuitError(f"{where}: type {shown!r} is not accepted here; accepted: {', '.join(sorted(allowed))}")
        return kind, node

    @staticmethod
    def _fields(node: dict, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        allowed = _field_names(required, optional)
        if allowed.issuperset(node) and all(name in node for name in required):
            return
        extra = set(node) - allowed
        missing = [name for name in required if name not in node]
        said = []
        if missing:
            said.append(f"lacks {', '.join(missing)}")
        if extra:
            said.append(f"has unknown field(s) {', '.join(sorted(str(k)[:32] for k in extra)[:5])}")
        raise CircuitError(f"{where} ({node['cirq_type']}) {' and '.join(said)}")

    def _list(self, node: Node, where: str, most: int | None = None) -> list:
        self.nodes += 1
        if not isinstance(node, list):
            raise CircuitError(f"{where}: expected a list, got {_kind(node)}")
        if most is not None and len(node) > most:
            raise CircuitError(f"{where}: {len(node)} entries exceed the limit of {most}")
        return node

    def _int(self, node: Node, where: str, low: int, high: int) -> int:
        if isinstance(node, bool) or not isinstance(node, int):
            raise CircuitError(f"{where}: expected an integer, got {_kind(node)}")
        if not low <= node <= high:
            raise CircuitError(f"{where}: {node} is outside {low}..{high}")
        return node

    def _float(self, node: Node, where: str) -> float:
        if isinstance(node, bool) or not isinstance(node, (int, float)):
            raise CircuitError(f"{where}: expected a number, got {_kind(node)}")
        if isinstance(node, int):
            self._integer(node, where)
        value = float(node)
        if not math.isfinite(value):
            raise CircuitError(f"{where}: {node!r} is not a finite number")
        return value

    def _text(self, node: Node, where: str) -> str:
        if not isinstance(node, str):
            raise CircuitError(f"{where}: expected a string, got {_kind(node)}")
        if len(node) > self.bounds.name_chars:
            raise CircuitError(f"{where}: a name of {len(node)} characters exceeds the limit of {self.bounds.name_chars}")
        return node

    def _bool(self, node: Node, where: str) -> bool:
        if not isinstance(node, bool):
            raise CircuitError(f"{where}: expected true or false, got {_kind(node)}")
        return node

    # -- circuits ----------------------------------------------------------------------------

    def top(self, tree: Node) -> Decoded:
        kind, node = self._object(tree, "circuit", {"Circuit": None, "FrozenCircuit": None})
        circuit, counts = self._circuit(node, "circuit")
        if kind == "FrozenCircuit":
            circuit = circuit.unfreeze()
        cirq = self.cirq
        qubits = len(circuit.all_qubits())
        if qubits > self.bounds.qubits:
            raise CircuitError(f"circuit: {qubits} qubits exceed the limit of {self.bounds.qubits}")
        return Decoded(circuit, Shape(qubits=qubits, operations=max(1, counts[0]), measured_bits=counts[1],
                                      terminal=counts[2] and cirq.Circuit.are_all_measurements_terminal(circuit)))

    def _circuit(self, node: dict, where: str) -> tuple[Any, tuple[int, int, bool]]:
        self._fields(node, where, ("moments",), ("tags",))
        moments, counts = self._parts(self._moment, node["moments"], f"{where}.moments")
        tags = [self._text(t, f"{where}.tags") for t in self._list(node.get("tags", []), f"{where}.tags", 64)]
        try:
            circuit = self.cirq.FrozenCircuit.from_moments(*moments) if node["cirq_type"] == "FrozenCircuit" \
                else self.cirq.Circuit.from_moments(*moments)
        except ValueError as err:
            raise CircuitError(f"{where}: {err}") from None
        if tags:
            circuit = circuit.with_tags(*tags)
        return circuit, counts

    def _parts(self, decode: Callable[[Node, str], tuple[Any, tuple[int, int, bool]]], data: Node,
               where: str) -> tuple[list, tuple[int, int, bool]]:
        """Each part of a list (moments of a circuit, operations of a moment) and their counts summed,
        refused as soon as the operations exceed the bound."""
        parts, operations, bits, plain = [], 0, 0, True
        for index, item in enumerate(self._list(data, where)):
            part, counts = decode(item, f"{where}[{index}]")
            parts.append(part)
            operations += counts[0]
            bits += counts[1]
            plain = plain and counts[2]
            if operations > self.bounds.operations:
                raise CircuitError(f"{where}: more than {self.bounds.operations} operations with sub-circuit "
                                   "repetitions expanded; split the circuit")
        return parts, (operations, bits, plain)

    def _moment(self, data: Node, where: str) -> tuple[Any, tuple[int, int, bool]]:
        _, node = self._object(data, where, {"Moment": None})
        self._fields(node, where, ("operations",))
        ops, counts = self._parts(self._operation, node["operations"], f"{where}.operations")
        try:
            return self.cirq.Moment(ops), counts
        except ValueError as err:  # overlapping qubits
            raise CircuitError(f"{where}: {err}") from None

    def _operation(self, data: Node, where: str) -> tuple[Any, tuple[int, int, bool]]:
        kind, node = self._object(data, where, _OPERATIONS)
        if kind == "CircuitOperation":
            return self._circuit_operation(node, where)
        if kind == "TaggedOperation":
            self._fields(node, where, ("sub_operation", "tags"))
            op, counts = self._operation(node["sub_operation"], f"{where}.sub_operation")
            tags = [self._text(t, f"{where}.tags") for t in self._list(node["tags"], f"{where}.tags", 64)]
            return op.with_tags(*tags), counts
        op = _OPERATIONS[kind](self, node, where)
        bits = len(op.qubits) if isinstance(op.gate, self.cirq.MeasurementGate) else 0
        return op, (1, bits, True)

    def _gate_operation(self, node: dict, where: str) -> Any:
        self._fields(node, where, ("gate", "qubits"))
        gate = self._gate(node["gate"], f"{where}.gate", 0)
        return self._on(gate, self._qubits(node["qubits"], f"{where}.qubits"), where)

    def _pauli_operation(self, node: dict, where: str) -> Any:
        self._fields(node, where, ("pauli", "qubit"))
        pauli = self._gate(node["pauli"], f"{where}.pauli", 0)
        if not isinstance(pauli, self.cirq.Pauli):
            raise CircuitError(f"{where}.pauli: expected a Pauli with exponent 1, got {pauli!r}")
        return self._on(pauli, [self._qubit(node["qubit"], f"{where}.qubit")], where)

    def _controlled_operation(self, node: dict, where: str) -> Any:
        self._fields(node, where, ("controls", "sub_operation"), ("control_values",))
        controls = self._qubits(node["controls"], f"{where}.controls")
        sub = self._operation(node["sub_operation"], f"{where}.sub_operation")[0]
        if not isinstance(sub, self.cirq.GateOperation) and not isinstance(sub, self.cirq.ControlledOperation):
            raise CircuitError(f"{where}.sub_operation: a controlled operation takes a gate operation")
        values = self._control_values(node.get("control_values"), f"{where}.control_values", len(controls))
        try:
            return self.cirq.ControlledOperation(controls, sub, values)
        except ValueError as err:
            raise CircuitError(f"{where}: {err}") from None

    def _circuit_operation(self, node: dict, where: str) -> tuple[Any, tuple[int, int, bool]]:
        cirq = self.cirq
        self._fields(node, where, ("circuit", "repetitions"),
                     ("qubit_map", "measurement_key_map", "param_resolver", "repetition_ids", "use_repetition_ids",
                      "parent_path"))
        if self.subcircuit_depth >= self.bounds.subcircuit_depth:
            raise CircuitError(f"{where}: sub-circuits nested deeper than {self.bounds.subcircuit_depth}")
        self.subcircuit_depth += 1
        try:
            circuit, counts = self._shared_circuit(node["circuit"], f"{where}.circuit")
        finally:
            self.subcircuit_depth -= 1
        repetitions = self._int(node["repetitions"], f"{where}.repetitions", -self.bounds.operations,
                                self.bounds.operations)
        times = abs(repetitions)
        if times * counts[0] > self.bounds.operations:
            raise CircuitError(f"{where}: {times} repetitions of {counts[0]} operations exceed the limit of "
                               f"{self.bounds.operations} operations; split the circuit")
        pairs = self._list(node.get("qubit_map") or [], f"{where}.qubit_map", self.bounds.qubits)
        qubit_map = {}
        for index, pair in enumerate(pairs):
            pair = self._list(pair, f"{where}.qubit_map[{index}]", 2)
            if len(pair) != 2:
                raise CircuitError(f"{where}.qubit_map[{index}]: expected [from, to]")
            qubit_map[self._qubit(pair[0], f"{where}.qubit_map[{index}]")] = self._qubit(pair[1], f"{where}.qubit_map[{index}]")
        keys = node.get("measurement_key_map") or {}
        if not isinstance(keys, dict) or len(keys) > 4096:
            raise CircuitError(f"{where}.measurement_key_map: expected an object of at most 4096 names")
        key_map = {self._text(k, f"{where}.measurement_key_map"): self._text(v, f"{where}.measurement_key_map")
                   for k, v in keys.items()}
        ids = node.get("repetition_ids")
        if ids is not None:
            ids = [self._text(i, f"{where}.repetition_ids") for i in
                   self._list(ids, f"{where}.repetition_ids", max(times, 1))]
        path = tuple(self._text(p, f"{where}.parent_path") for p in
                     self._list(node.get("parent_path", []), f"{where}.parent_path", 16))
        try:
            op = cirq.CircuitOperation(circuit, repetitions=repetitions, qubit_map=qubit_map,
                                       measurement_key_map=key_map,
                                       param_resolver=self._resolver(node.get("param_resolver"), f"{where}.param_resolver"),
                                       repetition_ids=ids,
                                       use_repetition_ids=self._bool(node.get("use_repetition_ids", False),
                                                                     f"{where}.use_repetition_ids"),
                                       parent_path=path)
        except CircuitError:
            raise
        except (ValueError, TypeError) as err:
            raise CircuitError(f"{where}: {err}") from None
        return op, (times * counts[0], times * counts[1], counts[2] and (times <= 1 or counts[1] == 0))

    def _shared_circuit(self, data: Node, where: str) -> tuple[Any, tuple[int, int, bool]]:
        """A FrozenCircuit, or Cirq's ``VAL`` (defines a shared one) / ``REF`` (uses one defined before)."""
        kind, node = self._object(data, where, {"FrozenCircuit": None, "VAL": None, "REF": None})
        if kind == "REF":
            self._fields(node, where, ("key",))
            key = self._share_key(node["key"], f"{where}.key")
            if key not in self.shared:
                raise CircuitError(f"{where}: REF to a sub-circuit not defined before it")
            return self.shared[key]
        if kind == "VAL":
            self._fields(node, where, ("key", "val"))
            key = self._share_key(node["key"], f"{where}.key")
            if key in self.shared:
                raise CircuitError(f"{where}: VAL key {key!r} defined twice")
            found = self._shared_circuit(node["val"], f"{where}.val")
            self.shared[key] = found
            return found
        return self._circuit(node, where)

    def _share_key(self, key: Node, where: str) -> str | int:
        if isinstance(key, str):
            return self._text(key, where)
        if isinstance(key, int) and not isinstance(key, bool):
            return self._integer(key, where)
        raise CircuitError(f"{where}: a shared sub-circuit's key must be a number or a string, got {_kind(key)}")

    def _resolver(self, data: Node, where: str) -> Any:
        if data is None:
            return None
        _, node = self._object(data, where, {"ParamResolver": None})
        self._fields(node, where, ("param_dict",))
        resolved = {}
        for index, pair in enumerate(self._list(node["param_dict"], f"{where}.param_dict", 4096)):
            pair = self._list(pair, f"{where}.param_dict[{index}]", 2)
            if len(pair) != 2:
                raise CircuitError(f"{where}.param_dict[{index}]: expected [symbol, value]")
            name = pair[0] if isinstance(pair[0], str) else self._expression(pair[0], f"{where}.param_dict[{index}]")
            if not isinstance(name, (str, self.sympy.Symbol)):
                raise CircuitError(f"{where}.param_dict[{index}]: a resolver maps symbols, got {name!r}")
            resolved[self._text(str(name), where)] = self._expression(pair[1], f"{where}.param_dict[{index}]")
        return resolved

    # -- qubits ------------------------------------------------------------------------------

    def _qubits(self, data: Node, where: str) -> list:
        return [self._qubit(q, f"{where}[{i}]") for i, q in enumerate(self._list(data, where, self.bounds.qubits))]

    def _qubit(self, data: Node, where: str) -> Any:
        key = _plain_key(data)
        if key is not None and key in self.qubits:
            self.nodes += 1
            return self.qubits[key]
        qubit = self._new_qubit(data, where)
        if key is not None:
            self.qubits[key] = qubit
        return qubit

    def _new_qubit(self, data: Node, where: str) -> Any:
        kind, node = self._object(data, where, {"LineQubit": None, "GridQubit": None, "NamedQubit": None})
        limit = 2 ** 31
        if kind == "LineQubit":
            self._fields(node, where, ("x",))
            return self.cirq.LineQubit(self._int(node["x"], f"{where}.x", -limit, limit))
        if kind == "GridQubit":
            self._fields(node, where, ("row", "col"))
            return self.cirq.GridQubit(self._int(node["row"], f"{where}.row", -limit, limit),
                                       self._int(node["col"], f"{where}.col", -limit, limit))
        self._fields(node, where, ("name",))
        return self.cirq.NamedQubit(self._text(node["name"], f"{where}.name"))

    def _on(self, gate: Any, qubits: list, where: str) -> Any:
        try:
            return gate.on(*qubits)
        except ValueError as err:  # wrong qubit count, repeated qubits
            raise CircuitError(f"{where}: {err}") from None

    # -- gates -------------------------------------------------------------------------------

    def _gate(self, data: Node, where: str, controls: int) -> Any:
        key = _plain_key(data)  # a gate of plain values (no expression) is built once per message
        if key is not None and key in self.gates:
            self.nodes += 1
            return self.gates[key]
        gate = self._new_gate(data, where, controls)
        if key is not None:
            self.gates[key] = gate
        return gate

    def _new_gate(self, data: Node, where: str, controls: int) -> Any:
        kind, node = self._object(data, where, ALLOWED_GATES)
        if kind == "ControlledGate":
            if controls >= self.bounds.control_depth:
                raise CircuitError(f"{where}: controlled gates nested deeper than {self.bounds.control_depth}")
            self._fields(node, where, ("sub_gate", "control_qid_shape"), ("control_values", "num_controls"))
            sub = self._gate(node["sub_gate"], f"{where}.sub_gate", controls + 1)
            shape = self._qid_shape(node["control_qid_shape"], f"{where}.control_qid_shape", 64)
            values = self._control_values(node.get("control_values"), f"{where}.control_values", len(shape))
            try:
                return self.cirq.ControlledGate(sub, num_controls=len(shape), control_values=values,
                                                control_qid_shape=shape)
            except ValueError as err:
                raise CircuitError(f"{where}: {err}") from None
        try:
            return ALLOWED_GATES[kind](self, node, where)
        except CircuitError:
            raise
        except (ValueError, TypeError) as err:  # Cirq's own checks of a gate's arguments
            raise CircuitError(f"{where} ({kind}): {err}") from None

    def _qid_shape(self, data: Node, where: str, most: int) -> tuple[int, ...]:
        shape = self._list(data, where, most)
        if any(d != 2 or isinstance(d, bool) for d in shape):
            raise CircuitError(f"{where}: only qubits (dimension 2) are accepted, got {shape[:8]}")
        return tuple(shape)

    def _control_values(self, data: Node, where: str, controls: int) -> Any:
        if data is None:
            return None
        if isinstance(data, list):
            raw, kind = data, "list"
        else:
            kind, node = self._object(data, where, {"ProductOfSums": None, "SumOfProducts": None})
            self._fields(node, where, ("data",), ("name",))
            raw = node["data"]
        rows = self._list(raw, where, 4096)
        values = []
        for row in rows:
            if isinstance(row, list):
                self._list(row, where, 64)
                values.append(tuple(self._int(v, where, 0, 1) for v in row))
            else:
                values.append(self._int(row, where, 0, 1))
        if kind == "SumOfProducts":
            return self.cirq.SumOfProducts(values)
        return self.cirq.ProductOfSums(values)

    # -- parameters --------------------------------------------------------------------------

    def _expression(self, data: Node, where: str) -> Any:
        """A number or a bounded sympy expression of symbols (see the module docstring)."""
        count = [0]
        return self._term(data, where, 0, count)

    def _term(self, data: Node, where: str, depth: int, count: list[int]) -> Any:
        sympy, bounds = self.sympy, self.bounds
        count[0] += 1
        if count[0] > bounds.expression_nodes or depth > bounds.expression_depth:
            raise CircuitError(f"{where}: the expression exceeds {bounds.expression_nodes} terms or depth "
                               f"{bounds.expression_depth}")
        if isinstance(data, bool):
            raise CircuitError(f"{where}: expected a number or a parameter expression, got a boolean")
        if isinstance(data, int):
            return self._integer(data, where)
        if isinstance(data, float):
            return self._float(data, where)
        kind, node = self._object(data, where, _EXPRESSIONS)
        if kind == "complex":
            self._fields(node, where, ("real", "imag"))
            return complex(self._float(node["real"], f"{where}.real"), self._float(node["imag"], f"{where}.imag"))
        if kind == "sympy.Symbol":
            self._fields(node, where, ("name",))
            return sympy.Symbol(self._text(node["name"], f"{where}.name"))
        if kind == "sympy.Integer":
            self._fields(node, where, ("i",))
            return sympy.Integer(self._integer(node["i"], f"{where}.i"))
        if kind == "sympy.Float":
            self._fields(node, where, ("approx",))
            return sympy.Float(self._float(node["approx"], f"{where}.approx"))
        if kind == "sympy.Rational":
            self._fields(node, where, ("p", "q"))
            p, q = self._integer(node["p"], f"{where}.p"), self._integer(node["q"], f"{where}.q")
            if q == 0:
                raise CircuitError(f"{where}: a rational with denominator 0")
            return sympy.Rational(p, q)
        if kind in ("sympy.pi", "sympy.E"):
            self._fields(node, where, ())
            return sympy.pi if kind == "sympy.pi" else sympy.E
        self._fields(node, where, ("args",))
        args = [self._term(a, f"{where}.args[{i}]", depth + 1, count)
                for i, a in enumerate(self._list(node["args"], f"{where}.args", bounds.expression_nodes))]
        if kind == "sympy.Pow":
            if len(args) != 2:
                raise CircuitError(f"{where}: sympy.Pow takes [base, exponent]")
            base, exponent = args
            if not isinstance(exponent, (int, float, sympy.Integer, sympy.Float, sympy.Rational)) \
                    or abs(float(exponent)) > bounds.exponent:
                raise CircuitError(f"{where}: a power's exponent must be a number of magnitude at most "
                                   f"{bounds.exponent:g}")
            if not getattr(base, "free_symbols", None):
                raise CircuitError(f"{where}: a power of a constant is not computed while decoding; send its value")
            return sympy.Pow(base, exponent)
        if len(args) < 2:
            raise CircuitError(f"{where}: {kind} takes at least two terms")
        return sympy.Add(*args) if kind == "sympy.Add" else sympy.Mul(*args)

    def _integer(self, value: Node, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CircuitError(f"{where}: expected an integer, got {_kind(value)}")
        if value.bit_length() > self.bounds.integer_bits:
            raise CircuitError(f"{where}: an integer of {value.bit_length()} bits exceeds the limit of "
                               f"{self.bounds.integer_bits}")
        return value


@functools.lru_cache(maxsize=None)
def _field_names(required: tuple[str, ...], optional: tuple[str, ...]) -> frozenset[str]:
    return frozenset({"cirq_type", *required, *optional})


def _plain_key(node: Node) -> tuple | None:
    """A hashable key of a Cirq object whose fields are all scalars (a qubit, a gate without
    expressions), or ``None``: equal keys decode to equal objects."""
    if not isinstance(node, dict):
        return None
    values = tuple(node.values())
    types = tuple(map(type, values))  # 1, 1.0 and True stay apart
    if not _SCALARS.issuperset(types):
        return None
    return tuple(node), values, types


_SCALARS = frozenset({str, int, float, type(None)})


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


_EXPRESSIONS = dict.fromkeys(["complex", "sympy.Symbol", "sympy.Integer", "sympy.Float", "sympy.Rational", "sympy.pi",
                              "sympy.E", "sympy.Add", "sympy.Mul", "sympy.Pow"])

_OPERATIONS: dict[str, Any] = {
    "GateOperation": _Decoder._gate_operation,
    "SingleQubitPauliStringGateOperation": _Decoder._pauli_operation,
    "ControlledOperation": _Decoder._controlled_operation,
    "TaggedOperation": None,  # handled in _operation: counts pass through
    "CircuitOperation": None,
}


def _gates() -> dict[str, Any]:
    """cirq_type -> builder, for every gate the decoder accepts (cirq imported on first use)."""

    def eigen(name: str) -> _Build:
        def build(d: _Decoder, node: dict, where: str) -> Any:
            d._fields(node, where, (), ("exponent", "global_shift"))
            return getattr(d.cirq, name)(exponent=d._expression(node.get("exponent", 1.0), f"{where}.exponent"),
                                         global_shift=d._float(node.get("global_shift", 0.0), f"{where}.global_shift"))
        return build

    def pauli(name: str) -> _Build:
        def build(d: _Decoder, node: dict, where: str) -> Any:
            d._fields(node, where, (), ("exponent", "global_shift"))
            exponent = d._expression(node.get("exponent", 1.0), f"{where}.exponent")
            shift = d._float(node.get("global_shift", 0.0), f"{where}.global_shift")
            if exponent == 1 and shift == 0:
                return getattr(d.cirq, name[-1])  # cirq.X, cirq.Y, cirq.Z
            return getattr(d.cirq, f"{name[-1]}PowGate")(exponent=exponent, global_shift=shift)
        return build

    def rotation(name: str) -> _Build:
        def build(d: _Decoder, node: dict, where: str) -> Any:
            d._fields(node, where, ("rads",))
            return getattr(d.cirq, name)(rads=d._expression(node["rads"], f"{where}.rads"))
        return build

    def phased_x(d: _Decoder, node: dict, where: str) -> Any:
        d._fields(node, where, ("phase_exponent",), ("exponent", "global_shift"))
        return d.cirq.PhasedXPowGate(phase_exponent=d._expression(node["phase_exponent"], f"{where}.phase_exponent"),
                                     exponent=d._expression(node.get("exponent", 1.0), f"{where}.exponent"),
                                     global_shift=d._float(node.get("global_shift", 0.0), f"{where}.global_shift"))

    def phased_iswap(d: _Decoder, node: dict, where: str) -> Any:
        d._fields(node, where, (), ("phase_exponent", "exponent", "global_shift"))
        return d.cirq.PhasedISwapPowGate(
            phase_exponent=d._expression(node.get("phase_exponent", 0.25), f"{where}.phase_exponent"),
            exponent=d._expression(node.get("exponent", 1.0), f"{where}.exponent"),
            global_shift=d._float(node.get("global_shift", 0.0), f"{where}.global_shift"))

    def phased_xz(d: _Decoder, node: dict, where: str) -> Any:
        d._fields(node, where, ("x_exponent", "z_exponent", "axis_phase_exponent"))
        return d.cirq.PhasedXZGate(x_exponent=d._expression(node["x_exponent"], f"{where}.x_exponent"),
                                   z_exponent=d._expression(node["z_exponent"], f"{where}.z_exponent"),
                                   axis_phase_exponent=d._expression(node["axis_phase_exponent"],
                                                                     f"{where}.axis_phase_exponent"))

    def fsim(d: _Decoder, node: dict, where: str) -> Any:
        d._fields(node, where, ("theta", "phi"))
        return d.cirq.FSimGate(theta=d._expression(node["theta"], f"{where}.theta"),
                               phi=d._expression(node["phi"], f"{where}.phi"))

    def identity(d: _Decoder, node: dict, where: str) -> Any:
        d._fields(node, where, (), ("num_qubits", "qid_shape"))
        if "qid_shape" in node:
            return d.cirq.IdentityGate(qid_shape=d._qid_shape(node["qid_shape"], f"{where}.qid_shape", d.bounds.qubits))
        return d.cirq.IdentityGate(num_qubits=d._int(node.get("num_qubits", 1), f"{where}.num_qubits", 1, d.bounds.qubits))

    def global_phase(d: _Decoder, node: dict, where: str) -> Any:
        d._fields(node, where, ("coefficient",))
        coefficient = d._expression(node["coefficient"], f"{where}.coefficient")
        if not isinstance(coefficient, (int, float, complex)):
            raise CircuitError(f"{where}.coefficient: expected a number")
        return d.cirq.GlobalPhaseGate(coefficient)

    def matrix(d: _Decoder, node: dict, where: str) -> Any:
        import numpy as np

        d._fields(node, where, ("matrix",), ("qid_shape", "name"))
        shape = d._qid_shape(node.get("qid_shape", [2]), f"{where}.qid_shape", d.bounds.matrix_qubits)
        size = 2 ** len(shape)
        rows = d._list(node["matrix"], f"{where}.matrix", size)
        if len(rows) != size:
            raise CircuitError(f"{where}.matrix: expected {size} rows for {len(shape)} qubit(s), got {len(rows)}")
        values = np.empty((size, size), dtype=complex)
        for i, row in enumerate(rows):
            row = d._list(row, f"{where}.matrix[{i}]", size)
            if len(row) != size:
                raise CircuitError(f"{where}.matrix[{i}]: expected {size} entries, got {len(row)}")
            for j, entry in enumerate(row):
                value = d._expression(entry, f"{where}.matrix[{i}][{j}]")
                if not isinstance(value, (int, float, complex)):
                    raise CircuitError(f"{where}.matrix[{i}][{j}]: expected a number")
                values[i, j] = value
        name = d._text(node["name"], f"{where}.name") if node.get("name") is not None else None
        if not d.cirq.is_unitary(values):
            raise CircuitError(f"{where}.matrix: not unitary")
        return d.cirq.MatrixGate(values, qid_shape=shape, name=name)

    def measurement(d: _Decoder, node: dict, where: str) -> Any:
        d._fields(node, where, ("num_qubits", "key"), ("invert_mask", "qid_shape", "confusion_map", "tags"))
        if node.get("confusion_map"):
            raise CircuitError(f"{where}: measurement confusion maps are not accepted")
        count = d._int(node["num_qubits"], f"{where}.num_qubits", 1, d.bounds.qubits)
        key = node["key"]
        if isinstance(key, dict):
            _, key_node = d._object(key, f"{where}.key", {"MeasurementKey": None})
            d._fields(key_node, f"{where}.key", ("name",), ("path",))
            key = d.cirq.MeasurementKey(
                name=d._text(key_node["name"], f"{where}.key.name"),
                path=tuple(d._text(p, f"{where}.key.path") for p in d._list(key_node.get("path", []), where, 16)))
        else:
            key = d.cirq.MeasurementKey.parse_serialized(d._text(key, f"{where}.key"))
        mask = tuple(d._bool(b, f"{where}.invert_mask") for b in
                     d._list(node.get("invert_mask", []), f"{where}.invert_mask", count))
        if node.get("qid_shape") is not None:
            d._qid_shape(node["qid_shape"], f"{where}.qid_shape", count)
        return d.cirq.MeasurementGate(num_qubits=count, key=key, invert_mask=mask)

    def reset(d: _Decoder, node: dict, where: str) -> Any:
        d._fields(node, where, (), ("dimension",))
        d._int(node.get("dimension", 2), f"{where}.dimension", 2, 2)
        return d.cirq.ResetChannel()

    def cswap(d: _Decoder, node: dict, where: str) -> Any:
        d._fields(node, where, ())
        return d.cirq.CSWAP

    gates: dict[str, Any] = {name: eigen(name) for name in (
        "XPowGate", "YPowGate", "ZPowGate", "HPowGate", "CZPowGate", "CXPowGate", "SwapPowGate", "ISwapPowGate",
        "XXPowGate", "YYPowGate", "ZZPowGate", "CCZPowGate", "CCXPowGate")}
    gates["CNotPowGate"] = eigen("CXPowGate")  # older Cirq's names
    gates["CCNotPowGate"] = eigen("CCXPowGate")
    gates.update({name: pauli(name) for name in ("_PauliX", "_PauliY", "_PauliZ")})
    gates.update({name: rotation(name) for name in ("Rx", "Ry", "Rz")})
    gates.update({"PhasedXPowGate": phased_x, "PhasedISwapPowGate": phased_iswap, "PhasedXZGate": phased_xz,
                  "FSimGate": fsim, "IdentityGate": identity, "GlobalPhaseGate": global_phase, "MatrixGate": matrix,
                  "MeasurementGate": measurement, "ResetChannel": reset, "CSwapGate": cswap,
                  "ControlledGate": None})  # handled in _gate: it nests
    return gates


ALLOWED_GATES = _gates()
#: Every type the decoder accepts in some place (what ``screen_circuit`` lets through).
ACCEPTED_TYPES = frozenset({*ALLOWED_GATES, *_OPERATIONS, *_EXPRESSIONS, "Circuit", "FrozenCircuit", "Moment", "VAL",
                            "REF", "LineQubit", "GridQubit", "NamedQubit", "ParamResolver", "ProductOfSums",
                            "SumOfProducts", "MeasurementKey"})
