"""Timelines for the tests of hcqw.timeline: events by hand and a tiny real hybrid loop."""

from __future__ import annotations

from pathlib import Path

from hcqw.embedded import Workflow
from hcqw.timeline.events import Event
from hcqw.workflow import HybridLoop, RunContext


def ev(kind: str, wf: str, node: str, start: float, end: float | None = None, device: str = "qsim") -> Event:
    return Event(kind, wf, node, start, start if end is None else end, device if kind in ("hold", "exec") else "")


def hand_made() -> list[Event]:
    """Two workflows, split style. a: ready 0, holds 1-3 (exec 1.5-2.5), cpu 3-5, ready 5, holds 6-7 (exec 6-7).
    b: ready 0, holds 3-4 (exec 3-4), cpu 4-8. Device idle (no hold) during 0-1, 4-6; wait a/q1 = 1, a/q2 = 1, b/q1 = 3."""
    return [
        ev("ready", "a", "q1", 0), ev("ready", "b", "q1", 0),
        ev("hold", "a", "q1", 1, 3), ev("exec", "a", "q1", 1.5, 2.5), ev("cpu", "a", "c1", 3, 5),
        ev("ready", "a", "q2", 5), ev("hold", "a", "q2", 6, 7), ev("exec", "a", "q2", 6, 7),
        ev("hold", "b", "q1", 3, 4), ev("exec", "b", "q1", 3, 4), ev("cpu", "b", "c1", 4, 8),
    ]


def tiny_loop(iterations: int) -> HybridLoop:
    """Two-qubit Bell sampling; the core logs its ready, hold, exec and cpu events."""
    import cirq

    q = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.H(q[0]), cirq.CNOT(*q), cirq.measure(*q, key="m"))

    def classical_step(state: int, measured) -> int:
        bits = measured[0].measurements["m"]
        assert (bits[:, 0] == bits[:, 1]).all()  # a Bell pair
        return state + 1

    return HybridLoop("tiny", lambda: 0, lambda s, qpu: qpu.run(circuit, 20), classical_step, iterations, seed=3)


def make_workflows(runs: Path, count: int = 2, iterations: int = 3) -> list[Workflow]:
    return [Workflow(tiny_loop(iterations), RunContext(f"w{j}", runs / f"w{j}")) for j in range(count)]
