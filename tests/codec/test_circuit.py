"""The circuit decoder: every accepted type round-trips exactly; crafted and oversized messages are
refused by name, fast, before any work and without running anything."""

from __future__ import annotations

import json
import os
import time

import cirq
import numpy as np
import pytest
import sympy

from hcqw.codec import CircuitBounds, circuit_to_json, decode_circuit, screen_circuit
from hcqw.errors import CircuitError
from tests.codec.crafted import crafted

Q = cirq.LineQubit.range(4)
A, B = sympy.symbols("a θ_0")


def every_accepted_type() -> cirq.Circuit:
    """A circuit with each gate, operation, qubit and parameter form the decoder accepts."""
    body = cirq.FrozenCircuit(cirq.X(Q[0]), cirq.Z(Q[1]) ** A)
    return cirq.Circuit(
        cirq.H(Q[0]), cirq.X(Q[1]) ** A, cirq.Y(Q[2]) ** 0.5, cirq.Z(Q[3]), cirq.S(Q[0]), cirq.T(Q[1]),
        cirq.CNOT(Q[0], Q[1]), cirq.CZ(Q[1], Q[2]) ** (2 * A + 1), cirq.SWAP(Q[2], Q[3]), cirq.ISWAP(Q[0], Q[1]) ** 0.5,
        cirq.PhasedISwapPowGate(phase_exponent=0.2, exponent=A)(Q[1], Q[2]),
        cirq.PhasedXPowGate(phase_exponent=0.1, exponent=B)(Q[0]),
        cirq.PhasedXZGate(x_exponent=A, z_exponent=0.1, axis_phase_exponent=0.3)(Q[1]),
        cirq.rx(A)(Q[0]), cirq.ry(1 / A)(Q[1]), cirq.rz(A ** 2 * sympy.pi - B / 3)(Q[2]),
        cirq.XX(Q[0], Q[1]) ** A, cirq.YY(Q[1], Q[2]), cirq.ZZ(Q[2], Q[3]) ** sympy.Rational(1, 3),
        cirq.CCZ(*Q[:3]), cirq.CCX(*Q[1:]), cirq.CSWAP(*Q[:3]), cirq.FSimGate(A, 0.2)(Q[0], Q[1]),
        cirq.IdentityGate(2)(Q[2], Q[3]), cirq.GlobalPhaseGate(1j).on(),
        cirq.MatrixGate(cirq.unitary(cirq.H), name="h")(Q[3]),
        cirq.ControlledGate(cirq.X ** A, num_controls=2, control_values=[1, 0])(*Q[:3]),
        cirq.Y(Q[3]).controlled_by(Q[0], Q[1], control_values=[0, 1]),
        cirq.X(Q[2]).with_tags("mine"),
        cirq.CircuitOperation(body, repetitions=3),
        cirq.CircuitOperation(body, repetitions=2, qubit_map={Q[0]: Q[2], Q[1]: Q[3]}, param_resolver={"a": 0.25}),
        cirq.ResetChannel()(Q[3]), cirq.H(cirq.GridQubit(1, 2)), cirq.H(cirq.NamedQubit("anc")),
        cirq.measure(*Q[:2], key="m", invert_mask=(True,)),
        cirq.measure(Q[2], key=cirq.MeasurementKey("k", path=("p",))),
    )


def test_every_accepted_type_round_trips_exactly():
    circuit = every_accepted_type()
    decoded = decode_circuit(circuit_to_json(circuit))
    assert decoded.circuit == circuit
    # 36 operations at the top, the 3- and 2-times repeated 2-operation body counted at each repetition
    assert decoded.shape.operations == len(list(circuit.all_operations())) - 2 + 3 * 2 + 2 * 2
    assert (decoded.shape.qubits, decoded.shape.measured_bits) == (6, 3)


def test_a_decoded_circuit_samples_as_the_original():
    circuit = cirq.Circuit(cirq.H(Q[0]), cirq.CNOT(Q[0], Q[1]), cirq.rx(A)(Q[2]), cirq.measure(*Q[:3], key="m"))
    decoded = decode_circuit(circuit_to_json(circuit)).circuit
    simulator = cirq.Simulator(seed=3)
    original = simulator.run(circuit, {"a": 0.7}, repetitions=50).measurements["m"]
    again = cirq.Simulator(seed=3).run(decoded, {"a": 0.7}, repetitions=50).measurements["m"]
    np.testing.assert_array_equal(original, again)


@pytest.mark.parametrize("name", sorted(crafted("x")))
def test_crafted_messages_are_refused_fast_by_name_and_run_nothing(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    text = crafted(str(marker))[name]
    start = time.perf_counter()
    with pytest.raises(CircuitError) as refused:
        decode_circuit(text)
    took = time.perf_counter() - start
    named = {"sympify_at_top": "unknown field(s) x", "sympify_in_exponent": "'sympy.Xor' is not accepted",
             "indexed_symbol": "'sympy.Indexed' is not accepted", "huge_power": "exponent must be a number",
             "repeated_subcircuit": "1000000000000 is outside"}[name]
    assert named in str(refused.value)
    assert took < 0.05, f"{name} took {took * 1000:.1f} ms to refuse"
    assert not marker.exists() and os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", sorted(crafted("x")))
def test_the_relays_screen_refuses_the_crafted_messages_without_cirq(name):
    with pytest.raises(CircuitError) as refused:
        screen_circuit(crafted("x")[name])
    named = {"sympify_at_top": "'sympy.Not'", "sympify_in_exponent": "'sympy.Xor'", "indexed_symbol": "'sympy.Indexed'",
             "huge_power": "exponent must be a number", "repeated_subcircuit": "operations with sub-circuit"}[name]
    assert named in str(refused.value)


def test_the_relays_screen_passes_every_accepted_type_and_counts_as_the_decoder():
    text = circuit_to_json(every_accepted_type())
    assert screen_circuit(text) == decode_circuit(text).shape.operations


def test_the_relay_imports_neither_cirq_nor_sympy():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import sys, hcqw.hetjob.relay; "
                           "print(sorted({'cirq', 'sympy'} & set(sys.modules)))"], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_the_code_message_of_the_issue_runs_code_through_cirq_read_json(tmp_path, monkeypatch):
    """The reason for the decoder: Cirq's own reader evaluates the string (so this test can fail)."""
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    try:
        cirq.read_json(json_text=crafted(str(marker))["sympify_in_exponent"])
    except Exception:  # what it builds is no gate exponent; the code has run by then
        pass
    assert marker.exists()


