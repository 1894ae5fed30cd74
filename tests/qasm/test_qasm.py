"""The entry points (``is_openqasm``, ``parse``) and the bounds that keep a small text from costing much:
text size, registers, gate-definition expansion, nesting, expression size; and random mutations of valid
programs, which end in a circuit or a ``QasmError`` and nothing else."""

from __future__ import annotations

import cirq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcqw.errors import CircuitError, QasmError
from hcqw.qasm import MAX_TEXT, is_openqasm, parse
from hcqw.qasm.program import MAX_NESTING, MAX_QUBITS, MAX_WORK

QASM3 = 'OPENQASM 3.0;\ninclude "stdgates.inc";\n'


@pytest.mark.parametrize("text,expected", [
    ("OPENQASM 3;", True), ("  \n\t// comment\n/* a\nb */ OPENQASM 2.0;", True), ('{"cirq_type": "Circuit"}', False),
    ("", False), ("/* OPENQASM */ {}", False), ("// OPENQASM 3;\n{}", False), ("openqasm 3;", False),
])
def test_is_openqasm_looks_past_whitespace_and_comments_only(text, expected):
    assert is_openqasm(text) is expected


def test_is_openqasm_looks_only_as_far_as_parse_reads():
    assert not is_openqasm("/* */" * (MAX_TEXT // 5 + 1) + "OPENQASM 3;")


def refused(text: str) -> str:
    with pytest.raises(QasmError) as caught:
        parse(text)
    return str(caught.value)


def test_the_text_size_is_bounded_before_any_work():
    assert f"at most {MAX_TEXT:,}" in refused("OPENQASM 3;" + " " * MAX_TEXT)
    assert "OpenQASM text (str)" in refused(b"OPENQASM 3;")  # type: ignore[arg-type]


def test_registers_are_bounded():
    assert f"at most {MAX_QUBITS} qubits" in refused(QASM3 + "qubit[1000000000000] q;\n")
    assert "out of range" in refused(QASM3 + "bit[99999999999999999999] c;\n")
    assert f"at most {MAX_QUBITS}" in refused(QASM3 + "x $123456789;\n")


def test_doubling_gate_definitions_stop_at_the_expansion_bound():
    """Each level calls the one below twice: 2**40 gates from a few hundred bytes."""
    levels = ["gate g0 a { x a; }"] + [f"gate g{i} a {{ g{i - 1} a; g{i - 1} a; }}" for i in range(1, 41)]
    assert f"more than {MAX_WORK:,} gate applications" in refused(QASM3 + "\n".join(levels) + "\nqubit q;\ng40 q;\n")
    assert "gate applications" in refused(QASM3 + "qubit q;\npow(1000000000) @ x q;\n")
    assert "gate applications" in refused(QASM3 + "qubit[1000] q;\n" + "h q;\n" * (MAX_WORK // 1000 + 1))


def test_gate_nesting_is_bounded():
    levels = ["gate g0 a { x a; }"] + [f"gate g{i} a {{ g{i - 1} a; }}" for i in range(1, MAX_NESTING + 2)]
    assert f"nested more than {MAX_NESTING} deep" in refused(QASM3 + "\n".join(levels) + f"\nqubit q;\ng{MAX_NESTING + 1} q;\n")


def test_expressions_are_bounded():
    assert "nested more than" in refused(QASM3 + "qubit q;\nrx(" + "(" * 10000 + "1" + ")" * 10000 + ") q;\n")
    assert "nested more than" in refused(QASM3 + "qubit q;\nrx(" + "-" * 10000 + "1) q;\n")
    squares = ["gate s0(a) q { rx(a) q; }"] + [f"gate s{i}(a) q {{ s{i - 1}(a * a) q; }}" for i in range(1, 8)]
    assert "exponents up to 16" in refused(QASM3 + "\n".join(squares) + "\ninput float w;\nqubit q;\ns7(w) q;\n")
    sums = ["gate a0(x, y) q { rx(x) q; }"] + [f"gate a{i}(x, y) q {{ a{i - 1}(x * y + y * {i} + x, y + x) q; }}"
                                              for i in range(1, 12)]
    assert "larger than" in refused(QASM3 + "\n".join(sums) + "\ninput float w;\ninput float v;\nqubit q;\na11(w, v) q;\n")
    assert "not a finite number" in refused(QASM3 + "qubit q;\nrx(10 ** 400) q;\n")


VALID = [
    QASM3 + "input float[64] _θ_0_;\nqubit[3] q;\nbit[3] c;\nlet a = q[0:1] ++ q[2];\n"
            "gate g(x) u, v { rx(x / 2) u; ctrl @ ry(-x) u, v; gphase(x); }\n"
            "g(_θ_0_ * 2) q[0], q[1];\ninv @ g(0.3) a[0], a[2];\nnegctrl @ pow(0.5) @ x q[0], q[1];\n"
            "cu(0.1, 0.2, 0.3, 0.4) q[1], q[2];\nbarrier q;\nreset q[1];\nc[2] = measure q[2];\nc[0] = measure q[0];\n",
    'OPENQASM 2.0;\ninclude "qelib1.inc";\ngate ccz q0,q1,q2 { h q2; ccx q0,q1,q2; h q2; }\nqreg q[4];\ncreg c[4];\n'
    "sxdg q[2];\nu2(0.3,6.2) q[1];\nu3(2.4,3.0,4.2) q[1];\nrccx q[0],q[3],q[2];\nccz q[2],q[3],q[1];\n"
    "cu1(pi/4) q[0],q[1];\nrxx(-2e-1) q[2],q[3];\nmeasure q -> c;\n",
]
PIECES = [";", ",", "(", ")", "[", "]", "{", "}", "@", "->", "++", "**", ":", "-", "/", "*", "=", "q", "c", "x", "ctrl",
          "inv", "pow(2)", "pow(0.5)", "negctrl(2)", "gate", "qubit[2]", "bit", "measure", "reset", "let", "input float",
          "if", "for", "while", "def", "box", "0", "1e308", "1e999", "-1", "99999999999", "pi", "π", "_θ_0_", "$7", "\n",
          "/*", "//", '"', "OPENQASM 3;", "gphase(1)", "U(1,2,3)", "q[0:1]", "q[{0,1}]", "cx", "ccx"]


@settings(max_examples=600, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(VALID), edits=st.lists(
    st.tuples(st.sampled_from(["insert", "delete", "duplicate", "replace"]), st.floats(0, 1), st.floats(0, 1),
              st.sampled_from(PIECES)), min_size=1, max_size=6))
def test_mutated_programs_end_in_a_circuit_or_a_qasm_error(base, edits):
    text = base
    for kind, where, length, piece in edits:
        at = int(where * len(text))
        end = min(len(text), at + 1 + int(length * 40))
        if kind == "insert":
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[end:]
        elif kind == "duplicate":
            text = text[:end] + text[at:end] * 3 + text[end:]
        else:
            text = text[:at] + piece + text[end:]
    try:
        circuit = parse(text)
    except QasmError as err:
        assert isinstance(err, CircuitError) and str(err).startswith("OpenQASM")
    else:
        assert isinstance(circuit, cirq.Circuit)


def test_arithmetic_on_parameters_is_bounded(monkeypatch):
    """sympy is slow (tens of microseconds a step): doubling definitions that do arithmetic on a parameter stop
    at the step bound (lowered here so the test does not spend the seconds the real bound allows)."""
    from hcqw.qasm import expr

    monkeypatch.setattr(expr, "MAX_SYMBOLIC_STEPS", 500)
    levels = ["gate g0(a) q { rx(a * 2 + 1) q; }"] + [f"gate g{i}(a) q {{ g{i - 1}(a * 3 - 1) q; g{i - 1}(a + 1) q; }}"
                                                     for i in range(1, 9)]
    program = QASM3 + "\n".join(levels) + "\nqubit q;\n"
    assert isinstance(parse(program + "g8(0.5) q;\n"), cirq.Circuit)  # numbers: no sympy at all
    assert "more than 500 steps of arithmetic on parameters" in refused(program + "input float w;\ng8(w) q;\n")


TEMPLATES = ["<g1> <q>;", "<g2> <q>, <q>;", "ccx <q>, <q>, <q>;", "rx(<e>) <q>;", "u3(<e>, <e>, <e>) <q>;",
             "cu(<e>, <e>, <e>, <e>) <q>, <q>;", "<mod> @ <g1> <q>, <q>;", "<mod> @ <mod> @ rz(<e>) <q>, <q>, <q>;",
             "inv @ <g2> <q>, <q>;", "pow(<k>) @ <g1> <q>;", "pow(<k>) @ cp(<e>) <q>, <q>;", "gphase(<e>);",
             "c[<i>] = measure <q>;", "measure <q> -> c[<i>];", "c = measure q;", "reset <q>;", "barrier <q>;",
             "g(<e>) <q>, <q>;", "ctrl @ g(<e>) <q>, <q>, <q>;", "inv @ g(<e>) <q>, <q>;"]
OPERANDS = ["q[0]", "q[1]", "q[2]", "q[3]", "q[-1]", "q", "q[1:2]", "q[{0, 3}]", "a", "a[0]", "e", "q[4]"]
ATOMS = ["0", "1", "0.5", "-2.5e-1", "pi", "π", "w", "v", "1e300", "0"]


def program_of(seed: int) -> str:
    """A random program from statement templates: mostly valid, some wrong in a way the parser must name."""
    import random

    rng = random.Random(seed)

    def expression(depth: int = 0) -> str:
        if depth > 2 or rng.random() < 0.4:
            return rng.choice(ATOMS)
        kind = rng.choice(["+", "-", "*", "/", "**", "neg", "call"])
        if kind == "neg":
            return f"-{expression(depth + 1)}"
        if kind == "call":
            return f"{rng.choice(['sin', 'cos', 'sqrt', 'exp'])}({expression(depth + 1)})"
        right = str(rng.randint(-3, 3)) if kind == "**" else expression(depth + 1)
        return f"({expression(depth + 1)} {kind} {right})"

    fill = {"g1": lambda: rng.choice(["h", "x", "sx", "t", "sdg", "id", "y"]),
            "g2": lambda: rng.choice(["cx", "cz", "swap", "ch", "cy", "crz(0.2)", "cp(w)"]),
            "q": lambda: rng.choice(OPERANDS), "e": expression, "i": lambda: str(rng.randint(-1, 4)),
            "k": lambda: rng.choice(["2", "-1", "0.5", "0", "w", "3"]),
            "mod": lambda: rng.choice(["ctrl", "negctrl", "inv", "pow(2)", "ctrl(2)"])}
    lines = [QASM3, "input float w;\ninput angle v;\nqubit[4] q;\nqubit[0] e;\nbit[4] c;\nlet a = q[1] ++ q[3];\n",
             "gate g(x) s, t { rx(x) s; ctrl @ ry(x / 2) s, t; gphase(-x); }\n"]
    for _ in range(rng.randint(1, 6)):
        template = rng.choice(TEMPLATES)
        while "<" in template:
            start = template.index("<")
            end = template.index(">", start)
            template = template[:start] + fill[template[start + 1:end]]() + template[end + 1:]
        lines.append(template + "\n")
    return "".join(lines)


@settings(max_examples=1500, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32))
def test_random_programs_end_in_a_circuit_of_wire_types_or_a_qasm_error(seed):
    from tests.support.wire_types import wire_type_faults

    text = program_of(seed)
    try:
        circuit = parse(text)
    except QasmError as err:
        assert str(err).startswith("OpenQASM line")
    else:
        assert wire_type_faults(circuit) == []


@pytest.mark.parametrize("angle, problem", [
    ("(v / 1e300) ** 2", None),  # sympy holds 1e-600 * v**2; the wire's double is 0.0 (found by the test above)
    ("(v * 1e300) ** 2", "not a finite number"),  # 1e600 * v**2: beyond a double
])
def test_a_parameter_expressions_constants_are_the_wires_doubles(angle, problem):
    from tests.support.wire_types import wire_type_faults

    text = f"OPENQASM 3.0;\ninclude \"stdgates.inc\";\ninput angle v;\nqubit q;\nrz({angle}) q;\nrx(v) q;\n"
    if problem is None:
        assert wire_type_faults(parse(text)) == []
    else:
        with pytest.raises(QasmError, match=problem):
            parse(text)
