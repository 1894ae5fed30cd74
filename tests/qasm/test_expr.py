"""Parameter expressions: arithmetic, constants and functions on numbers; what reaches the wire on parameters."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from hcqw.errors import QasmError
from hcqw.qasm import parse

QASM3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'
QASM2 = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n'


@pytest.mark.parametrize("expression,value", [
    ("pi/2", np.pi / 2), ("π/2", np.pi / 2), ("-tau + 2*pi + 0.5", 0.5), ("1.5e-1*2", 0.3), (".5E1", 5.0),
    ("2**3 - 8", 0.0), ("sqrt(4) + cos(0) - ln(exp(1))", 2.0), ("-(-(1))", 1.0), ("6/4", 1.5), ("c0 * 2", 1.0),
])
def test_arithmetic_in_parameters(expression, value):
    circuit = parse(QASM3 + f"const float c0 = 0.5;\nqubit q;\nrx({expression}) q;\n")
    (op,) = circuit.all_operations()
    assert op.gate._rads == pytest.approx(value)


def test_qasm2_power_is_caret():
    (op,) = parse(QASM2 + "qreg q[1];\nrx(2^3) q[0];\n").all_operations()
    assert op.gate._rads == 8.0


def angle(text: str, header: str = QASM3) -> object:
    (op,) = parse(header + text).all_operations()
    return op.gate._rads


def test_arithmetic_on_a_parameter_stays_symbolic_and_cancels_to_a_number():
    w = sympy.Symbol("w")
    assert sympy.simplify(angle("input float w;\nqubit q;\nrx(w * 2 - w / 4 + 1) q;\n") - (1.75 * w + 1)) == 0
    assert angle("input float w;\nqubit q;\nrx(w - w + 0.5) q;\n") == 0.5


@pytest.mark.parametrize("expression,words", [
    ("w / (w - w)", "division by zero"), ("sqrt(w)", "sqrt() of a parameter"), ("w ** 2.5", "integer exponents"),
    ("(w * w * w * w * w) ** 4", "integer exponents up to 16"),
])
def test_what_the_wire_cannot_carry_is_refused(expression, words):
    with pytest.raises(QasmError, match=words.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
        parse(QASM3 + f"input float w;\nqubit q;\nrx({expression}) q;\n")
