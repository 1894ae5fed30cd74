"""``hcqw slurm run LOOP``: a hybrid loop as a chain of SLURM jobs (quantum nodes as hetjobs);
``hcqw slurm submit script.py [args]``: an unsplit driver as one cpu job whose quantum calls each get
the QPU for themselves (per-call holding, ``hcqw.hetjob.percall``).

Light at import time; the work is imported inside the handler. The REST token is read
from ``--token-file`` or $HCQW_SLURM_JWT/$SLURM_JWT by the REST backend, never from the
command line (it would show in ``ps``).
"""

from __future__ import annotations

import argparse

from hcqw.slurm import BACKENDS

# Whether `hcqw slurm run` fuses each iteration into one job unless told --fused/--split; chosen by
# the measurements in docs/benchmarks-history.md ("Fused quantum+classical nodes": the same makespan at K = 4; "A
# centre's scale": with windows, 20 workflows, fused took 0.93x the split makespan, 4 job records
# per workflow at peak instead of 5, half the submissions).
FUSED_DEFAULT = True


def register(subparsers) -> None:
    slurm = subparsers.add_parser("slurm", help="run hybrid loops on SLURM (quantum nodes as cpu+qpu hetjobs)")
    commands = slurm.add_subparsers(dest="slurm_command", required=True)
    p = commands.add_parser("run", help="submit (or resume) a loop as afterok-chained jobs and follow it")
    p.add_argument("loop", help="the loop as 'package.module:attribute' (a HybridLoop or a factory)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=JSON", help="factory parameter; repeatable")
    p.add_argument("--path", default=None, metavar="DIR",
                   help="directory holding the loop's module, on a file system the compute nodes share (default: "
                        "the working directory, if only you may write it); the jobs import from it too")
    p.add_argument("--runs-dir", default="runs", help="where run directories go (shared with the compute nodes)")
    p.add_argument("--workflow-id", help="name of this run (default: <loop name>-<random>); reuse it to resume")
    p.add_argument("--backend", choices=BACKENDS, default="slurm",
                   help="where the jobs run: slurm (sbatch on this cluster, default) or rest (slurmrestd at "
                        "--rest-url); 'local' is `hcqw run`")
    p.add_argument("--rest-url", help="slurmrestd base URL (with --backend rest)")
    p.add_argument("--token-file", help="file holding the SLURM JWT (with --backend rest)")
    p.add_argument("--transport", choices=["zmq", "mpi"], default="zmq", help="gateway transport")
    p.add_argument("--device-service", default=None, metavar="ADDRESS",
                   help="node-local address of a QPU service kept running on the qpu node (hcqw device serve; %%n is "
                        "the qpu node's name, for one service per qpu host): gateways relay to it instead of "
                        "starting a simulator per quantum node")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--fused", dest="fused", action="store_true", default=FUSED_DEFAULT,
                      help="one hetjob per iteration: the quantum step, then (qpu component released) the classical "
                           "step in the same job" + (" (default)" if FUSED_DEFAULT else ""))
    form.add_argument("--split", dest="fused", action="store_false",
                      help="a hetjob for each quantum step and a cpu job for each classical step"
                           + ("" if FUSED_DEFAULT else " (default)"))
    p.add_argument("--time-limit", default="10", help="per-job time limit (minutes or SLURM time)")
    p.add_argument("--window", type=_window, default=None, metavar="RECORDS",
                   help="job records (each hetjob component is one) the workflow keeps in SLURM at most; the "
                        "follower submits the next node as one completes (default 5; 'whole' submits the whole "
                        "chain at once, which --no-wait implies)")
    p.add_argument("--no-wait", action="store_true", help="submit the whole chain and print the job ids, do not follow")
    p.set_defaults(handler=_run)

    p = commands.add_parser("submit", help="submit a driver script as a cpu job whose quantum calls each hold the qpu "
                                           "for that call only (per-call)",
                            epilog="The same mode in the engines, by the same word: Snakemake `resources: "
                                   "qpu=\"per-call\"`, Parsl `@python_app(executors=[\"per-call\"])`, a job of your "
                                   "own `HCQW_DEVICE=per-call`. `qpu=1` / executors=[\"qpu\"] hold the device for "
                                   "the job's block instead.")
    p.add_argument("script", help="the driver: a Python script that opens the device with hcqw.qpu.open_qpu "
                                  "(directly or through hcqw's Qiskit/PennyLane front doors)")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    p.add_argument("--runs-dir", default="runs", help="where run directories go (shared with the compute nodes)")
    p.add_argument("--workflow-id", help="name of this run (default: <script name>-<random>)")
    p.add_argument("--partition", default="cpu", help="the driver job's partition (default cpu)")
    p.add_argument("--time-limit", default="60", help="the driver job's time limit (minutes or SLURM time)")
    p.add_argument("--device-service", default=None, metavar="ADDRESS",
                   help="node-local address of the resident QPU service on the qpu hosts (%%n: the host's name); "
                        "each call's job relays to it. Default $HCQW_PER_CALL_SERVICE; without either each call's "
                        "job loads a simulator of its own")
    p.add_argument("--qpu-partition", default=None, help="partition of each call's job (default qpu)")
    p.add_argument("--qpu-gres", default=None, help="gres of each call's job (default qpu:1)")
    p.add_argument("--call-option", action="append", default=[], metavar="OPTION",
                   help="a further sbatch option of each call's job, e.g. --call-option=--nodelist=q1; repeatable")
    p.add_argument("--call-time-limit", default=None, help="time limit of each call's job (default 10 minutes)")
    p.add_argument("--ahead", action="store_true", default=None,
                   help="request the next call's job as a call ends, so it starts during the classical part (for "
                        "staged qpu hosts: it holds a staging slot meanwhile, charged; $HCQW_PER_CALL_AHEAD)")
    p.add_argument("--wait", action="store_true", help="wait for the driver job to end; exit 1 if it failed")
    p.set_defaults(handler=_submit)


