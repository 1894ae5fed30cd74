"""``hcqw lab up|down|status|env|token|exec``: a SLURM site on this machine, from the shell.

Kept light (stdlib only at import time): the main CLI imports this module
whenever it builds its parser.

Typical use (as root)::

    hcqw lab up                 # packages, site venv, users, hosts (namespaces), daemons; in /tmp/hcqw-lab
    hcqw lab status --json      # hosts (name, role, address, namespace), users, daemons
    hcqw lab exec --user hcqw-alice -- sbatch --wrap hostname    # as a user on the submit host
    eval "$(hcqw lab env)"      # or point root's own sbatch/squeue/... at it
    hcqw lab token              # JWT for the REST API
    hcqw lab down               # stops every daemon by PID, removes the namespaces and the bridge
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hcqw import environment

if TYPE_CHECKING:  # avoid importing the cluster code just to build the parser
    from hcqw.lab.cluster import LabCluster

DEFAULT_DIR = "/tmp/hcqw-lab"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hcqw lab ...`` to the main parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=Path(os.environ.get(environment.LAB_DIR) or DEFAULT_DIR),
                        help="cluster directory (state, logs, configs) [$HCQW_LAB_DIR or %(default)s]")
    common.add_argument("--name", default=None, help="cluster name, prefixes node names [last used, else hcqw]")
    common.add_argument("--port-base", type=int, default=None,
                        help="first of the cluster's ports (slurmctld; see hcqw.lab.layout) [last used, else 6817]")
    common.add_argument("--cpu-nodes", type=int, default=None, help="nodes in the cpu partition [last used, else 2]")
    common.add_argument("--qpu-nodes", type=int, default=None,
                        help="nodes in the qpu partition, each with its own device [last used, else 2]")
    common.add_argument("--simulator", default=None,
                        help="simulator of the resident QPU services (hcqw device serve --simulator) "
                             "[last used, else qsim]")
    common.add_argument("--staging-depth", type=int, default=None,
                        help="qpu gres per qpu host: how many quantum nodes SLURM places at one device at once, one "
                             "executing and the others staged (session open, first batch queued) [last used, else 1]")
    common.add_argument("--accounting", action="store_true", default=None,
                        help="also run MariaDB + slurmdbd: sacct, gres/qpu accounting, fair share, user accounts")

    lab = subparsers.add_parser("lab", help="a real SLURM site on this machine (hosts in network namespaces, users)",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = lab.add_subparsers(dest="lab_command", required=True)

    up = sub.add_parser("up", parents=[common], help="start the cluster (idempotent)")
    up.add_argument("--timeout", type=float, default=60, help="seconds to wait for readiness [%(default)s]")
    up.set_defaults(handler=_up)
    sub.add_parser("down", parents=[common], help="stop the cluster's daemons").set_defaults(handler=_down)
    status = sub.add_parser("status", parents=[common], help="show hosts, users and daemons; exit 1 if not up")
    status.add_argument("--json", action="store_true", help="machine-readable")
    status.set_defaults(handler=_status)
    sub.add_parser("env", parents=[common], help="print `export` lines for eval").set_defaults(handler=_env)
    token = sub.add_parser("token", parents=[common], help="print a JWT for the REST API")
    token.add_argument("--lifespan", type=int, default=600, help="seconds [%(default)s]")
    token.add_argument("--username", default=None, help="user the token is for [caller]")
    token.set_defaults(handler=_token)
    run = sub.add_parser("exec", parents=[common], help="run a command as a lab user on the submit host",
                         description="Run COMMAND as a lab user on the submit host with the lab's environment "
                                     "(HOME, PATH with the site venv first, SLURM_CONF, HCQW_MUNGE_SOCKET); "
                                     "exit with its exit code.")
    run.add_argument("--user", required=True, help="the lab user (hcqw-alice, hcqw-bob)")
    run.add_argument("--cwd", type=Path, default=None, help="working directory [the user's home]")
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    run.set_defaults(handler=_exec)


def _cluster(args: argparse.Namespace) -> "LabCluster":
    from hcqw.lab.cluster import LabCluster

    return LabCluster.from_dir(args.dir, name=args.name, port_base=args.port_base, cpu_nodes=args.cpu_nodes,
                               qpu_nodes=args.qpu_nodes, simulator=args.simulator, accounting=args.accounting,
                               staging_depth=args.staging_depth)


def _up(args: argparse.Namespace) -> int:
    lab = _cluster(args)
    lab.up(timeout=args.timeout)
    root = shlex.quote(str(lab.root))
    print(f"lab cluster {lab.cluster_name} is up in {lab.root}")
    print("  hosts:    " + ", ".join(f"{h.name} ({h.role}, {h.address})" for h in lab.hosts))
    print(f"  REST API: {lab.rest_url}")
    print(f"  as a user: hcqw lab exec --dir {root} --user {lab.users[0]} -- sinfo")
    print(f"  as root:   eval \"$(hcqw lab env --dir {root})\"")
    return 0


def _down(args: argparse.Namespace) -> int:
    _cluster(args).down()
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _cluster(args).status()
    if args.json:
        print(json.dumps(status, indent=2))
        return 0 if status["up"] else 1
    print(f"cluster {status['cluster']} in {status['root']}: {'up' if status['up'] else 'DOWN'}")
    print(f"  hosts (subnet {status['subnet']}, bridge {status['bridge']}):")
    for host in status["hosts"]:
        print(f"    {host['name']:<16} {host['role']:<7} {host['address']:<15} {host['namespace'] or '(this machine)'}")
    print("  users: " + ", ".join(f"{u['name']} ({u['role']})" for u in status["users"]))
    print("  daemons:")
    for daemon in status["daemons"]:
        pid = daemon["pid"]
        print(f"    {daemon['name']:<24} {daemon['host']:<14} {daemon['user']:<9} "
              f"{'pid ' + str(pid) if pid else 'not running'}")
    print(f"  REST API: {status['rest_url']}")
    return 0 if status["up"] else 1


def _env(args: argparse.Namespace) -> int:
    for key, value in _cluster(args).env.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _token(args: argparse.Namespace) -> int:
    sys.stdout.write(_cluster(args).token(lifespan=args.lifespan, username=args.username) + "\n")
    return 0


def _exec(args: argparse.Namespace) -> int:
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise SystemExit("hcqw lab exec: give the command after --, e.g. `hcqw lab exec --user hcqw-alice -- sinfo`")
    return _cluster(args).exec(args.user, argv, cwd=args.cwd).returncode
