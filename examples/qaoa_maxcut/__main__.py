"""Run QAOA MaxCut as a plain Python lab pipeline on the embedded default.

    python -m examples.qaoa_maxcut [--iterations 12] [--layers 2] [--seed 11]
"""

import argparse
import logging

from examples.qaoa_maxcut.pipeline import make_loop, report
from hcqw.embedded import Workflow, run_workflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--shots", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")

    loop = make_loop(iterations=args.iterations, layers=args.layers, shots=args.shots, seed=args.seed)
    workflow = Workflow.create(loop, args.runs_dir)
    run_workflow(workflow)
    state = workflow.final_state()
    print(report(state))


if __name__ == "__main__":
    main()
