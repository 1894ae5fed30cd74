"""VQE for H2 written the PennyLane way: a QNode on ``hcqw.qpu``, ``qml.AdamOptimizer``, parameter-shift.

The Hamiltonian is the 2-qubit H2 one of ``examples/vqe`` (STO-3G, 0.735 A, parity mapping with
two-qubit reduction); its exact ground energy comes from numpy's ``eigvalsh`` of its matrix.

Two ways to run the same optimisation:

- ``optimise``: a plain PennyLane loop (``opt.step_and_cost``) -- each device execution (the energy,
  then its gradient's shifted circuits) opens and closes its own lease through ``hcqw.qpu.open_qpu``;
  ``python -m examples.pennylane_qnode`` runs it on the embedded default.
- ``make_loop``: the same steps as an ``hcqw.workflow.HybridLoop``, so ``hcqw slurm run``, Snakemake and
  Parsl run it as quantum and classical nodes: the quantum step evaluates the energy and its gradient
  on the node's lease (``qml.device("hcqw.qpu", lease=qpu)``), the classical step takes the Adam step.

Both report the mean of the last ``REPORT_WINDOW`` measured energies (damping shot noise); the goal
is to be within ``TOLERANCE`` of the exact energy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pennylane as qml
from pennylane import numpy as pnp

from hcqw.workflow import HybridLoop

log = logging.getLogger(__name__)

# H = c0 I + cz0 Z0 + cz1 Z1 + czz Z0 Z1 + cxx X0 X1  (Hartree, electronic part), as in examples/vqe
COEFFS = [-1.052373245772859, -0.39793742484318045, 0.39793742484318045, -0.01128010425623538, 0.18093119978423156]
WIRES = [0, 1]
TOLERANCE = 1e-2  # Hartree
REPORT_WINDOW = 5  # iterations averaged into the reported energy


def hamiltonian() -> qml.Hamiltonian:
    terms = [qml.Identity(0), qml.Z(0), qml.Z(1), qml.Z(0) @ qml.Z(1), qml.X(0) @ qml.X(1)]
    return qml.Hamiltonian(COEFFS, terms)


def exact_ground_energy() -> float:
    """The lowest eigenvalue of the Hamiltonian's 4x4 matrix (numpy ``eigvalsh``)."""
    return float(np.linalg.eigvalsh(qml.matrix(hamiltonian(), wire_order=WIRES))[0])


def energy_qnode(device, shots: int):
    """The energy as a QNode: a hardware-efficient ansatz (Ry layer, CNOT, Ry layer)."""
    h = hamiltonian()

    @qml.set_shots(shots=shots)
    @qml.qnode(device, diff_method="parameter-shift")
    def energy(theta):
        qml.RY(theta[0], 0)
        qml.RY(theta[1], 1)
        qml.CNOT([0, 1])
        qml.RY(theta[2], 0)
        qml.RY(theta[3], 1)
        return qml.expval(h)

    return energy


def initial_theta(seed: int) -> pnp.ndarray:
    """Near the Hartree-Fock state |01> (Ry(pi) on qubit 1), jittered by the seed."""
    theta = np.zeros(4)
    theta[1] = np.pi
    theta += np.random.default_rng(seed).normal(0.0, 0.2, 4)
    return pnp.array(theta, requires_grad=True)


def optimise(iterations: int = 40, shots: int = 4000, seed: int = 7, stepsize: float = 0.1) -> list[float]:
    """The plain PennyLane loop; returns the energy measured at each iteration's parameters."""
    energy = energy_qnode(qml.device("hcqw.qpu", wires=WIRES, seed=seed), shots)
    optimiser = qml.AdamOptimizer(stepsize)
    theta, energies = initial_theta(seed), []
    for step in range(1, iterations + 1):
        theta, value = optimiser.step_and_cost(energy, theta)
        energies.append(float(value))
        log.info("iteration %d: energy %+.5f Ha", step, value)
    return energies


@dataclass
class QnodeState:
    theta: pnp.ndarray
    optimiser: qml.AdamOptimizer  # carries Adam's moments from one classical node to the next
    energies: list[float] = field(default_factory=list)

    @property
    def energy(self) -> float:
        return reported_energy(self.energies)


def make_loop(iterations: int = 40, shots: int = 4000, seed: int = 7, stepsize: float = 0.1) -> HybridLoop:
    """The optimisation as a hybrid loop: quantum node = energy and gradient on the node's lease."""

    def initial_state() -> QnodeState:
        return QnodeState(initial_theta(seed), qml.AdamOptimizer(stepsize))

    def quantum_step(state: QnodeState, qpu) -> dict:
        energy = energy_qnode(qml.device("hcqw.qpu", wires=WIRES, lease=qpu), shots)
        (gradient,), value = state.optimiser.compute_grad(energy, (state.theta,), {})
        return {"energy": float(value), "gradient": np.asarray(gradient)}

    def classical_step(state: QnodeState, measured: dict) -> QnodeState:
        (theta,) = state.optimiser.apply_grad((pnp.array(measured["gradient"]),), (state.theta,))
        return QnodeState(pnp.array(theta, requires_grad=True), state.optimiser,
                          state.energies + [measured["energy"]])

    exact = exact_ground_energy()
    return HybridLoop(
        name="pennylane-qnode-h2", initial_state=initial_state, quantum_step=quantum_step,
        classical_step=classical_step, iterations=iterations, seed=seed,
        describe=lambda s: f"energy {s.energy:+.5f} Ha (exact {exact:+.5f}, error {s.energy - exact:+.5f})",
    )


def reported_energy(energies: list[float]) -> float:
    return float(np.mean(energies[-REPORT_WINDOW:]))


def report(energies: list[float]) -> str:
    """The result lines every runner of this example prints."""
    energy, exact = reported_energy(energies), exact_ground_energy()
    error = abs(energy - exact)
    return (f"VQE energy   {energy:+.6f} Ha (mean of the last {min(REPORT_WINDOW, len(energies))} iterations)\n"
            f"exact energy {exact:+.6f} Ha\n"
            f"error        {error:.6f} Ha ({'within' if error <= TOLERANCE else 'NOT within'} {TOLERANCE:g})")
