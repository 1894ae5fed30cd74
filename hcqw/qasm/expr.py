"""Parameter expressions: their syntax tree, and their values.

A value is a Python float or, where it involves an ``input`` parameter, a sympy expression built only
from what the wire decoder accepts (symbols, numbers, +, *, and powers with a small numeric
exponent). Functions (sin, sqrt, ...) are computed on numbers and refused on parameters, since the
wire carries no sympy functions: bind the parameter first.

Nodes are tuples: ``("num", value)``, ``("name", name, pos)``, ``("neg", node)``,
``("bin", op, left, right, pos)``, ``("call", function, [args], pos)``.
"""

from __future__ import annotations

import math
from typing import Any, Union

import sympy

from hcqw.qasm.lexer import Problem

Value = Union[float, sympy.Expr]
Node = tuple

CONSTANTS = {"pi": math.pi, "π": math.pi, "tau": math.tau, "τ": math.tau, "euler": math.e, "ℇ": math.e}
FUNCTIONS = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "exp": math.exp, "ln": math.log, "log": math.log,
    "sqrt": math.sqrt, "arcsin": math.asin, "arccos": math.acos, "arctan": math.atan,
    "ceiling": math.ceil, "floor": math.floor,
}
# the wire decoder's bounds on a parameter expression
MAX_POWER = 16
MAX_EXPRESSION_NODES = 200
# sympy arithmetic costs tens of microseconds a step: a program's share is bounded
MAX_SYMBOLIC_STEPS = 50_000


class Tally:
    """Symbolic steps (sympy arithmetic on parameters) a program has taken."""

    def __init__(self) -> None:
        self.steps = 0

    def step(self, pos: int) -> None:
        self.steps += 1
        if self.steps > MAX_SYMBOLIC_STEPS:
            raise Problem(f"more than {MAX_SYMBOLIC_STEPS:,} steps of arithmetic on parameters", pos)


def evaluate(node: Node, env: dict[str, Any], tally: Tally | None = None) -> Value:
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "name":
        value = env.get(node[1], CONSTANTS.get(node[1]))
        if value is None or isinstance(value, (list, tuple)):
            raise Problem(f"'{node[1]}' is not a parameter or constant here", node[2])
        return value
    if kind == "neg":
        value = evaluate(node[1], env, tally)
        if tally is not None and isinstance(value, sympy.Basic):
            tally.step(0)
        return -value
    if kind == "bin":
        left, right = evaluate(node[2], env, tally), evaluate(node[3], env, tally)
        if tally is not None and (isinstance(left, sympy.Basic) or isinstance(right, sympy.Basic)):
            tally.step(node[4])
        return _binary(node[1], left, right, node[4])
    if kind == "call":
        args = [evaluate(arg, env, tally) for arg in node[2]]
        if any(isinstance(a, sympy.Basic) for a in args):
            raise Problem(f"{node[1]}() of a parameter: the wire carries only + - * / and small powers of "
                          "parameters; bind the parameter to a number first", node[3])
        try:
            result = FUNCTIONS[node[1]](*args)
        except (ValueError, OverflowError, TypeError) as err:
            raise Problem(f"{node[1]}({', '.join(map(repr, args))}): {err}", node[3]) from None
        return _finite(float(result), node[3])
    raise AssertionError(kind)


def _binary(op: str, a: Value, b: Value, pos: int) -> Value:
    symbolic = isinstance(a, sympy.Basic) or isinstance(b, sympy.Basic)
    try:
        if op == "+":
            result = a + b
        elif op == "-":
            result = a - b
        elif op == "*":
            result = a * b
        elif op == "/":
            if b == 0:  # also a parameter times 0, which sympy makes an exact 0
                raise Problem("division by zero", pos)
            result = a / b
        else:  # ** (and OpenQASM 2's ^)
            if isinstance(b, sympy.Basic):
                raise Problem("a parameter in an exponent: the wire carries only numeric exponents", pos)
            if symbolic and (abs(b) > MAX_POWER or b != int(b)):
                raise Problem(f"a parameter to the power {b}: the wire carries integer exponents up to "
                              f"{MAX_POWER}", pos)
            result = a ** (int(b) if symbolic else b)
    except OverflowError:
        raise Problem(f"{op}: the value is not a finite number (too large for a float)", pos) from None
    except ZeroDivisionError:
        raise Problem("division by zero", pos) from None
    if symbolic:
        return result
    if isinstance(result, complex):
        raise Problem(f"{a!r} {op} {b!r} is not a real number", pos)
    return _finite(float(result), pos)


def _finite(value: float, pos: int) -> float:
    if not math.isfinite(value):
        raise Problem(f"the value is not a finite number ({value})", pos)
    return value


def check_symbolic(value: sympy.Expr, pos: int) -> Value:
    """A sympy value within the wire's bounds (sympy may fold ``θ*θ*...`` into a large power); checked where a
    value reaches a gate, since evaluating it is bounded by the program's ``Tally``."""
    nodes = 0
    for sub in sympy.preorder_traversal(value):
        nodes += 1
        if nodes > MAX_EXPRESSION_NODES:
            raise Problem(f"a parameter expression larger than {MAX_EXPRESSION_NODES} terms", pos)
        if not isinstance(sub, _WIRE_SYMPY) or (isinstance(sub, sympy.Float) and not sub.is_finite):
            raise Problem(f"{value} is not a finite real value (a zero divisor or infinite power of a parameter?)", pos)
        if isinstance(sub, sympy.Pow) and not (sub.exp.is_Integer and abs(int(sub.exp)) <= MAX_POWER):
            raise Problem(f"{sub}: the wire carries integer exponents up to {MAX_POWER}", pos)
    # The wire carries doubles, and sympy's Floats reach beyond them: (1e-300 * θ) ** 2 holds 1e-600,
    # which is 0.0 on the wire. Round here, so that the circuit is the one the service will decode.
    value = value.xreplace({f: sympy.Float(_finite(float(f), pos)) for f in value.atoms(sympy.Float)})
    if value.is_number:  # parameters that cancelled out
        return _finite(float(value), pos)
    return value


_WIRE_SYMPY = (sympy.Symbol, sympy.Rational, sympy.Float, sympy.Add, sympy.Mul, sympy.Pow)


def integer(node: Node, env: dict[str, Any], pos: int, what: str) -> int:
    """An index, size or power that must be a whole number."""
    value = evaluate(node, env)
    if isinstance(value, float) and abs(value) >= 2**62:
        raise Problem(f"{what} {value:g} is out of range", pos)
    if isinstance(value, sympy.Basic) or value != int(value):
        raise Problem(f"{what} must be a whole number, got {value}", pos)
    return int(value)
