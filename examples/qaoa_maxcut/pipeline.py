"""QAOA MaxCut as a hybrid loop.

Each iteration the quantum step samples the QAOA circuit at the current angles and at
their neighbours one step away along each axis (one sweep); the classical step scores
every point by its mean cut, moves to the best, and halves the step when no neighbour
is better (a compass search, robust to shot noise). The brute-force optimum gives the
approximation ratio.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from hcqw.device import DeviceLease
from hcqw.workflow import HybridLoop

# A 6-node 3-regular graph (the triangular prism), max cut 7.
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3), (0, 3), (1, 4), (2, 5))
N_NODES = 6


def cut_values(bits: np.ndarray, edges=EDGES) -> np.ndarray:
    """Cut size of each sampled assignment (rows of 0/1)."""
    return sum((bits[:, a] != bits[:, b]).astype(int) for a, b in edges)


def brute_force_max_cut(n: int = N_NODES, edges=EDGES) -> int:
    assignments = np.array(list(itertools.product([0, 1], repeat=n)))
    return int(cut_values(assignments, edges).max())


def qaoa_circuit(layers: int):
    """Returns (circuit, gamma symbols, beta symbols); angles are Cirq exponents (units of pi)."""
    import cirq
    import sympy

    qubits = cirq.LineQubit.range(N_NODES)
    gammas = sympy.symbols(f"gamma0:{layers}")
    betas = sympy.symbols(f"beta0:{layers}")
    ops = [cirq.H.on_each(*qubits)]
    for gamma, beta in zip(gammas, betas):
        ops += [cirq.ZZPowGate(exponent=gamma).on(qubits[a], qubits[b]) for a, b in EDGES]
        ops += [cirq.XPowGate(exponent=beta).on(q) for q in qubits]
    return cirq.Circuit(ops, cirq.measure(*qubits, key="m")), gammas, betas


@dataclass
class QaoaState:
    angles: np.ndarray  # gammas then betas, as exponents
    step: float
    mean_cuts: list[float] = field(default_factory=list)  # mean cut at the current angles, per iteration
    best_cut: int = 0  # best cut seen in any sample

    @property
    def ratio(self) -> float:
        return self.mean_cuts[-1] / brute_force_max_cut()


def neighbours(angles: np.ndarray, step: float) -> np.ndarray:
    eye = np.eye(len(angles))
    return np.vstack([angles, angles + step * eye, angles - step * eye])


def make_loop(iterations: int = 12, layers: int = 2, shots: int = 2000, seed: int = 11,
              step: float = 0.2) -> HybridLoop:
    circuit, gammas, betas = qaoa_circuit(layers)
    names = [s.name for s in (*gammas, *betas)]
    optimum = brute_force_max_cut()

    def initial_state() -> QaoaState:
        # Linear ramp (gamma rising, beta falling): the usual adiabatic-inspired start, jittered by the seed.
        ramp = (np.arange(layers) + 0.5) / layers
        angles = np.concatenate([0.4 * ramp, 0.4 * (1 - ramp)])
        return QaoaState(angles + np.random.default_rng(seed).normal(0, 0.02, len(angles)), step)

    def quantum_step(state: QaoaState, qpu: DeviceLease) -> list[np.ndarray]:
        points = [dict(zip(names, map(float, p))) for p in neighbours(state.angles, state.step)]
        return [r.measurements["m"] for r in qpu.run(circuit, shots, points)]

    def classical_step(state: QaoaState, samples: list[np.ndarray]) -> QaoaState:
        cuts = [cut_values(bits) for bits in samples]
        means = np.array([c.mean() for c in cuts])
        points = neighbours(state.angles, state.step)
        best = int(np.argmax(means))
        angles, step = (points[best], state.step) if best else (state.angles, state.step / 2)
        return QaoaState(angles, step, state.mean_cuts + [float(means[best])],
                         max(state.best_cut, max(int(c.max()) for c in cuts)))

    return HybridLoop(
        name="qaoa-maxcut", initial_state=initial_state, quantum_step=quantum_step, classical_step=classical_step,
        iterations=iterations, seed=seed,
        describe=lambda s: (f"mean cut {s.mean_cuts[-1]:.3f} / optimum {optimum} "
                            f"(approximation ratio {s.ratio:.3f}), best sampled cut {s.best_cut}"),
    )


def report(state) -> str:
    """The result lines every runner of this example prints."""
    return (f"brute-force max cut  {brute_force_max_cut()}\n"
            f"QAOA mean cut        {state.mean_cuts[-1]:.3f}\n"
            f"approximation ratio  {state.ratio:.3f}\n"
            f"best sampled cut     {state.best_cut}")
