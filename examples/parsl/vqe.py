"""The H2 VQE as Parsl apps on hcqw_config(): embedded by default, on SLURM with --backend slurm.

    python -m examples.parsl.vqe [--iterations 30] [--seed 7] [--backend local|slurm|rest] [--fused] [--workflow-id ID]

With --backend slurm, SLURM_CONF must point at the cluster (e.g. ``eval "$(hcqw lab env --dir ...)"``):
cpu apps run on the cpu partition, each quantum step is a cpu+qpu hetjob that frees the qpu
node when the step ends. Re-running with the same --workflow-id resumes after the last step.
"""

from __future__ import annotations

from examples.parsl.apps import example_parser, run_example
from examples.vqe.pipeline import report


def main() -> None:
    args = example_parser(__doc__, iterations=30, shots=4000, seed=7).parse_args()
    params = {"iterations": args.iterations, "shots": args.shots, "seed": args.seed}
    state = run_example(args, "examples.vqe.pipeline:make_loop", params, "vqe-h2-parsl")
    print(report(state))


if __name__ == "__main__":
    main()
