"""C1 -> C2 from the user's side: a run's ``init`` and ``c0001`` here on C1, its quantum node ``q0001``
submitted to the QPU-side cluster C2 through slurmrestd, followed there and its checkpoint brought
back. The federation test runs this as a lab user with the site's Python:

    python -m tests.hetjob.federate_node WORKFLOW RUN_DIR STAGING_DIR --rest-url URL --token-file F \\
        [--env NAME=VALUE ...]

``--env`` is the environment of the job on C2 (its SLURM_CONF, HCQW_MUNGE_SOCKET). Prints one JSON
line: the C2 job's leader id, phase and released components.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hcqw.hetjob.federation import RemoteSite, run_quantum_node_remote
from hcqw.slurm import open_backend
from hcqw.workflow import RunContext, build_dag, load_loop, run_node

LOOP = "tests.support.loops:make"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("staging_dir", type=Path, help="where C2's jobs find the run's files")
    parser.add_argument("--rest-url", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    c2 = open_backend("rest", url=args.rest_url, token_file=args.token_file, poll_interval=0.2)
    loop = load_loop(LOOP, {})
    ctx = RunContext(args.workflow, args.run_dir)
    nodes = build_dag(loop)
    run_node(loop, nodes[0], ctx, None)  # init on C1
    site = RemoteSite(c2, args.staging_dir, environment=dict(item.split("=", 1) for item in args.env))
    state = run_quantum_node_remote(site, LOOP, {}, ctx, "q0001", timeout=120)
    run_node(loop, nodes[2], ctx, None)  # C1 goes on with the result
    print(json.dumps({"leader": state.leader_id, "phase": state.phase.value, "released": list(state.released),
                      "user": c2.user}))


if __name__ == "__main__":
    main()
