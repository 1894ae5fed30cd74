"""``Estimator``: Qiskit's EstimatorV2 on hcqw's sampling device.

One ``run()`` is one device lease; one PUB is one work item. The PUB's Pauli terms (of all its
observables) are grouped qubit-wise commuting; the circuit is converted once and followed, on each
qubit an observable touches, by ``Rx(b_q)`` and ``Ry(a_q)`` whose symbols select the group's basis
(Z: 0, 0; X: a = -pi/2; Y: b = pi/2). The sweep is every parameter binding times every group, so
all groups of all bindings run as one circuit; each sweep point takes ``ceil(1 / precision**2)``
shots. ``evs`` are the sampled means, ``stds`` their standard errors (terms of one group share
shots, so their covariance is in it; groups are independent).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import cirq
import numpy as np
import sympy
from qiskit.primitives import BaseEstimatorV2, PrimitiveResult, PubResult
from qiskit.primitives.containers import DataBin
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.primitive_job import PrimitiveJob
from qiskit.quantum_info import PauliList

from hcqw.device.provider import DeviceLease
from hcqw.device.work import WorkItem
from hcqw.qiskit.convert import UnsupportedCircuit, to_cirq
from hcqw.qiskit.lease import Seed, run_items, sweep_points

DEFAULT_PRECISION = 0.015625  # Qiskit's StatevectorEstimator / BackendEstimatorV2 default: 4096 shots
BASIS_KEY = "hcqw_estimator"  # the measurement key of the basis-rotated qubits
_ANGLES = {"Z": (0.0, 0.0), "I": (0.0, 0.0), "X": (-np.pi / 2, 0.0), "Y": (0.0, np.pi / 2)}  # (a: Ry, b: Rx)


@dataclass(frozen=True)
class _Plan:
    """One PUB's work: the item, and per observable its (group, coefficient, qubit mask) terms."""

    item: WorkItem
    pub: EstimatorPub
    shots: int
    groups: int
    active: tuple[int, ...]  # qubits measured, in the key's column order
    observables: list[tuple[float, list[tuple[int, float, np.ndarray]]]]  # (identity part, terms), flat order


class Estimator(BaseEstimatorV2):
    """EstimatorV2 on hcqw: ``Estimator(default_precision=0.015625, seed=None).run(pubs, precision=None)``.

    ``seed`` and ``lease`` as for ``hcqw.qiskit.Sampler``."""

    def __init__(self, *, default_precision: float = DEFAULT_PRECISION, seed: Seed = None,
                 lease: DeviceLease | None = None):
        self._default_precision = default_precision
        self._seed = seed
        self._lease = lease

    @property
    def default_precision(self) -> float:
        return self._default_precision

    @property
    def seed(self) -> Seed:
        return self._seed

    def run(self, pubs: Iterable, *, precision: float | None = None) -> PrimitiveJob[PrimitiveResult[PubResult]]:
        if precision is None:
            precision = self._default_precision
        plans = [_plan(EstimatorPub.coerce(pub, precision)) for pub in pubs]
        job = PrimitiveJob(self._run, plans)
        job._submit()
        return job

    def _run(self, plans: list[_Plan]) -> PrimitiveResult[PubResult]:
        outcomes = run_items([plan.item for plan in plans], self._seed, self._lease)
        return PrimitiveResult([_result(plan, samples) for plan, samples in zip(plans, outcomes)],
                               metadata={"version": 2})


