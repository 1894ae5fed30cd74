"""The reference backend: cirq's own simulator (slower; used to cross-check qsim in tests)."""

from __future__ import annotations

import cirq

from hcqw.device.backend import DeviceLimits, QuantumBackend
from hcqw.device.work import Samples, WorkItem, check_samples


class CirqBackend(QuantumBackend):
    name = "cirq"

    def __init__(self, threads: int | None = None, seed: int | None = None, max_qubits: int = 20,
                 max_repetitions: int = 1_000_000):
        # threads: accepted for parity with QsimBackend; cirq.Simulator is single-threaded.
        self.limits = DeviceLimits(max_qubits=max_qubits, max_repetitions=max_repetitions)
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        self._simulator = cirq.Simulator(seed=seed)

    def _run(self, item: WorkItem) -> list[Samples]:
        results = self._simulator.run_sweep(item.circuit, list(item.params), repetitions=item.repetitions)
        return [check_samples(r.measurements) for r in results]
