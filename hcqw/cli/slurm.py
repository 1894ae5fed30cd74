"""``hcqw slurm run LOOP``: a hybrid loop as a chain of SLURM jobs (quantum nodes as hetjobs).

Light at import time; the work is imported inside the handler. The REST token is read
from ``--token-file`` or $HCQW_SLURM_JWT/$SLURM_JWT by the REST backend, never from the
command line (it would show in ``ps``).
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    slurm = subparsers.add_parser("slurm", help="run hybrid loops on SLURM (quantum nodes as cpu+qpu hetjobs)")
    commands = slurm.add_subparsers(dest="slurm_command", required=True)
    p = commands.add_parser("run", help="submit (or resume) a loop as afterok-chained jobs and follow it")
    p.add_argument("loop", help="the loop as 'package.module:attribute' (a HybridLoop or a factory)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=JSON", help="factory parameter; repeatable")
    p.add_argument("--runs-dir", default="runs", help="where run directories go (shared with the compute nodes)")
    p.add_argument("--workflow-id", help="name of this run (default: <loop name>-<random>); reuse it to resume")
    p.add_argument("--backend", choices=["sbatch", "rest"], default="sbatch")
    p.add_argument("--rest-url", help="slurmrestd base URL (with --backend rest)")
    p.add_argument("--token-file", help="file holding the SLURM JWT (with --backend rest)")
    p.add_argument("--transport", choices=["zmq", "mpi"], default="zmq", help="gateway transport")
    p.add_argument("--device-service", default=None, metavar="ADDRESS",
                   help="node-local address of a QPU service kept running on the qpu node (hcqw device serve; %%n is "
                        "the qpu node's name, for one service per qpu host): gateways relay to it instead of "
                        "starting a simulator per quantum node")
    p.add_argument("--time-limit", default="10", help="per-job time limit (minutes or SLURM time)")
    p.add_argument("--no-wait", action="store_true", help="submit and print the job ids, do not follow")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import uuid
    from pathlib import Path

    from hcqw.errors import WorkflowError
    from hcqw.hetjob.chain import final_state, follow_chain, submit_chain
    from hcqw.hetjob.jobs import NodeJobSettings
    from hcqw.cli.run import parse_params
    from hcqw.slurm import ComponentSpec, open_backend

    if args.backend == "rest":
        if not args.rest_url:
            raise WorkflowError("--backend rest needs --rest-url")
        backend = open_backend("rest", url=args.rest_url, token_file=args.token_file)
    else:
        backend = open_backend("sbatch")
    params = parse_params(args.param)
    settings = NodeJobSettings(cpu=ComponentSpec("cpu", time_limit=args.time_limit),
                               qpu=ComponentSpec("qpu", gres="qpu:1", time_limit=args.time_limit),
                               transport=args.transport, device_service=args.device_service)
    workflow = args.workflow_id or f"{args.loop.rsplit(':', 1)[-1]}-{uuid.uuid4().hex[:8]}"
    chain = submit_chain(backend, args.loop, params, workflow, Path(args.runs_dir), settings)
    print(f"workflow {workflow}: run directory {chain.run_dir}")
    if chain.skipped:
        print(f"resuming after {chain.skipped[-1]} ({len(chain.skipped)} node(s) done)")
    for node, job_id in chain.jobs:
        print(f"  {node}: SLURM job {job_id}")
    if args.no_wait:
        return 0
    follow_chain(backend, chain)
    state = final_state(chain)
    print(chain.loop.describe(state) if chain.loop.describe else f"final state: {state!r}")
    return 0
