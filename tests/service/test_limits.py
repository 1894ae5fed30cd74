"""The work cost model behind the limits (pure logic; the live refusals are in test_attacks)."""

from __future__ import annotations

import cirq
import pytest

from hcqw.device.work import WorkItem
from hcqw.service import protocol as P
from hcqw.service.limits import Cost, Shape, WorkLimits, check_item, check_run, item_cost

Q = cirq.LineQubit.range(4)


def test_a_non_terminal_measurement_costs_a_simulation_per_shot():
    terminal = cirq.Circuit(cirq.H.on_each(*Q), cirq.measure(*Q, key="m"))
    mid = cirq.Circuit(cirq.H(Q[0]), cirq.measure(Q[0], key="a"), cirq.H.on_each(*Q), cirq.measure(*Q, key="m"))
    limits = WorkLimits(sample_bit_seconds=0.0)  # the simulations alone
    once = item_cost(Shape.of(terminal), WorkItem.build(terminal, 100), limits)
    each = item_cost(Shape.of(mid), WorkItem.build(mid, 100), limits)
    assert (once.shots, once.result_bytes) == (100, 400)
    assert each.result_bytes == 500 and each.seconds >= 100 * once.seconds


def test_limits_name_the_option_that_raises_them():
    wide = cirq.Circuit(cirq.H.on_each(*Q), cirq.measure(*Q, key="m"))
    shape = Shape.of(wide)
    with pytest.raises(P.ProtocolError, match="--max-item-shots") as refused:
        check_item(shape, WorkItem.build(wide, 10, [{}] * 3), 0, WorkLimits(item_shots=20))
    assert refused.value.code == P.E_TOO_LARGE
    with pytest.raises(P.ProtocolError, match="--max-qubits"):
        check_item(shape, WorkItem.build(wide, 1), 0, WorkLimits(qubits=3))
    with pytest.raises(P.ProtocolError, match="--max-result-bytes"):
        check_run(Cost(shots=10, result_bytes=1000), WorkLimits(result_bytes=999))
    with pytest.raises(P.ProtocolError, match="--max-run-seconds"):
        check_run(Cost(seconds=11.0), WorkLimits(run_seconds=10))
