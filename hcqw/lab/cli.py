"""``hcqw lab up|down|status|env|token``: the local SLURM lab cluster from the shell.

Kept light (stdlib only at import time): the main CLI imports this module
whenever it builds its parser.

Typical use::

    hcqw lab up                 # installs packages if needed, starts the cluster in /tmp/hcqw-lab
    eval "$(hcqw lab env)"      # point sbatch/squeue/... at it
    hcqw lab token              # JWT for the REST API
    hcqw lab down
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # avoid importing the cluster code just to build the parser
    from hcqw.lab.cluster import LabCluster

DEFAULT_DIR = "/tmp/hcqw-lab"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hcqw lab ...`` to the main parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=Path(os.environ.get("HCQW_LAB_DIR") or DEFAULT_DIR),
                        help="cluster directory (state, logs, configs) [$HCQW_LAB_DIR or %(default)s]")
    common.add_argument("--name", default=None, help="cluster name, prefixes node names [last used, else hcqw]")
    common.add_argument("--port-base", type=int, default=None,
                        help="first of the cluster's ports (slurmctld; see hcqw.lab.layout) [last used, else 6817]")
    common.add_argument("--cpu-nodes", type=int, default=None, help="nodes in the cpu partition [last used, else 2]")
    common.add_argument("--accounting", action="store_true", default=None,
                        help="also run MariaDB + slurmdbd so sacct works")

    lab = subparsers.add_parser("lab", help="a real SLURM cluster on 127.0.0.1 for tests and development",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = lab.add_subparsers(dest="lab_command", required=True)

    up = sub.add_parser("up", parents=[common], help="start the cluster (idempotent)")
    up.add_argument("--timeout", type=float, default=60, help="seconds to wait for readiness [%(default)s]")
    up.set_defaults(handler=_up)
    sub.add_parser("down", parents=[common], help="stop the cluster's daemons").set_defaults(handler=_down)
    sub.add_parser("status", parents=[common], help="show daemons and nodes; exit 1 if not up").set_defaults(
        handler=_status)
    sub.add_parser("env", parents=[common], help="print `export` lines for eval").set_defaults(handler=_env)
    token = sub.add_parser("token", parents=[common], help="print a JWT for the REST API")
    token.add_argument("--lifespan", type=int, default=600, help="seconds [%(default)s]")
    token.add_argument("--username", default=None, help="user the token is for [caller]")
    token.set_defaults(handler=_token)


def _cluster(args: argparse.Namespace) -> "LabCluster":
    from hcqw.lab.cluster import LabCluster

    return LabCluster.from_dir(args.dir, name=args.name, port_base=args.port_base, cpu_nodes=args.cpu_nodes,
                               accounting=args.accounting)


def _up(args: argparse.Namespace) -> int:
    lab = _cluster(args)
    lab.up(timeout=args.timeout)
    print(f"lab cluster {lab.cluster_name} is up in {lab.root}")
    print(f"  REST API: {lab.rest_url}")
    print(f"  use it:   eval \"$(hcqw lab env --dir {shlex.quote(str(lab.root))})\"")
    return 0


def _down(args: argparse.Namespace) -> int:
    _cluster(args).down()
    return 0


def _status(args: argparse.Namespace) -> int:
    lab = _cluster(args)
    print(f"cluster {lab.cluster_name} in {lab.root}: {'up' if lab.is_up() else 'DOWN'}")
    for name, pid in lab.daemon_pids().items():
        print(f"  {name:<24} {'pid ' + str(pid) if pid else 'not running'}")
    print(f"  REST API: {lab.rest_url}")
    return 0 if lab.is_up() else 1


def _env(args: argparse.Namespace) -> int:
    for key, value in _cluster(args).env.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _token(args: argparse.Namespace) -> int:
    sys.stdout.write(_cluster(args).token(lifespan=args.lifespan, username=args.username) + "\n")
    return 0
