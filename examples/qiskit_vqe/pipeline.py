"""H2 VQE with Qiskit's EstimatorV2 and COBYLA, on hcqw.

The Hamiltonian is ``examples.vqe``'s (H2, STO-3G, 0.735 A, parity mapping, two qubits) as a
``SparsePauliOp``; the ansatz is ``real_amplitudes(2, reps=1)``. ``minimize_energy`` is the plain
Qiskit code (each energy is one ``Estimator.run``, so one device lease); ``make_loop`` wraps it as a
``HybridLoop`` of warm-restarted COBYLA rounds, so the same VQE runs as quantum nodes on SLURM
(``hcqw slurm run examples.qiskit_vqe.pipeline:make_loop``): each round's optimisation is one quantum
block on the node's lease, its classical step keeps the best point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from qiskit.circuit.library import real_amplitudes
from qiskit.quantum_info import SparsePauliOp
from scipy.optimize import minimize

from examples.vqe.pipeline import COEFFS
from hcqw.device import DeviceLease
from hcqw.qiskit import Estimator
from hcqw.workflow import HybridLoop

# Qiskit labels read qubit 1, qubit 0: "IZ" is Z on qubit 0.
HAMILTONIAN = SparsePauliOp.from_list([("II", COEFFS["I"]), ("IZ", COEFFS["Z0"]), ("ZI", COEFFS["Z1"]),
                                       ("ZZ", COEFFS["ZZ"]), ("XX", COEFFS["XX"])])
ANSATZ = real_amplitudes(2, reps=1)
TOLERANCE = 1e-2  # Ha: the final energy (measured at FINAL_PRECISION) must be this close to the exact one
PRECISION = 0.01  # per energy evaluation in the optimisation: 10,000 shots per qubit-wise commuting group
FINAL_PRECISION = 0.002  # the reported energy: 250,000 shots per group


def exact_ground_energy() -> float:
    return float(np.linalg.eigvalsh(HAMILTONIAN.to_matrix())[0])


def initial_point(seed: int) -> np.ndarray:
    """Near the Hartree-Fock state |01> (Ry(pi) on qubit 0), jittered by the seed."""
    theta = np.zeros(ANSATZ.num_parameters)
    theta[0] = np.pi
    return theta + np.random.default_rng(seed).normal(0.0, 0.2, theta.size)


def minimize_energy(estimator: Estimator, theta0: np.ndarray, maxiter: int = 60, rhobeg: float = 0.5):
    """scipy's COBYLA on the sampled energy; returns scipy's OptimizeResult."""

    def energy(theta: np.ndarray) -> float:
        return float(estimator.run([(ANSATZ, HAMILTONIAN, theta)], precision=PRECISION).result()[0].data.evs)

    return minimize(energy, theta0, method="COBYLA", options={"maxiter": maxiter, "rhobeg": rhobeg})


def final_energy(estimator: Estimator, theta: np.ndarray) -> tuple[float, float]:
    """(energy, its standard error) at ``theta``, measured at FINAL_PRECISION."""
    data = estimator.run([(ANSATZ, HAMILTONIAN, theta)], precision=FINAL_PRECISION).result()[0].data
    return float(data.evs), float(data.stds)


def report(energy: float, std: float, evaluations: int) -> str:
    exact = exact_ground_energy()
    error = abs(energy - exact)
    return (f"VQE energy   {energy:+.6f} Ha (std {std:.6f}, {evaluations} energy evaluations)\n"
            f"exact energy {exact:+.6f} Ha\n"
            f"error        {error:.6f} Ha ({'within' if error <= TOLERANCE else 'NOT within'} {TOLERANCE:g})")


@dataclass
class RoundsState:
    theta: np.ndarray
    rhobeg: float = 0.5
    evaluations: int = 0
    energies: list[float] = field(default_factory=list)  # each round's final energy
    stds: list[float] = field(default_factory=list)


def make_loop(rounds: int = 2, maxiter: int = 40, seed: int = 7) -> HybridLoop:
    """``rounds`` quantum nodes, each a COBYLA run of ``maxiter`` energies from the previous best point, on the
    node's own lease (so on SLURM the qpu component is freed when the round ends); the classical step keeps the
    point and halves COBYLA's initial step for the next round."""

    def quantum_step(state: RoundsState, qpu: DeviceLease) -> dict:
        estimator = Estimator(lease=qpu)
        result = minimize_energy(estimator, state.theta, maxiter=maxiter, rhobeg=state.rhobeg)
        energy, std = final_energy(estimator, result.x)
        return {"theta": result.x, "evaluations": int(result.nfev), "energy": energy, "std": std}

    def classical_step(state: RoundsState, measured: dict) -> RoundsState:
        return RoundsState(np.asarray(measured["theta"]), state.rhobeg / 2, state.evaluations + measured["evaluations"],
                           state.energies + [measured["energy"]], state.stds + [measured["std"]])

    exact = exact_ground_energy()
    return HybridLoop(
        name="qiskit-vqe-h2", initial_state=lambda: RoundsState(initial_point(seed)), quantum_step=quantum_step,
        classical_step=classical_step, iterations=rounds, seed=seed,
        describe=lambda s: f"energy {s.energies[-1]:+.5f} Ha (exact {exact:+.5f}, error {s.energies[-1] - exact:+.5f})",
    )
