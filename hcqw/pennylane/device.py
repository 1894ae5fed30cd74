"""``hcqw.qpu``: hcqw's quantum device as a PennyLane device (the ``pennylane.devices.Device`` API).

::

    dev = qml.device("hcqw.qpu", wires=2, shots=1000, seed=7)

It samples: every tape needs finite shots. ``preprocess_transforms`` turns a tape into what the
device runs -- mid-circuit measurements deferred, non-commuting measurements split, observables
diagonalised, every measurement taken from samples of its wires, broadcasts expanded, operations
decomposed to the gates of ``hcqw.pennylane.convert`` -- and ``execute`` converts the batch to Cirq,
runs it, and computes each measurement (expval, var, probs, sample, counts) from the samples.

One ``execute`` batch is one device lease, opened with ``hcqw.qpu.open_qpu`` and closed when the
batch is done: one quantum block, on whichever device the process has (the embedded local
device, a QPU service, or, inside a quantum node on SLURM, the job's gateway -- closing the lease
frees the qpu component). A parameter-shift gradient is one batch. Tapes that differ only in their
angles are one work item, run over a sweep. Code that already holds a lease (a ``HybridLoop``'s
quantum step) passes it as ``lease=``: the device then runs every batch on it and never closes it.
A script run as a quantum node must do that for more than one batch (``with open_qpu() as qpu:``),
since there the node's qpu component ends with its first lease.
"""

from __future__ import annotations

import numpy as np
import pennylane as qml
from pennylane.devices import Device, ExecutionConfig
from pennylane.devices.preprocess import (
    decompose,
    device_resolve_dynamic_wires,
    measurements_from_samples,
    validate_device_wires,
    validate_measurements,
)
from pennylane.exceptions import DeviceError
from pennylane.transforms import broadcast_expand, defer_measurements, split_non_commuting
from pennylane.transforms.core import CompilePipeline

from hcqw.device.work import WorkItem
from hcqw.pennylane.convert import MEASUREMENT_KEY, SUPPORTED, supports, tape_to_circuit
from hcqw.qpu import open_qpu

_SEED_BOUND = 2**31  # lease seeds travel as JSON ints >= 0 (hcqw.service.protocol)


def _analytic_refused(name: str) -> DeviceError:
    return DeviceError(f"analytic mode (shots=None) is not supported by {name}: it samples a quantum device. Give "
                       f"shots, e.g. qml.device('{name}', wires=2, shots=1000) or qml.set_shots(qnode, shots=1000)")


@qml.transform
def require_shots(tape, name: str = "hcqw.qpu"):
    """Refuse a tape that measures without finite shots: the device samples, it has no exact mode."""
    if tape.measurements and not tape.shots:
        raise _analytic_refused(name)
    return (tape,), lambda results: results[0]


@qml.transform
def measure_all_tape_wires(tape):
    """On a device made without wires, a measurement of "all wires" (``qml.probs()``) is of the tape's wires."""
    if any(not mp.obs and not mp.wires for mp in tape.measurements) and not tape.wires:
        raise DeviceError("hcqw.qpu: a measurement without wires on a circuit without wires; name the wires "
                          "(qml.probs(wires=[0, 1])) or give the device its wires (qml.device('hcqw.qpu', wires=2))")
    return validate_device_wires(tape, wires=tape.wires, name="hcqw.qpu")


@qml.transform
def diagonalise_matrix_observables(tape):
    """Measure observables without a Pauli form (``Hermitian``, ``Projector``, ...) in their eigenbasis.

    ``measurements_from_samples`` diagonalises Pauli words only and would read any other observable's
    eigenvalues off computational-basis samples; here such an observable's own diagonalising gates are
    appended and its measurement becomes one of its eigenvalues on its wires."""
    gates, seen, measurements = [], {}, []
    for mp in tape.measurements:
        obs = mp.obs
        if obs is None or obs.pauli_rep is not None:
            measurements.append(mp)
            continue
        if obs.hash not in seen:
            seen[obs.hash] = obs
            gates += obs.diagonalizing_gates()
        measurements.append(type(mp)(eigvals=obs.eigvals(), wires=obs.wires))
    if not seen:
        return (tape,), lambda results: results[0]
    for obs in seen.values():
        others = [w for mp in tape.measurements if mp.obs is None or mp.obs.hash != obs.hash for w in mp.wires]
        if set(obs.wires) & set(others):
            raise DeviceError(f"hcqw.qpu cannot measure {obs} together with other measurements on its wires "
                              f"{list(obs.wires)}; measure them in separate QNodes")
    return (tape.copy(operations=tape.operations + gates, measurements=measurements),), lambda results: results[0]


