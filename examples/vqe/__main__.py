"""Run the H2 VQE as a plain Python lab pipeline on the embedded default.

    python -m examples.vqe [--iterations 30] [--seed 7] [--monolithic | --fused]
"""

import argparse
import logging

from examples.vqe.pipeline import make_loop, report
from hcqw.embedded import Workflow, run_workflow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--shots", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--workflow-id")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--monolithic", action="store_true", help="hold the device for the whole run")
    form.add_argument("--fused", action="store_true",
                      help="one node per iteration: quantum step, device freed, classical step")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-iteration progress")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")

    loop = make_loop(iterations=args.iterations, shots=args.shots, seed=args.seed)
    workflow = Workflow.create(loop, args.runs_dir, args.workflow_id)
    run_workflow(workflow, monolithic=args.monolithic, fused=args.fused)
    print(report(workflow.final_state()))
    print(f"run directory {workflow.ctx.run_dir} (QPU timeline: {workflow.ctx.metrics_path})")


if __name__ == "__main__":
    main()
