"""The backend contract: what any quantum device (simulator or vendor) implements."""

from __future__ import annotations

import abc
import enum
import hashlib
import importlib
import os
from dataclasses import dataclass
from typing import Any, Sequence

from hcqw.device.work import Samples, WorkItem
from hcqw.errors import CircuitError, DeviceError


class DeviceStatus(str, enum.Enum):
    """What a device is doing; the states a real QPU's API reports (Quantum Inspire's four)."""

    IDLE = "idle"
    EXECUTING = "executing"
    CALIBRATING = "calibrating"
    OFFLINE = "offline"

    @property
    def accepts_work(self) -> bool:
        return self in (DeviceStatus.IDLE, DeviceStatus.EXECUTING)


@dataclass(frozen=True)
class DeviceLimits:
    """What a device can take in one work item."""

    max_qubits: int
    max_repetitions: int
    max_sweep_points: int = 4096


class QuantumBackend(abc.ABC):
    """Executes work items. Implementations hold no scheduling state: arbitration
    (who may use the device now) lives above them, in ``LocalDevice`` or the QPU service."""

    name: str
    limits: DeviceLimits

    @abc.abstractmethod
    def reseed(self, seed: int | None) -> None:
        """Restart the sampling RNG (simulators), so a node's results do not depend on what ran before it."""

    @abc.abstractmethod
    def _run(self, item: WorkItem) -> list[Samples]:
        """Run one validated work item; one ``Samples`` per sweep point."""

    def execute(self, items: Sequence[WorkItem]) -> list[list[Samples]]:
        """Validate every item first (so a bad item fails the batch before any device time is spent), then run."""
        for index, item in enumerate(items):
            self.validate(item, index)
        return [self._run(item) for item in items]

    def validate(self, item: WorkItem, index: int = 0) -> None:
        """Raise ``CircuitError`` naming the problem if the device cannot run ``item``."""
        import cirq

        where = f"work item {index}"
        circuit = item.circuit
        if not isinstance(circuit, cirq.AbstractCircuit):
            raise CircuitError(
                f"{where}: expected a cirq.Circuit, got {type(circuit).__name__}; "
                "build circuits with cirq or load Cirq JSON with hcqw.codec.circuit_from_json"
            )
        if isinstance(item.repetitions, bool) or not isinstance(item.repetitions, int):
            raise CircuitError(f"{where}: repetitions must be an int, got {item.repetitions!r}")
        if not 0 < item.repetitions <= self.limits.max_repetitions:
            raise CircuitError(
                f"{where}: repetitions={item.repetitions} is outside 1..{self.limits.max_repetitions} "
                f"allowed by device {self.name!r}"
            )
        width = len(circuit.all_qubits())
        if width > self.limits.max_qubits:
            raise CircuitError(
                f"{where}: circuit acts on {width} qubits but device {self.name!r} has {self.limits.max_qubits}; "
                "use fewer qubits or a larger device"
            )
        if not circuit.has_measurements():
            raise CircuitError(f"{where}: circuit has no measurements; add cirq.measure(...) on the qubits to read")
        if len(item.params) > self.limits.max_sweep_points:
            raise CircuitError(
                f"{where}: {len(item.params)} sweep points exceed the device limit of {self.limits.max_sweep_points}"
            )
        missing = {s.name for s in cirq.parameter_symbols(circuit)} - set().union(*(p.keys() for p in item.params))
        if missing:
            raise CircuitError(f"{where}: circuit has unresolved parameters {sorted(missing)}; pass values in params")


def batch_seed(seed: int, batch: int) -> int:
    """The RNG seed of a lease's ``batch``-th batch.

    Seeding each batch (not each lease) keeps a node's samples identical whether its
    batches run back to back (a local lease, a hetjob gateway) or interleaved with other
    sessions' work on a shared service."""
    digest = hashlib.sha256(f"{seed}:{batch}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def default_threads() -> int:
    """Cores this process may use: the SLURM allocation or the affinity mask, not the whole machine."""
    slurm = os.environ.get("SLURM_CPUS_ON_NODE") or os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit():
        return max(1, int(slurm))
    return max(1, len(os.sched_getaffinity(0)))


# name -> "module:class": the one list of simulators a device can run (``hcqw run --simulator``,
# ``hcqw device serve --simulator``, a gateway's ``NodeJobSettings.simulator``, ``$HCQW_SIMULATOR``).
# A vendor backend registers here (or is passed as "module:class").
SIMULATORS = {
    "qsim": "hcqw.device.qsim:QsimBackend",
    "cirq": "hcqw.device.cirq_sim:CirqBackend",
    "modelled": "hcqw.device.modelled:ModelledBackend",  # qsim's samples, a real QPU's timing (benchmarks)
}


def make_backend(name: str = "qsim", **options: Any) -> QuantumBackend:
    """Create a backend by registered simulator name or ``module:Class`` path."""
    target = SIMULATORS.get(name, name)
    if ":" not in target:
        raise DeviceError(f"unknown simulator {name!r}; choose one of {sorted(SIMULATORS)} or give 'module:Class'")
    module_name, class_name = target.split(":", 1)
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise DeviceError(f"cannot load simulator {name!r} ({target}): {err}") from None
    return cls(**options)
