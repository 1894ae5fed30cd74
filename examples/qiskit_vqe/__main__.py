"""Run the Qiskit H2 VQE on the embedded default (or wherever ``open_qpu`` points).

    python -m examples.qiskit_vqe [--seed 7] [--maxiter 80]

Plain Qiskit code: hcqw's EstimatorV2 in scipy's COBYLA; each energy is one ``Estimator.run``, one
device lease. Exits 1 if the energy is not within the tolerance of the exact ground energy.
"""

import argparse
import sys

from examples.qiskit_vqe.pipeline import (TOLERANCE, exact_ground_energy, final_energy, initial_point, minimize_energy,
                                          report)
from hcqw.qiskit import Estimator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--maxiter", type=int, default=80)
    args = parser.parse_args()
    estimator = Estimator(seed=args.seed)
    result = minimize_energy(estimator, initial_point(args.seed), maxiter=args.maxiter)
    energy, std = final_energy(estimator, result.x)
    print(report(energy, std, int(result.nfev)))
    sys.exit(0 if abs(energy - exact_ground_energy()) <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
