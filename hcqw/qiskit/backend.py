"""``Backend``: a Qiskit ``BackendV2`` on hcqw's device, for Qiskit's own ``BackendSamplerV2`` /
``BackendEstimatorV2`` (and anything else written against ``backend.run``).

Its ``Target`` is hcqw's fixed basis (``hcqw.qiskit.convert.GATES``, all-to-all, any number of
qubits up to the device's), so transpiling for it is exact. ``run(circuits, shots=..., memory=...,
seed_simulator=...)`` converts each (bound) circuit and runs them all in one device lease; the job
it returns (``HcqwJob``, a ``JobV1``) holds a ``qiskit.result.Result`` with counts and, per shot,
memory, as Qiskit's simulators report them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Measure, Reset
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.providers import BackendV2, JobStatus, JobV1, Options
from qiskit.result import Result
from qiskit.transpiler import Target

from hcqw.device.work import WorkItem
from hcqw.qiskit.convert import GATES, to_cirq
from hcqw.qiskit.lease import run_items

VERSION = "0.1.0"


def hcqw_target() -> Target:
    """The basis every hcqw device runs, on any qubits (``num_qubits=None``: circuits keep their width)."""
    target = Target(description="hcqw: gates with exact Cirq counterparts", num_qubits=None)
    standard = get_standard_gate_name_mapping()
    for name in GATES:
        target.add_instruction(standard[name], properties=None, name=name)
    target.add_instruction(Measure(), properties=None)
    target.add_instruction(Reset(), properties=None)
    target.add_instruction(standard["delay"], properties=None)
    return target


class Backend(BackendV2):
    """``Backend(seed=None)``: this process's hcqw device (``hcqw.qpu.open_qpu``) as a BackendV2.

    ``seed`` is the default of ``run``'s ``seed_simulator``."""

    def __init__(self, name: str = "hcqw", seed: int | None = None):
        super().__init__(name=name, description="hcqw: this process's quantum device (open_qpu)",
                         backend_version=VERSION)
        self._target = hcqw_target()
        self.set_options(seed_simulator=seed)

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> None:
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=1024, memory=False, seed_simulator=None)

    def run(self, run_input: QuantumCircuit | Sequence[QuantumCircuit], **options) -> "HcqwJob":
        circuits = [run_input] if isinstance(run_input, QuantumCircuit) else list(run_input)
        unknown = set(options) - set(self.options.__dict__)
        if unknown:
            raise ValueError(f"{self.name} does not take options {sorted(unknown)}; it takes {sorted(self.options.__dict__)}")
        # None means "the backend's setting" (BackendSamplerV2 passes seed_simulator=None unless told a seed)
        settings = {**self.options.__dict__, **{name: value for name, value in options.items() if value is not None}}
        shots = int(settings["shots"])
        if shots <= 0:
            raise ValueError(f"shots must be positive, got {shots}")
        converted = [to_cirq(circuit) for circuit in circuits]
        for circuit, c in zip(circuits, converted):
            if c.parameters:
                raise ValueError(f"circuit {circuit.name!r} has unbound parameters {list(c.parameters)}; bind them "
                                 "(assign_parameters) before backend.run")
        to_run = [WorkItem(c.circuit, shots) for c in converted if c.measures]
        outcomes = iter(run_items(to_run, settings["seed_simulator"]))
        experiments = [_experiment(circuit, c, next(outcomes)[0] if c.measures else None, shots, settings)
                       for circuit, c in zip(circuits, converted)]
        job_id = str(uuid.uuid4())
        result = Result.from_dict({"backend_name": self.name, "backend_version": VERSION, "qobj_id": job_id,
                                   "job_id": job_id, "success": True, "results": experiments})
        return HcqwJob(self, job_id, result)


def _experiment(circuit: QuantumCircuit, converted, samples, shots: int, settings: dict) -> dict:
    """One circuit's result, in the layout of Qiskit's simulators: memory is the hex of all classical
    bits, bit i of the value being classical bit i."""
    values = np.zeros(shots, dtype=object)
    if samples is not None:
        clbits: dict[int, tuple[str, int]] = {}
        for register in circuit.cregs:
            for bit, where in zip(register, converted.registers[register.name]):
                if where is not None:
                    clbits[circuit.find_bit(bit).index] = where
        for index, (key, column) in clbits.items():
            values += samples[key][:, column].astype(object) << index
    memory = [hex(int(v)) for v in values]
    data: dict = {"counts": dict(Counter(memory))}
    if settings.get("memory"):
        data["memory"] = memory
    header = {"name": circuit.name, "creg_sizes": [[reg.name, reg.size] for reg in circuit.cregs],
              "memory_slots": circuit.num_clbits, "n_qubits": circuit.num_qubits, "metadata": circuit.metadata}
    return {"shots": shots, "success": True, "data": data, "header": header, "meas_level": 2,
            "seed_simulator": settings.get("seed_simulator")}


class HcqwJob(JobV1):
    """A finished ``Backend.run``: the circuits ran when it was made (one lease), so it is DONE at once."""

    def __init__(self, backend: Backend, job_id: str, result: Result):
        super().__init__(backend, job_id)
        self._result = result

    def submit(self) -> None:
        raise RuntimeError("an HcqwJob runs when Backend.run makes it; there is nothing left to submit")

    def result(self, timeout: float | None = None) -> Result:
        return self._result

    def status(self) -> JobStatus:
        return JobStatus.DONE
