"""``hcqw run``: run a hybrid loop on the embedded default (one machine, no SLURM)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run a hybrid loop on this machine (the embedded default)")
    p.add_argument("loop", help="the loop as 'package.module:attribute' (a HybridLoop or a factory)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=JSON",
                   help="a factory parameter, value as JSON (e.g. --param iterations=10); repeatable")
    p.add_argument("--path", default=None, metavar="DIR",
                   help="directory holding the loop's module (default: the working directory, if only you may "
                        "write it; a directory others may write is refused)")
    p.add_argument("--runs-dir", default="runs", help="where run directories go (default: ./runs)")
    p.add_argument("--workflow-id", help="name of this run (default: <loop name>-<random>); reuse it to resume")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--monolithic", action="store_true", help="hold the device for the whole loop (for comparison)")
    form.add_argument("--fused", action="store_true",
                      help="one node per iteration (quantum step, device freed, classical step), as `hcqw slurm run "
                           "--fused`")
    p.add_argument("--simulator", default="qsim", help="the device's simulator: qsim (default), cirq, modelled or "
                   "module:Class")
    p.add_argument("--device-timeout", type=float, help="seconds a quantum node may wait for the device")
    p.set_defaults(handler=_run)


def parse_params(pairs: list[str]) -> dict:
    from hcqw.errors import WorkflowError

    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise WorkflowError(f"--param {pair!r}: expected NAME=VALUE")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value  # a bare word is a string
    return params


def _run(args: argparse.Namespace) -> int:
    from hcqw.embedded import Workflow, run_workflow
    from hcqw.workflow import load_loop, use_module_dir

    use_module_dir(args.path)
    loop = load_loop(args.loop, parse_params(args.param))
    workflow = Workflow.create(loop, args.runs_dir, args.workflow_id)
    print(f"workflow {workflow.ctx.workflow}: run directory {workflow.ctx.run_dir}")
    run_workflow(workflow, args.monolithic, args.simulator, args.device_timeout, args.fused)
    state = workflow.final_state()
    print(loop.describe(state) if loop.describe else f"final state: {state!r}")
    print(f"QPU timeline: {workflow.ctx.metrics_path}")
    return 0
