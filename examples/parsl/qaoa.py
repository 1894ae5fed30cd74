"""QAOA MaxCut as Parsl apps on hcqw_config(): embedded by default, on SLURM with --slurm.

    python -m examples.parsl.qaoa [--iterations 12] [--layers 2] [--seed 11] [--slurm]
"""

from __future__ import annotations

import argparse
import logging
import uuid
from pathlib import Path

from examples.parsl.apps import run_loop
from examples.qaoa_maxcut.pipeline import brute_force_max_cut
from hcqw.checkpoint import load_checkpoint
from hcqw.workflow import state_file
from parsl_hcqw import QpuSession, hcqw_config, hcqw_parsl

LOOP = "examples.qaoa_maxcut.pipeline:make_loop"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--shots", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--workflow-id")
    parser.add_argument("--slurm", action="store_true", help="run on the SLURM cluster of $SLURM_CONF")
    parser.add_argument("--session", type=int, metavar="N", help="SLURM: keep one qpu allocation for up to N apps")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args()
    # Parsl logs to <run_dir>/parsl/*/parsl.log; the console gets only warnings and our summary.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("examples").setLevel(logging.WARNING if args.quiet else logging.INFO)
    logging.getLogger("parsl").propagate = False

    params = {"iterations": args.iterations, "layers": args.layers, "shots": args.shots, "seed": args.seed}
    workflow = args.workflow_id or f"qaoa-maxcut-parsl-{uuid.uuid4().hex[:8]}"
    run_dir = Path(args.runs_dir).absolute() / workflow
    session = QpuSession(max_apps=args.session) if args.session else None
    config = hcqw_config(slurm=args.slurm, run_dir=str(run_dir / "parsl"), workflow=workflow, session=session)
    with hcqw_parsl(config):
        loop = run_loop(LOOP, params, workflow, run_dir)
    state, _ = load_checkpoint(run_dir / "checkpoints" / state_file(loop.iterations), workflow=workflow)
    print(f"brute-force max cut  {brute_force_max_cut()}")
    print(f"QAOA mean cut        {state.mean_cuts[-1]:.3f}")
    print(f"approximation ratio  {state.ratio:.3f}")
    print(f"best sampled cut     {state.best_cut}")


if __name__ == "__main__":
    main()
