"""``Sampler``: Qiskit's SamplerV2 on hcqw's device.

One ``run()`` is one device lease (one quantum block); one PUB is one work item: its circuit is
converted once (``hcqw.qiskit.convert``) and its parameter bindings are the sweep points. Results
are Qiskit's containers: a ``SamplerPubResult`` per PUB whose ``DataBin`` holds a ``BitArray`` per
classical register.

A PUB's circuit may also be OpenQASM 2/3 text (parsed on the client by ``hcqw.qasm``); its
measurement keys are then the registers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from qiskit.primitives import BaseSamplerV2, PrimitiveResult, SamplerPubResult
from qiskit.primitives.containers import BitArray, DataBin
from qiskit.primitives.containers.bindings_array import BindingsArray
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.primitives.primitive_job import PrimitiveJob

from hcqw.device.provider import DeviceLease
from hcqw.device.work import WorkItem
from hcqw.qiskit.convert import ConvertedCircuit, to_cirq
from hcqw.qiskit.lease import Seed, run_items, sweep_points


@dataclass(frozen=True)
class _Prepared:
    """A PUB ready for the device: its work item (None when it measures nothing) and how to read results back."""

    item: WorkItem | None
    converted: ConvertedCircuit
    shape: tuple[int, ...]
    shots: int
    metadata: dict


class Sampler(BaseSamplerV2):
    """SamplerV2 on hcqw: ``Sampler(default_shots=1024, seed=None).run(pubs, shots=None)``.

    ``seed``: an int makes every run sample the same outcomes on every kind of device (local,
    service, a quantum node's gateway); a numpy Generator seeds each run with a fresh draw.
    ``lease``: run on this open device lease (a ``HybridLoop`` quantum step's ``qpu``) instead of
    opening one per run; it stays open, and its own seed applies."""

    def __init__(self, *, default_shots: int = 1024, seed: Seed = None, lease: DeviceLease | None = None):
        self._default_shots = default_shots
        self._seed = seed
        self._lease = lease

    @property
    def default_shots(self) -> int:
        return self._default_shots

    @property
    def seed(self) -> Seed:
        return self._seed

    def run(self, pubs: Iterable, *, shots: int | None = None) -> PrimitiveJob[PrimitiveResult[SamplerPubResult]]:
        if shots is None:
            shots = self._default_shots
        prepared = [_prepare(pub, shots) for pub in _check_pubs(pubs)]
        if any(not p.converted.registers for p in prepared):
            warnings.warn("One of your circuits has no output classical registers and so the result will be empty. "
                          "Did you mean to add measurement instructions?", UserWarning, stacklevel=2)
        job = PrimitiveJob(self._run, prepared)
        job._submit()
        return job

    def _run(self, prepared: list[_Prepared]) -> PrimitiveResult[SamplerPubResult]:
        to_run = [p for p in prepared if p.item is not None]
        outcomes = iter(run_items([p.item for p in to_run], self._seed, self._lease))
        results = [_pub_result(p, next(outcomes) if p.item is not None else None) for p in prepared]
        return PrimitiveResult(results, metadata={"version": 2})


def _check_pubs(pubs) -> list:
    # Qiskit's own message for a lone circuit or PUB passed without a list (its tests match it).
    if isinstance(pubs, str) or not isinstance(pubs, Iterable):
        raise ValueError(f"An invalid Sampler pub-like was given ({type(pubs)}). If you want to run a single pub, "
                         "you need to wrap it with `[]` like `sampler.run([pub])` instead of `sampler.run(pub)`.")
    return list(pubs)


def _prepare(pub, shots: int) -> _Prepared:
    if _is_qasm(pub) or isinstance(pub, tuple) and pub and _is_qasm(pub[0]):
        return _prepare_qasm(pub if isinstance(pub, tuple) else (pub,), shots)
    pub = SamplerPub.coerce(pub, shots)
    converted = to_cirq(pub.circuit)
    values = pub.parameter_values.as_array(pub.circuit.parameters)
    return _prepared(converted, sweep_points(converted.parameters, values), pub.shape, pub.shots,
                     {"shots": pub.shots, "circuit_metadata": pub.circuit.metadata})


def _prepared(converted: ConvertedCircuit, points, shape, shots: int, metadata: dict) -> _Prepared:
    item = WorkItem(converted.circuit, shots, points) if converted.measures else None
    return _Prepared(item, converted, tuple(shape), shots, metadata)


def _pub_result(prepared: _Prepared, outcomes) -> SamplerPubResult:
    converted, shape, shots = prepared.converted, prepared.shape, prepared.shots
    arrays = {name: np.zeros((*shape, shots, len(bits)), dtype=np.uint8) for name, bits in converted.registers.items()}
    for index, samples in zip(np.ndindex(*shape), outcomes or ()):
        for name, bits in converted.registers_from_samples(samples, shots).items():
            arrays[name][index] = bits
    data = {name: BitArray.from_bool_array(array, order="little") for name, array in arrays.items()}
    return SamplerPubResult(DataBin(**data, shape=shape), metadata=prepared.metadata)


def _is_qasm(text) -> bool:
    if not isinstance(text, str):
        return False
    lines = (line.strip() for line in text.splitlines())
    first = next((line for line in lines if line and not line.startswith("//")), "")
    return first.startswith("OPENQASM")


def _prepare_qasm(pub: tuple, shots: int) -> _Prepared:
    """A PUB ``(qasm_text[, {name: values} | None[, shots]])``: parameters are the text's inputs, by name."""
    if len(pub) > 3:
        raise ValueError(f"a QASM pub is (text, parameter values, shots), got {len(pub)} items")
    text, values, pub_shots = (*pub, None, None)[:3]
    from hcqw.qasm import parse  # OpenQASM 2/3 text -> cirq.Circuit, parsed here on the client

    converted = ConvertedCircuit.from_cirq(parse(text))
    bindings = BindingsArray.coerce(values or {})
    missing = set(converted.parameters) - {name for key in bindings.data for name in key}
    if missing:
        raise ValueError(f"the QASM circuit's inputs {sorted(missing)} have no values; pass {{name: values}} as the "
                         "pub's second item")
    shots = shots if pub_shots is None else int(pub_shots)
    if shots <= 0:
        raise ValueError(f"shots must be positive, got {shots}")
    points = sweep_points(converted.parameters, bindings.as_array(converted.parameters))
    return _prepared(converted, points, bindings.shape, shots, {"shots": shots})