class HcqwDevice(Device):
    """hcqw's quantum device for PennyLane.

    Args:
        wires: the device's wires (a number or labels). Without them, each circuit runs on its own wires.
        shots: default shots of the QNodes on this device (PennyLane prefers ``qml.set_shots``).
            Finite shots are required: analytic mode (``shots=None``) is refused with ``DeviceError``.
        seed: an int makes the samples reproducible: each ``execute`` batch opens its lease with the
            next seed drawn from ``numpy.random.default_rng(seed)``. ``None``: unseeded.
        lease: an open ``hcqw.device.DeviceLease`` to run every batch on (e.g. the ``qpu`` a
            ``HybridLoop`` quantum step gets); the device does not close it, and its own seed applies.
        workflow: workflow name of the leases this device opens (default ``$HCQW_WORKFLOW``).
        node: node name of the leases this device opens (default ``$HCQW_NODE``).
        timeout: seconds to wait for the device per batch (``hcqw.qpu.open_qpu``).
    """

    name = "hcqw.qpu"

    def __init__(self, wires=None, shots=None, seed: int | None = None, *, lease=None, workflow: str | None = None,
                 node: str | None = None, timeout: float | None = None):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise DeviceError(f"hcqw.qpu: seed must be an int or None, got {type(seed).__name__}")
        super().__init__(wires=wires, shots=shots)
        self._seeds = np.random.default_rng(seed) if seed is not None else None
        self._lease = lease
        self._workflow, self._node, self._timeout = workflow, node, timeout

    def preprocess_transforms(self, execution_config: ExecutionConfig | None = None) -> CompilePipeline:
        program = CompilePipeline()
        program.add_transform(require_shots, name=self.name)
        if self.wires:
            program.add_transform(validate_device_wires, wires=self.wires, name=self.name)
        else:
            program.add_transform(measure_all_tape_wires)
        program.add_transform(validate_measurements, name=self.name)
        program.add_transform(defer_measurements, allow_postselect=False)
        program.add_transform(split_non_commuting)
        program.add_transform(diagonalise_matrix_observables)
        program.add_transform(measurements_from_samples)  # diagonalises; one sample() of the measured wires
        program.add_transform(decompose, stopping_condition=supports, target_gates=_TARGET_GATES,
                              skip_initial_state_prep=False, device_wires=self.wires, name=self.name)
        # work wires a decomposition allocates go on unused device wires (fresh ones, not reset mid-circuit)
        program.add_transform(device_resolve_dynamic_wires, wires=self.wires, allow_resets=False)
        program.add_transform(broadcast_expand)
        return program

    def execute(self, circuits, execution_config: ExecutionConfig | None = None):
        single = isinstance(circuits, qml.tape.QuantumScript)
        tapes = (circuits,) if single else tuple(circuits)
        results = self._run(tapes)
        if self.tracker.active:
            self.tracker.update(batches=1)
            self.tracker.record()
            for tape, result in zip(tapes, results):
                self.tracker.update(executions=1, shots=tape.shots.total_shots, results=result)
                self.tracker.record()
        return results[0] if single else results

    def _run(self, tapes) -> tuple:
        """Convert, group equal circuits into one work item each, run them in one lease, then measure."""
        if any(tape.measurements and not tape.shots for tape in tapes):
            raise _analytic_refused(self.name)
        converted = [tape_to_circuit(tape, self.wires or tape.wires) for tape in tapes]
        groups: dict[tuple, list[int]] = {}
        for index, (tape, conv) in enumerate(zip(tapes, converted)):
            if conv.measured_wires:
                groups.setdefault((conv.circuit, tape.shots.total_shots), []).append(index)
        # a tape measuring no wire (an expval of the identity) still has one empty sample per shot
        samples = {i: np.zeros((tape.shots.total_shots, 0), dtype=np.int8) for i, tape in enumerate(tapes) if tape.shots}
        if groups:
            items = [WorkItem.build(circuit.unfreeze(), shots, [converted[i].values for i in members])
                     for (circuit, shots), members in groups.items()]
            for members, points in zip(groups.values(), self._run_items(items)):
                for index, point in zip(members, points):
                    samples[index] = point[MEASUREMENT_KEY]
        return tuple(_measure(tape, samples.get(i), converted[i].measured_wires) for i, tape in enumerate(tapes))

    def _run_items(self, items: list[WorkItem]) -> list:
        if self._lease is not None:
            return self._lease.run_batch(items)
        seed = None if self._seeds is None else int(self._seeds.integers(_SEED_BOUND))
        lease = open_qpu(self._workflow, self._node, seed=seed, timeout=self._timeout)
        try:
            return lease.run_batch(items)
        finally:
            lease.close()


# What `decompose` aims for (the graph decomposition system needs names; `supports` is the final word).
_TARGET_GATES = SUPPORTED | {"QubitUnitary"}


def _measure(tape, samples: np.ndarray | None, wires: tuple):
    """The tape's results from the samples of its measured wires, shaped as PennyLane returns them."""
    if not tape.measurements:
        return ()
    wire_order = qml.wires.Wires(wires)
    per_bin = []
    for lower, upper in tape.shots.bins():
        chunk = samples[lower:upper]
        values = tuple(mp.process_samples(chunk, wire_order) for mp in tape.measurements)
        per_bin.append(values[0] if len(values) == 1 else values)
    return tuple(per_bin) if tape.shots.has_partitioned_shots else per_bin[0]