def test_sub_circuit_repetitions_count_against_the_operation_bound():
    body = cirq.FrozenCircuit(cirq.H(Q[0]), cirq.X(Q[1]))
    nested = cirq.FrozenCircuit(cirq.CircuitOperation(body, repetitions=1000))
    circuit = cirq.Circuit(cirq.CircuitOperation(nested, repetitions=1000), cirq.measure(Q[0], key="m"))
    assert decode_circuit(circuit_to_json(circuit)).shape.operations == 2_000_001
    with pytest.raises(CircuitError, match="exceed the limit of 1000000 operations"):
        decode_circuit(circuit_to_json(circuit), CircuitBounds(operations=1_000_000))


def test_shared_sub_circuits_are_counted_at_every_use():
    body = cirq.FrozenCircuit(cirq.H(Q[0]))
    circuit = cirq.Circuit(cirq.CircuitOperation(body, repetitions=5), cirq.CircuitOperation(body, repetitions=7))
    text = circuit_to_json(circuit)
    assert '"REF"' in text  # Cirq shares the body: the decoder resolves the reference
    assert decode_circuit(text).shape.operations == 12


@pytest.mark.parametrize("exponent, message", [
    ({"cirq_type": "sympy.Pow", "args": [{"cirq_type": "sympy.Symbol", "name": "a"}, 17]}, "magnitude at most 16"),
    ({"cirq_type": "sympy.Pow", "args": [2, 3]}, "power of a constant"),
    ({"cirq_type": "sympy.Integer", "i": 2 ** 70}, "exceeds the limit of 64"),
    ({"cirq_type": "sympy.Function", "args": []}, "'sympy.Function' is not accepted"),
    ({"cirq_type": "sympy.Symbol", "name": "x" * 300}, "300 characters"),
    (True, "got a boolean"),
    ("a", "expected a Cirq object, got a string"),
])
def test_parameter_expressions_are_bounded(exponent, message):
    data = json.loads(crafted("x")["huge_power"])
    data["moments"][0]["operations"][0]["gate"] = {"cirq_type": "XPowGate", "exponent": exponent, "global_shift": 0.0}
    with pytest.raises(CircuitError, match=message):
        decode_circuit(json.dumps(data))


def test_deep_expressions_and_nesting_are_refused():
    deep = {"cirq_type": "sympy.Symbol", "name": "a"}
    for _ in range(20):
        deep = {"cirq_type": "sympy.Add", "args": [deep, 1]}
    data = json.loads(crafted("x")["huge_power"])
    data["moments"][0]["operations"][0]["gate"]["exponent"] = deep
    with pytest.raises(CircuitError, match="depth 8"):
        decode_circuit(json.dumps(data))
    with pytest.raises(CircuitError, match="nested too deeply"):
        decode_circuit("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CircuitError, match="not a number a circuit may carry"):
        decode_circuit(json.dumps(data).replace('"global_shift": 0.0', '"global_shift": NaN'))


def test_the_size_is_bounded_before_parsing():
    with pytest.raises(CircuitError, match="exceeds the limit of 100"):
        decode_circuit(" " * 101, CircuitBounds(text_bytes=100))
    with pytest.raises(CircuitError, match="must be a Cirq JSON string"):
        decode_circuit(b"{}")


def test_refused_shapes_name_what_to_do():
    with pytest.raises(CircuitError, match="only qubits"):
        decode_circuit(circuit_to_json(cirq.Circuit(cirq.IdentityGate(qid_shape=(3,))(cirq.LineQid(0, 3)))))
    with pytest.raises(CircuitError, match="confusion maps"):
        decode_circuit(circuit_to_json(cirq.Circuit(cirq.MeasurementGate(
            1, "m", confusion_map={(0,): np.eye(2)}).on(Q[0]))))
    with pytest.raises(CircuitError, match="not unitary"):
        data = json.loads(circuit_to_json(cirq.Circuit(cirq.MatrixGate(np.eye(2))(Q[0]))))
        data["moments"][0]["operations"][0]["gate"]["matrix"] = [[1.0, 1.0], [0.0, 1.0]]
        decode_circuit(json.dumps(data))
    with pytest.raises(CircuitError, match="REF to a sub-circuit not defined"):
        data = json.loads(circuit_to_json(cirq.Circuit(cirq.CircuitOperation(cirq.FrozenCircuit(cirq.X(Q[0]))))))
        data["moments"][0]["operations"][0]["circuit"] = {"cirq_type": "REF", "key": 9}
        decode_circuit(json.dumps(data))
