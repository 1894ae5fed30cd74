"""A hybrid loop as Parsl apps: each quantum node a ``qpu`` app, each classical node a ``cpu`` app;
with ``fused`` one ``qpu`` app per iteration that frees the device before its classical step.

The apps run the loop's own steps (``hcqw.workflow.run_node``, the node executor every hcqw
engine uses), so a Parsl run samples exactly what the lab pipeline samples with the same
seed. State passes between apps as signed checkpoint artifacts in the run directory (each app
returns its checkpoint's name, and its future orders the next app); a restarted script skips
every node whose checkpoint already verifies (``hcqw.workflow.node_done``) and resumes from
the last finished step. Parsl's own memoization/checkpointing is not used: our checkpoints
are signed and shared with the other hcqw engines.
"""

from __future__ import annotations

import argparse
import logging
import uuid
from pathlib import Path
from typing import Any

from parsl import python_app

from hcqw.checkpoint import load_checkpoint
from hcqw.paths import run_checkpoints, state_file
from hcqw.slurm import BACKENDS
from hcqw.workflow import HybridLoop, RunContext, dag_to_resume, load_loop, node_done

log = logging.getLogger(__name__)


def run_loop_node(loop_ref: str, params: dict, workflow: str, run_dir: str, node_name: str) -> str:
    """Run one node of the loop where the app landed; a quantum node opens this process's device."""
    from hcqw.qpu import current_device
    from hcqw.workflow import run_node_by_name

    return run_node_by_name(loop_ref, params, node_name, RunContext(workflow, Path(run_dir)), current_device).output


@python_app(executors=["qpu"])
def quantum_app(loop_ref: str, params: dict, workflow: str, run_dir: str, node_name: str, *after: str) -> str:
    from examples.parsl.apps import run_loop_node

    return run_loop_node(loop_ref, params, workflow, run_dir, node_name)


@python_app(executors=["cpu"])
def classical_app(loop_ref: str, params: dict, workflow: str, run_dir: str, node_name: str, *after: str) -> str:
    from examples.parsl.apps import run_loop_node

    return run_loop_node(loop_ref, params, workflow, run_dir, node_name)


def run_loop(loop_ref: str, params: dict, workflow: str, run_dir: Path, fused: bool = False) -> HybridLoop:
    """Submit the loop's unfinished nodes as a chain of apps and wait for the last one (``fused``: one ``qpu``
    app per iteration, ``hcqw.workflow.build_dag(..., fused=True)``)."""
    loop = load_loop(loop_ref, params)
    ctx = RunContext(workflow, Path(run_dir).absolute())
    previous = None
    skipped = 0
    for node in dag_to_resume(loop, ctx, fused):
        if node_done(node, ctx):
            skipped += 1
            continue
        app = quantum_app if node.uses_qpu else classical_app
        after = (previous,) if previous is not None else ()
        previous = app(loop_ref, params, workflow, str(ctx.run_dir), node.name, *after)
    if skipped:
        log.info("resumed %s: %d node(s) already had checkpoints", workflow, skipped)
    if previous is not None:
        previous.result()
    return loop


def example_parser(doc: str, iterations: int, shots: int, seed: int) -> argparse.ArgumentParser:
    """The command line every example shares; an example adds its own loop parameters."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=iterations)
    parser.add_argument("--shots", type=int, default=shots)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--workflow-id")
    parser.add_argument("--backend", choices=BACKENDS, default="local",
                        help="where the apps run: local (this machine), slurm (sbatch on the cluster of $SLURM_CONF) "
                             "or rest (slurmrestd at --rest-url, token from $SLURM_JWT)")
    parser.add_argument("--rest-url", help="slurmrestd base URL (with --backend rest)")
    parser.add_argument("--session", type=int, metavar="N", help="SLURM: keep one qpu allocation for up to N apps")
    parser.add_argument("--fused", action="store_true",
                        help="one qpu app per iteration: the quantum step, then (device given back) the classical step")
    parser.add_argument("-q", "--quiet", action="store_true")
    return parser


def run_example(args: argparse.Namespace, loop_ref: str, params: dict, name: str) -> Any:
    """Run the loop under ``hcqw_config`` as the flags say; return its final state."""
    from parsl_hcqw import QpuSession, hcqw_config, hcqw_parsl

    # Parsl logs to <run_dir>/parsl/*/parsl.log; the console gets only warnings and our summary.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("examples").setLevel(logging.WARNING if args.quiet else logging.INFO)
    logging.getLogger("parsl").propagate = False
    workflow = args.workflow_id or f"{name}-{uuid.uuid4().hex[:8]}"
    run_dir = Path(args.runs_dir).absolute() / workflow
    session = QpuSession(max_apps=args.session) if args.session else None
    rest = {"url": args.rest_url} if args.rest_url else None
    config = hcqw_config(backend=args.backend, backend_options=rest, run_dir=str(run_dir / "parsl"), workflow=workflow,
                         session=session)
    with hcqw_parsl(config):
        loop = run_loop(loop_ref, params, workflow, run_dir, args.fused)
    print(f"run directory {run_dir}")
    return load_checkpoint(run_checkpoints(run_dir) / state_file(loop.iterations), workflow=workflow)[0]
