"""Small hybrid loops for the hetjob tests, importable by job scripts (``tests.support.loops:make``)."""

from __future__ import annotations

import time
from pathlib import Path

from hcqw.device import DeviceLease
from hcqw.workflow import HybridLoop

BELL = None


def _bell_json() -> str:
    """A 2-qubit Bell circuit as Cirq JSON text: the step then needs no cirq import."""
    global BELL
    if BELL is None:
        import cirq

        q = cirq.LineQubit.range(2)
        BELL = cirq.to_json(cirq.Circuit(cirq.H(q[0]), cirq.CNOT(*q), cirq.measure(*q, key="m")))
    return BELL


def make(iterations: int = 1, shots: int = 100, hold: float = 0.0, after_block: float = 0.0,
         fail_in_block: bool = False, seed: int = 3, runs: int = 1, pause: float = 0.0,
         classical: float = 0.0, hold_while: str = "") -> HybridLoop:
    """``runs`` batches ``pause`` seconds apart (a block that keeps using the device), the last one's counts
    returned; ``hold``: seconds the step keeps the device after its runs; ``after_block``: classical seconds
    after closing the device context early, still inside the node; ``fail_in_block``: raise while holding;
    ``classical``: seconds the classical step takes; ``hold_while``: a path: the step keeps using the device
    (a run per second) while that file exists -- a block as long as a test wants, which a re-run with the
    same parameters need not repeat."""

    def quantum_step(state: int, qpu: DeviceLease) -> list:
        from hcqw.device.work import WorkItem

        for run in range(runs):
            if run:
                time.sleep(pause)
            samples = qpu.run_batch([WorkItem(circuit=_bell_json(), repetitions=shots, params=({},))])
        while hold_while and Path(hold_while).exists():
            time.sleep(1.0)
            qpu.run_batch([WorkItem(circuit=_bell_json(), repetitions=shots, params=({},))])
        time.sleep(hold)
        if fail_in_block:
            raise RuntimeError("user step failed inside the quantum block")
        qpu.close()  # the quantum block ends here ...
        time.sleep(after_block)  # ... and the node's classical remainder runs on in component 0
        return [int(s["m"].sum()) for s in samples[0]]

    def classical_step(state: int, measured: list) -> int:
        time.sleep(classical)
        return state + sum(measured)

    return HybridLoop(name="hetjob-test", initial_state=lambda: 0, quantum_step=quantum_step,
                      classical_step=classical_step, iterations=iterations, seed=seed)
