"""The default backend: qsimcirq, with as many threads as the process has cores (qsim's default is 1)."""

from __future__ import annotations

import qsimcirq

from hcqw.device.backend import DeviceLimits, QuantumBackend, default_threads
from hcqw.device.work import Samples, WorkItem, check_samples


class QsimBackend(QuantumBackend):
    name = "qsim"

    def __init__(self, threads: int | None = None, seed: int | None = None, max_qubits: int = 30,
                 max_repetitions: int = 1_000_000):
        self.threads = threads or default_threads()
        self.limits = DeviceLimits(max_qubits=max_qubits, max_repetitions=max_repetitions)
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        options = qsimcirq.QSimOptions(cpu_threads=self.threads)
        self._simulator = qsimcirq.QSimSimulator(qsim_options=options, seed=seed)

    def _run(self, item: WorkItem) -> list[Samples]:
        results = self._simulator.run_sweep(item.circuit, list(item.params), repetitions=item.repetitions)
        return [check_samples(r.measurements) for r in results]
