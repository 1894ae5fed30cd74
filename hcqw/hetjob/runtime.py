"""Run one workflow node inside a SLURM job: ``python -m hcqw.hetjob.runtime ...``.

The same entry point serves every node kind. A quantum or fused node (component 0 of its
hetjob) gets a ``GatewayDevice`` talking to the gateway in component 1; ``init`` and classical
nodes get no device. A fused node's classical part runs after its qpu component is released.
The loop is rebuilt from its import path and JSON parameters (``hcqw.workflow.load_loop``),
never unpickled from the submitter.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from hcqw.errors import HcqwError

log = logging.getLogger(__name__)


def run_job_node(loop_ref: str, params: dict, node_name: str, workflow: str, run_dir: Path,
                 connect_timeout: float = 120.0) -> None:
    from hcqw.hetjob.device import gateway_device
    from hcqw.workflow import RunContext, run_node_by_name

    # A node that uses the QPU gets its job's gateway, whose address the job script exported.
    run_node_by_name(loop_ref, params, node_name, RunContext(workflow, run_dir),
                     lambda: gateway_device(connect_timeout=connect_timeout))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hcqw.hetjob.runtime", description=__doc__.split("\n")[0])
    parser.add_argument("--loop", required=True)
    parser.add_argument("--path", default=None, help="directory of the loop's module (checked private to the user)")
    parser.add_argument("--params", default="{}", help="factory parameters as one JSON object")
    parser.add_argument("--node", required=True)
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    parser.add_argument("--pid-file", default=None, help="write this process's pid here (for operators and tests)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s node %(levelname)s %(name)s: %(message)s")
    if args.pid_file:
        Path(args.pid_file).write_text(f"{os.getpid()}\n")
    try:
        if args.path:
            from hcqw.workflow import use_module_dir

            use_module_dir(args.path)
        run_job_node(args.loop, json.loads(args.params), args.node, args.workflow, Path(args.run_dir),
                     args.connect_timeout)
    except HcqwError as err:
        log.error("%s/%s failed: %s", args.workflow, args.node, err)
        return 2
    log.info("%s/%s done", args.workflow, args.node)
    return 0


def exit_now(code: int) -> None:
    """Exit with ``code`` as soon as what the node wrote is out: its checkpoint and metrics are closed
    files already, so flush the logs and standard streams and skip the interpreter's teardown -- after
    importing cirq that took 0.5-0.7 s of the job's (and the next node's) time (issue 22). Under MPI the
    normal exit stays: mpi4py finalizes MPI there, and its peer waits for that."""
    if "mpi4py.MPI" in sys.modules:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
