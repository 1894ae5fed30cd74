"""QAOA MaxCut as Parsl apps on hcqw_config(): embedded by default, on SLURM with --backend slurm.

    python -m examples.parsl.qaoa [--iterations 12] [--layers 2] [--seed 11] [--backend local|slurm|rest]
"""

from __future__ import annotations

from examples.parsl.apps import example_parser, run_example
from examples.qaoa_maxcut.pipeline import report


def main() -> None:
    parser = example_parser(__doc__, iterations=12, shots=2000, seed=11)
    parser.add_argument("--layers", type=int, default=2)
    args = parser.parse_args()
    params = {"iterations": args.iterations, "layers": args.layers, "shots": args.shots, "seed": args.seed}
    state = run_example(args, "examples.qaoa_maxcut.pipeline:make_loop", params, "qaoa-maxcut-parsl")
    print(report(state))


if __name__ == "__main__":
    main()
