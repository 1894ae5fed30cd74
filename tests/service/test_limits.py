"""The work cost model behind the limits (pure logic; the live refusals are in test_attacks)."""

from __future__ import annotations

import cirq
import pytest

from hcqw.codec import Shape, decode_circuit
from hcqw.device.work import WorkItem
from hcqw.service import protocol as P
from hcqw.service.limits import Cost, WorkLimits, check_item, check_run, item_cost

Q = cirq.LineQubit.range(4)


def shape_of(circuit: cirq.Circuit) -> Shape:
    """As the service sees a circuit: counted by its decoder."""
    return decode_circuit(cirq.to_json(circuit)).shape


def test_a_non_terminal_measurement_costs_a_simulation_per_shot():
    terminal = cirq.Circuit(cirq.H.on_each(*Q), cirq.measure(*Q, key="m"))
    mid = cirq.Circuit(cirq.H(Q[0]), cirq.measure(Q[0], key="a"), cirq.H.on_each(*Q), cirq.measure(*Q, key="m"))
    limits = WorkLimits(sample_bit_seconds=0.0)  # the simulations alone
    once = item_cost(shape_of(terminal), WorkItem.build(terminal, 100), limits)
    each = item_cost(shape_of(mid), WorkItem.build(mid, 100), limits)
    assert (once.shots, once.result_bytes) == (100, 400)
    assert each.result_bytes == 500 and each.seconds >= 100 * once.seconds


def test_limits_name_the_option_that_raises_them():
    wide = cirq.Circuit(cirq.H.on_each(*Q), cirq.measure(*Q, key="m"))
    shape = shape_of(wide)
    with pytest.raises(P.ProtocolError, match="--max-item-shots") as refused:
        check_item(shape, WorkItem.build(wide, 10, [{}] * 3), 0, WorkLimits(item_shots=20))
    assert refused.value.code == P.E_TOO_LARGE
    with pytest.raises(P.ProtocolError, match="--max-qubits"):
        check_item(shape, WorkItem.build(wide, 1), 0, WorkLimits(qubits=3))
    with pytest.raises(P.ProtocolError, match="--max-result-bytes"):
        check_run(Cost(shots=10, result_bytes=1000), WorkLimits(result_bytes=999))
    with pytest.raises(P.ProtocolError, match="--max-run-seconds"):
        check_run(Cost(seconds=11.0), WorkLimits(run_seconds=10))


def test_a_repeated_sub_circuit_is_priced_at_every_repetition():
    body = cirq.FrozenCircuit(cirq.H.on_each(*Q))
    once = cirq.Circuit(cirq.CircuitOperation(body), cirq.measure(*Q, key="m"))
    many = cirq.Circuit(cirq.CircuitOperation(body, repetitions=1000), cirq.measure(*Q, key="m"))
    assert (shape_of(once).operations, shape_of(many).operations) == (5, 4001)
    limits = WorkLimits()
    assert item_cost(shape_of(many), WorkItem.build(many, 1), limits).seconds > \
        500 * item_cost(shape_of(once), WorkItem.build(once, 1), limits).seconds