def _window(text: str) -> int | str:
    if text == "whole":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--window takes a number of job records or 'whole', not {text!r}") from None


def _rest_options(args: argparse.Namespace) -> dict:
    """open_backend's options from the command line, checked by hcqw.slurm.check_backend under their flags' names."""
    from hcqw.slurm import check_backend

    options = {"url": args.rest_url, "token_file": args.token_file}
    check_backend(args.backend, options, names={"url": "--rest-url", "token_file": "--token-file"}, local=False)
    return {name: value for name, value in options.items() if value is not None}


def _run(args: argparse.Namespace) -> int:
    import uuid
    from pathlib import Path

    import sys

    from hcqw.hetjob.chain import NICE_STEP, WINDOW_RECORDS, final_state, follow_chain, submit_chain
    from hcqw.hetjob.jobs import NodeJobSettings
    from hcqw.cli.run import parse_params
    from hcqw.slurm import ComponentSpec, open_backend
    from hcqw.workflow import use_module_dir

    module_dir = use_module_dir(args.path)
    backend = open_backend(args.backend, **_rest_options(args))
    params = parse_params(args.param)
    settings = NodeJobSettings(cpu=ComponentSpec("cpu", time_limit=args.time_limit),
                               qpu=ComponentSpec("qpu", gres="qpu:1", time_limit=args.time_limit),
                               transport=args.transport, device_service=args.device_service,
                               module_path=str(module_dir) if module_dir else None)
    workflow = args.workflow_id or f"{args.loop.rsplit(':', 1)[-1]}-{uuid.uuid4().hex[:8]}"
    # Nobody refills a window without a follower: --no-wait submits the whole chain (with the old nice rule).
    whole = args.no_wait or args.window == "whole"
    if args.no_wait and args.window not in (None, "whole"):
        print("hcqw slurm run: --window needs a follower; drop --no-wait or --window", file=sys.stderr)
        return 2
    window = None if whole else (args.window or WINDOW_RECORDS)
    try:
        chain = submit_chain(backend, args.loop, params, workflow, Path(args.runs_dir), settings,
                             nice_step=NICE_STEP if whole else 0, fused=args.fused, window=window)
    except ValueError as err:  # a window too small
        print(f"hcqw slurm run: {err}", file=sys.stderr)
        return 2
    print(f"workflow {workflow}: run directory {chain.run_dir}")
    if chain.skipped:
        print(f"resuming after {chain.skipped[-1]} ({len(chain.skipped)} node(s) done)")
    for node, job_id in chain.jobs:
        print(f"  {node}: SLURM job {job_id}")
    if chain.waiting:
        print(f"  ({len(chain.waiting)} more node(s) submitted as these complete: at most {window} job records at once)")
    if args.no_wait:
        return 0
    chain.on_submit = lambda node, job_id: print(f"  {node}: SLURM job {job_id}", flush=True)
    follow_chain(backend, chain)
    state = final_state(chain)
    print(chain.loop.describe(state) if chain.loop.describe else f"final state: {state!r}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    import os
    import sys
    import uuid
    from dataclasses import replace
    from pathlib import Path

    from hcqw import environment
    from hcqw.hetjob.percall import PerCallSettings, driver_request
    from hcqw.paths import JOBS_DIR
    from hcqw.slurm import ComponentSpec, open_backend
    from hcqw.slurm.states import Phase

    script = Path(args.script).absolute()
    if not script.is_file():
        print(f"hcqw slurm submit: no such script {args.script!r}", file=sys.stderr)
        return 2
    workflow = args.workflow_id or f"{script.stem}-{uuid.uuid4().hex[:8]}"
    run_dir = Path(args.runs_dir).absolute() / workflow
    (run_dir / "slurm").mkdir(parents=True, exist_ok=True)
    (run_dir / JOBS_DIR).mkdir(mode=0o700, exist_ok=True)
    given = {"partition": args.qpu_partition, "gres": args.qpu_gres, "time_limit": args.call_time_limit,
             "service": args.device_service or os.environ.get(environment.PER_CALL_SERVICE),
             "options": tuple(args.call_option) or None, "ahead": args.ahead}
    settings = replace(PerCallSettings(call_dir=run_dir / JOBS_DIR),
                       **{name: value for name, value in given.items() if value})
    request = driver_request([sys.executable, str(script), *args.args], workflow=workflow, run_dir=run_dir,
                             cwd=Path.cwd(), cpu=ComponentSpec(args.partition, time_limit=args.time_limit),
                             settings=settings)
    backend = open_backend("slurm")
    job = backend.submit(request)
    print(f"workflow {workflow}: driver job {job}, output {run_dir / 'slurm' / f'driver-{job}.out'}")
    if not args.wait:
        return 0
    state = backend.wait(job)
    print(f"driver job {job}: {state.phase.value}")
    return 0 if state.phase is Phase.COMPLETED else 1
