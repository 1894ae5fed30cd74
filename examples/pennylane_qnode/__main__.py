"""Run the H2 VQE as a PennyLane QNode on hcqw.qpu, on the embedded default (the machine-local device).

    python -m examples.pennylane_qnode [--iterations 40] [--shots 4000] [--seed 7]

Exits with status 1 if the energy is not within the tolerance of the exact ground energy.
"""

import argparse
import logging
import sys

from examples.pennylane_qnode.pipeline import TOLERANCE, exact_ground_energy, optimise, report, reported_energy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--shots", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stepsize", type=float, default=0.1)
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-iteration progress")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")

    energies = optimise(iterations=args.iterations, shots=args.shots, seed=args.seed, stepsize=args.stepsize)
    print(report(energies))
    return 0 if abs(reported_energy(energies) - exact_ground_energy()) <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
