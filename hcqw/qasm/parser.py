"""OpenQASM 2/3 statements, read and carried out one at a time on a ``Program``.

What a straight-line circuit needs is read: declarations, includes, aliases, gate definitions,
gate calls with modifiers, measure, reset, barrier (dropped). Everything classical -- control flow,
subroutines, timing, calibrations, classical variables and assignment -- is refused by name, with
its line.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import cirq
import sympy

from hcqw.qasm.expr import FUNCTIONS, Node, evaluate, integer
from hcqw.qasm.lexer import Problem, Token, line_of, tokenize
from hcqw.qasm.program import OPAQUE, Call, Definition, Program

MAX_EXPRESSION_DEPTH = 64

_STRAIGHT_LINE = "hcqw runs straight-line circuits (gates, measure, reset); resolve it on the client before sending"
REFUSED = {
    **dict.fromkeys(("if", "else"), "classical control flow"),
    **dict.fromkeys(("for", "while", "break", "continue"), "a loop"),
    **dict.fromkeys(("switch", "case", "default"), "classical control flow"),
    **dict.fromkeys(("def", "return", "extern"), "a subroutine"),
    "end": "ending the program early",
    **dict.fromkeys(("box", "delay", "duration", "stretch"), "timing"),
    **dict.fromkeys(("defcal", "cal", "defcalgrammar"), "a pulse calibration"),
    "output": "an output variable",
    **dict.fromkeys(("int", "uint", "float", "angle", "complex", "bool", "array", "creg_t"), "a classical variable"),
}
_MODIFIERS = ("ctrl", "negctrl", "inv", "pow")
# statements with a keyword of their own, each read by the Parser method ``_<keyword>``
_STATEMENTS = frozenset({"include", "qreg", "creg", "qubit", "bit", "input", "const", "let", "opaque", "gate",
                         "measure", "reset", "barrier"})


class Parser:
    def __init__(self, text: str, program: Program | None = None):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.program = program

    # tokens

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.tokens[self.i]
        if token[0] != "end":
            self.i += 1
        return token

    def accept(self, text: str) -> bool:
        if self.tokens[self.i][1] == text and self.tokens[self.i][0] in ("op", "id"):
            self.i += 1
            return True
        return False

    def expect(self, text: str, after: str = "") -> int:
        kind, value, pos = self.next()
        if value != text or kind not in ("op", "id"):
            found = "the end of the text" if kind == "end" else repr(value)
            raise Problem(f"expected '{text}'{' after ' + after if after else ''}, found {found}", pos)
        return pos

    def name(self, what: str) -> tuple[str, int]:
        kind, value, pos = self.next()
        if kind != "id":
            raise Problem(f"expected {what}, found {'the end of the text' if kind == 'end' else repr(value)}", pos)
        if value in REFUSED and what != "a gate":
            raise Problem(f"'{value}' is a reserved word, not {what}", pos)
        return value, pos

    def line(self, pos: int) -> int:
        return line_of(self.text, pos)

    # the program

    def header(self) -> Program:
        _, value, pos = self.next()
        if value != "OPENQASM":
            raise Problem("the text must start with 'OPENQASM 2.0;' or 'OPENQASM 3.0;'", pos)
        kind, value, pos = self.next()
        if kind != "num" or value.split(".")[0] not in ("2", "3") or (value.startswith("2") and value != "2.0"):
            raise Problem(f"OPENQASM {value}: hcqw reads OpenQASM 2.0 and 3.x", pos)
        self.expect(";", "the version")
        return Program(version=int(value.split(".")[0]))

    def run(self) -> Program:
        if self.program is None:
            self.program = self.header()
        while self.peek()[0] != "end":
            self.statement()
        return self.program

    def statement(self) -> None:
        kind, word, pos = self.peek()
        if kind != "id":
            what = {"{": "a block '{ ... }'", "hw": "a statement starting with a qubit"}.get(word if kind == "op" else kind)
            raise Problem(f"{what or repr(word)} where a statement should start", pos)
        if word in REFUSED:
            raise Problem(f"'{word}' ({REFUSED[word]}) is not supported: {_STRAIGHT_LINE}", pos)
        handler = getattr(self, f"_{word}", None) if word in _STATEMENTS else None
        if handler is not None:
            self.next()
            handler(pos)
        elif word in _MODIFIERS or self.peek(1)[1] in ("(", ";") or self.peek(1)[0] in ("id", "hw"):
            self.gate_call()
        else:
            self.assignment()

    def _include(self, pos: int) -> None:
        kind, value, where = self.next()
        if kind != "str":
            raise Problem('include needs a file name in quotes: include "stdgates.inc";', where)
        self.expect(";", "include")
        self.program.include(value[1:-1], where, lambda text: Parser(text, self.program).run())

    def _qreg(self, pos: int) -> None:
        self.register("qreg", pos)

    def _creg(self, pos: int) -> None:
        self.register("creg", pos)

    def register(self, keyword: str, pos: int) -> None:
        name, where = self.name("a register name")
        self.expect("[", keyword)
        size = self.size()
        self.expect("]", "the register size")
        self.expect(";", "the declaration")
        (self.program.add_qubits if keyword == "qreg" else self.program.add_bits)(name, size, where)

    def size(self) -> int:
        pos = self.peek()[2]
        return integer(self.expression(), self.program.constants, pos, "a register size")

    def _qubit(self, pos: int) -> None:
        self.declaration(self.program.add_qubits)

    def _bit(self, pos: int) -> None:
        self.declaration(self.program.add_bits)

    def declaration(self, add: Callable[[str, int, int], None]) -> None:
        size = 1
        if self.accept("["):
            size = self.size()
            self.expect("]", "the size")
        name, where = self.name("a register name")
        if self.peek()[1] == "=":
            raise Problem(f"initialising '{name}' (a classical assignment) is not supported: {_STRAIGHT_LINE}",
                          self.peek()[2])
        self.expect(";", "the declaration")
        add(name, size, where)

    def _input(self, pos: int) -> None:
        kind, value, where = self.next()
        if value not in ("float", "angle"):
            raise Problem(f"input of type '{value}': only float and angle inputs become circuit parameters", where)
        if self.accept("["):
            self.size()
            self.expect("]", "the type's size")
        name, where = self.name("a parameter name")
        self.expect(";", "the input declaration")
        self.program.declare(name, where)
        self.program.scope[name] = sympy.Symbol(name)

    def _const(self, pos: int) -> None:
        kind, value, where = self.next()
        if value not in ("float", "angle", "int", "uint"):
            raise Problem(f"const of type '{value}': only float, angle, int and uint constants", where)
        if self.accept("["):
            self.size()
            self.expect("]", "the type's size")
        name, where = self.name("a constant name")
        self.expect("=", "the constant's name")
        value = evaluate(self.expression(), self.program.constants)
        self.expect(";", "the constant")
        self.program.declare(name, where)
        self.program.scope[name] = self.program.constants[name] = value

    def _let(self, pos: int) -> None:
        name, where = self.name("an alias name")
        self.expect("=", "the alias name")
        qubits = self.alias_part()
        while self.accept("++"):
            qubits = qubits + self.alias_part()
        self.expect(";", "the alias")
        if len(set(qubits)) != len(qubits):
            raise Problem(f"alias '{name}' names a qubit twice", where)
        self.program.declare(name, where)
        self.program.quantum[name] = qubits

    def alias_part(self) -> list[cirq.Qid]:
        """An operand, or ``{a, b[1], ...}``: the list Qiskit writes for a register of loose qubits."""
        if not self.accept("{"):
            return self.qubit_operand()
        qubits = self.qubit_operand()
        while self.accept(","):
            qubits = qubits + self.qubit_operand()
        self.expect("}", "the qubits of an alias")
        return qubits

    def _opaque(self, pos: int) -> None:
        name, where = self.name("a gate name")
        if self.accept("("):
            self.names(")")
        self.names(";")
        self.program.define(name, OPAQUE, where)

    def _gate(self, pos: int) -> None:
        name, where = self.name("a gate name")
        params = self.names(")") if self.accept("(") else []
        qubits = self.names("{")
        if not qubits or len(set(qubits)) != len(qubits) or len(set(params)) != len(params):
            raise Problem(f"gate '{name}' needs distinct qubit arguments (and distinct parameter names)", where)
        body = []
        while not self.accept("}"):
            kind, word, at = self.peek()
            if kind == "end":
                raise Problem(f"the body of gate '{name}' is never closed with '}}'", where)
            if word == "barrier":
                self.next()
                self.names(";")
                continue
            if kind != "id" or word in REFUSED or word in _STATEMENTS:
                raise Problem(f"{word!r} in the body of gate '{name}': a gate body holds only gate calls", at)
            call = self.call(lambda: self.gate_argument(qubits))
            if len(set(call.operands)) != len(call.operands):
                raise Problem(f"'{call.name}' is given the same qubit twice", call.pos)
            if call.name not in self.program.gates:
                raise self.program.unknown_gate(call.name, call.pos)
            body.append(call)
        self.program.define(name, Definition(params, qubits, body, self.program.cost(body)), where)

    def gate_argument(self, qubits: list[str]) -> str:
        name, pos = self.name("a qubit argument")
        if name not in qubits:
            raise Problem(f"'{name}' is not a qubit argument of this gate ({', '.join(qubits)})", pos)
        if self.peek()[1] == "[":
            raise Problem("indexing a qubit argument inside a gate body", self.peek()[2])
        return name

    def names(self, closing: str) -> list[str]:
        """Identifiers separated by commas, up to ``closing``."""
        found: list[str] = []
        while not self.accept(closing):
            if found:
                self.expect(",", "a name")
            found.append(self.name("a name")[0])
        return found

    def _measure(self, pos: int) -> None:
        qubits = self.qubit_operand()
        if not self.accept("->"):
            raise Problem("measure without a target: write 'measure q -> c;' or 'c = measure q;'", pos)
        bits = self.bit_operand()
        self.expect(";", "measure")
        self.measure(qubits, bits, pos)

    def measure(self, qubits: list[cirq.Qid], bits: list[tuple[str, int]], pos: int) -> None:
        if len(qubits) != len(bits):
            raise Problem(f"measure of {len(qubits)} qubits into {len(bits)} bits", pos)
        for qubit, (register, bit) in zip(qubits, bits):
            self.program.measure(qubit, register, bit, pos, self.line)

    def _reset(self, pos: int) -> None:
        for qubits in self.operands():
            for qubit in qubits:
                self.program.reset(qubit, pos)

    def _barrier(self, pos: int) -> None:
        self.operands()

    def assignment(self) -> None:
        kind, name, pos = self.peek()
        if name in self.program.classical and self.peek(1)[1] in ("=", "["):
            bits = self.bit_operand()
            if self.accept("=") and self.accept("measure"):
                qubits = self.qubit_operand()
                self.expect(";", "measure")
                self.measure(qubits, bits, pos)
                return
        raise Problem(f"a classical assignment or expression statement ('{name} ...') is not supported: "
                      f"{_STRAIGHT_LINE}", pos)

    # gate calls

    def gate_call(self) -> None:
        call = self.call(self.qubit_operand)
        params = [evaluate(p, self.program.scope, self.program.symbolic) for p in call.params]
        sizes = {len(q) for q in call.operands if len(q) != 1}
        if len(sizes) > 1:
            raise Problem(f"'{call.name}' on registers of different sizes {sorted(sizes)}", call.pos)
        for i in range(sizes.pop() if sizes else 1):
            self.program.apply(call, params, [q[i] if len(q) > 1 else q[0] for q in call.operands])

    def call(self, operand: Callable[[], Any]) -> Call:
        modifiers = []
        while self.peek()[1] in _MODIFIERS and self.peek(1)[1] in ("@", "("):
            _, kind, pos = self.next()
            node = None
            if self.accept("("):
                node = self.expression()
                self.expect(")", kind)
            elif kind == "pow":
                raise Problem("pow needs an exponent: pow(2) @ ...", pos)
            if kind == "inv" and node is not None:
                raise Problem("inv takes no argument", pos)
            self.expect("@", f"the modifier '{kind}'")
            modifiers.append((kind, node, pos))
        name, pos = self.name("a gate")
        if name in REFUSED:
            raise Problem(f"'{name}' ({REFUSED[name]}) is not supported: {_STRAIGHT_LINE}", pos)
        params = []
        if self.accept("("):
            while not self.accept(")"):
                if params:
                    self.expect(",", "a parameter")
                params.append(self.expression())
        operands = []
        while not self.accept(";"):
            if operands:
                self.expect(",", "an operand (or ';')")
            operands.append(operand())
        return Call(name, params, operands, modifiers, pos)

    def operands(self) -> list[list[cirq.Qid]]:
        found: list[list[cirq.Qid]] = []
        while not self.accept(";"):
            if found:
                self.expect(",", "an operand (or ';')")
            found.append(self.qubit_operand())
        return found

    def qubit_operand(self) -> list[cirq.Qid]:
        kind, value, pos = self.peek()
        if kind == "hw":
            self.next()
            return [self.program.physical_qubit(int(value[1:]), pos)]
        name, pos = self.name("a qubit")
        if name not in self.program.quantum:
            raise Problem(f"'{name}' is not a declared qubit or qubit register", pos)
        return self.select(self.program.quantum[name], name)

    def bit_operand(self) -> list[tuple[str, int]]:
        name, pos = self.name("a bit register")
        if name not in self.program.classical:
            raise Problem(f"'{name}' is not a declared bit register", pos)
        return [(name, i) for i in self.select(list(range(self.program.classical[name])), name)]

    def select(self, items: list, name: str) -> list:
        """``name``, ``name[i]``, ``name[a:b]``, ``name[a:step:b]`` (ends included), ``name[{i, j}]``."""
        if not self.accept("["):
            return items
        pos = self.peek()[2]
        if self.accept("{"):
            picked = [items[self.index(items, name)]]
            while self.accept(","):
                picked.append(items[self.index(items, name)])
            self.expect("}", "the index set")
        else:
            bounds: list[int | None] = [None if self.peek()[1] in (":", "]") else self.index(items, name, wrap=False)]
            while self.accept(":"):
                bounds.append(None if self.peek()[1] in (":", "]") else self.index(items, name, wrap=False))
            if bounds == [None]:
                raise Problem(f"'{name}[]' names no index", pos)
            if len(bounds) == 1:
                picked = [items[self.wrap(bounds[0], items, name, pos)]]
            elif len(bounds) > 3:
                raise Problem("a range is start:end or start:step:end", pos)
            else:
                start, step, end = (bounds[0], 1, bounds[1]) if len(bounds) == 2 else bounds
                start = 0 if start is None else self.wrap(start, items, name, pos)
                end = len(items) - 1 if end is None else self.wrap(end, items, name, pos)
                step = 1 if step is None else step
                if step == 0:
                    raise Problem("a range's step must not be 0", pos)
                picked = [items[k] for k in range(start, end + (1 if step > 0 else -1), step)]
        self.expect("]", "the index")
        return picked

    def index(self, items: list, name: str, wrap: bool = True) -> int:
        pos = self.peek()[2]
        value = integer(self.expression(), self.program.constants, pos, "an index")
        return self.wrap(value, items, name, pos) if wrap else value

    @staticmethod
    def wrap(value: int, items: list, name: str, pos: int) -> int:
        if not -len(items) <= value < len(items):
            raise Problem(f"index {value} is out of range for '{name}' of size {len(items)}", pos)
        return value % len(items)

    # expressions

    def expression(self) -> Node:
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            raise Problem(f"an expression nested more than {MAX_EXPRESSION_DEPTH} deep", self.peek()[2])
        node = self.term()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            _, op, pos = self.next()
            node = ("bin", op, node, self.term(), pos)
        self.depth -= 1
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            _, op, pos = self.next()
            node = ("bin", op, node, self.unary(), pos)
        return node

    def unary(self) -> Node:
        if self.accept("-"):
            self.depth += 1
            if self.depth > MAX_EXPRESSION_DEPTH:
                raise Problem(f"an expression nested more than {MAX_EXPRESSION_DEPTH} deep", self.peek()[2])
            node = ("neg", self.unary())
            self.depth -= 1
            return node
        if self.accept("+"):
            return self.unary()
        node = self.atom()
        kind, op, pos = self.peek()
        if op == "**" or (op == "^" and self.program is not None and self.program.version == 2):
            self.next()
            return ("bin", "**", node, self.unary(), pos)
        return node

    def atom(self) -> Node:
        kind, value, pos = self.next()
        if kind == "num":
            if not math.isfinite(float(value)):
                raise Problem(f"the number {value} is not finite", pos)
            return ("num", float(value))
        if kind == "id":
            if self.accept("("):
                if value not in FUNCTIONS:
                    raise Problem(f"unknown function '{value}' (known: {', '.join(sorted(FUNCTIONS))})", pos)
                args = [self.expression()]
                while self.accept(","):
                    args.append(self.expression())
                self.expect(")", f"the arguments of {value}")
                return ("call", value, args, pos)
            return ("name", value, pos)
        if value == "(":
            node = self.expression()
            self.expect(")", "the expression")
            return node
        raise Problem(f"expected a number or a name, found {'the end of the text' if kind == 'end' else repr(value)}",
                      pos)