def _plan(pub: EstimatorPub) -> _Plan:
    if pub.precision is None or pub.precision <= 0:
        raise ValueError(f"precision must be positive, got {pub.precision}")
    shots = math.ceil(1.0 / pub.precision**2)
    observables = [_pauli_terms(obs, pub.circuit.num_qubits) for obs in pub.observables.ravel().tolist()]
    labels = sorted({label for _, terms in observables for label, _ in terms})
    groups = PauliList(labels).group_qubit_wise_commuting() if labels else [PauliList(["I" * pub.circuit.num_qubits])]
    group_of: dict[str, int] = {}
    for index, group in enumerate(groups):
        for label in group.to_labels():
            group_of.setdefault(label, index)
    # qubits any term acts on; Qiskit labels read qubit n-1 ... 0
    active = tuple(q for q in range(pub.circuit.num_qubits) if any(label[-1 - q] != "I" for label in labels))
    bases = [_group_basis(group, pub.circuit.num_qubits) for group in groups]

    converted = to_cirq(pub.circuit)
    qubits = [cirq.LineQubit(q) for q in active]
    a = {q: sympy.Symbol(f"{BASIS_KEY}_a{q}") for q in active}
    b = {q: sympy.Symbol(f"{BASIS_KEY}_b{q}") for q in active}
    clashes = {s.name for s in (*a.values(), *b.values())} & set(converted.parameters)
    if clashes:
        raise UnsupportedCircuit(f"parameter names {sorted(clashes)} are reserved by hcqw's Estimator; rename them")
    circuit = converted.circuit + cirq.Circuit(
        [cirq.rx(b[q]).on(cirq.LineQubit(q)) for q in active],
        [cirq.ry(a[q]).on(cirq.LineQubit(q)) for q in active],
        cirq.measure(*qubits, key=BASIS_KEY) if qubits else [])
    if not qubits:  # only identity terms: nothing to measure, but the item still needs a measurement
        circuit += cirq.measure(cirq.LineQubit(0), key=BASIS_KEY)

    values = pub.parameter_values.as_array(pub.circuit.parameters)
    points = []
    for point in sweep_points(converted.parameters, values):
        for basis in bases:
            rotations = {}
            for q in active:
                angle_a, angle_b = _ANGLES[basis[q]]
                rotations[a[q].name], rotations[b[q].name] = angle_a, angle_b
            points.append({**point, **rotations})

    plan_terms = []
    for identity, terms in observables:
        plan_terms.append((identity, [(group_of[label], coeff, _mask(label, active)) for label, coeff in terms]))
    return _Plan(WorkItem(circuit, shots, tuple(points)), pub, shots, len(groups), active, plan_terms)


def _pauli_terms(observable: dict, num_qubits: int) -> tuple[float, list[tuple[str, float]]]:
    """(coefficient of the identity, [(Pauli label, real coefficient)]) of one observable."""
    identity, terms = 0.0, []
    for label, coeff in observable.items():
        if set(label) - set("IXYZ"):
            raise UnsupportedCircuit(f"observable term {label!r} is not a Pauli string; hcqw's Estimator takes sums "
                                     "of Paulis (I, X, Y, Z): expand projectors into them")
        coeff = complex(coeff)
        if abs(coeff.imag) > 1e-10 * max(1.0, abs(coeff.real)):
            raise ValueError(f"observable term {label!r} has a complex coefficient {coeff}; observables must be Hermitian")
        if set(label) <= {"I"}:
            identity += coeff.real
        else:
            terms.append((label, coeff.real))
    return identity, terms


def _group_basis(group: PauliList, num_qubits: int) -> list[str]:
    """Per qubit (index q), the Pauli the group measures there (I where none of its terms acts)."""
    basis = ["I"] * num_qubits
    for label in group.to_labels():
        for q in range(num_qubits):
            if label[-1 - q] != "I":
                basis[q] = label[-1 - q]
    return basis


def _mask(label: str, active: tuple[int, ...]) -> np.ndarray:
    return np.array([label[-1 - q] != "I" for q in active], dtype=bool)


def _result(plan: _Plan, samples: list[dict]) -> PubResult:
    groups = plan.groups
    bits = [s[BASIS_KEY].astype(np.int64) for s in samples]  # per sweep point: (shots, active)
    evs = np.empty(int(np.prod(plan.pub.shape, dtype=int)))
    stds = np.empty_like(evs)
    obs_shape, param_shape = plan.pub.observables.shape, plan.pub.parameter_values.shape
    for flat, index in enumerate(np.ndindex(*plan.pub.shape)):
        obs_index = np.ravel_multi_index(_broadcast_index(index, obs_shape), obs_shape) if obs_shape else 0
        param_index = (np.ravel_multi_index(_broadcast_index(index, param_shape), param_shape)
                       if param_shape else 0)
        identity, terms = plan.observables[obs_index]
        mean, variance = identity, 0.0
        for group in range(groups):
            group_terms = [(coeff, mask) for g, coeff, mask in terms if g == group]
            if not group_terms:
                continue
            outcome = bits[param_index * groups + group]
            per_shot = sum(coeff * (1 - 2 * (outcome[:, mask].sum(axis=1) % 2)) for coeff, mask in group_terms)
            mean += per_shot.mean()
            variance += per_shot.var() / plan.shots
        evs[flat], stds[flat] = mean, math.sqrt(variance)
    shape = plan.pub.shape
    return PubResult(DataBin(evs=evs.reshape(shape), stds=stds.reshape(shape), shape=shape),
                     metadata={"target_precision": plan.pub.precision, "shots": plan.shots,
                               "circuit_metadata": plan.pub.circuit.metadata})


def _broadcast_index(index: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index into an array of ``shape`` that broadcasts to the PUB's shape at ``index``."""
    index = index[len(index) - len(shape):]
    return tuple(0 if size == 1 else i for i, size in zip(index, shape))
