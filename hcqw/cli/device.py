"""``hcqw device serve | status | stats | set-status | drain | shutdown``.

Light at import time (the CLI builds every subcommand's parser): cirq, zmq and mpi4py are
imported inside the handlers. ``python -m hcqw.cli.device serve ...`` runs these commands
without the rest of the CLI (what tests, benchmarks and ``mpiexec`` launches use).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def register(subparsers) -> None:
    from hcqw.service.limits import WorkLimits
    device = subparsers.add_parser("device", help="the QPU service on the service node")
    commands = device.add_subparsers(dest="device_command", required=True)

    serve = commands.add_parser("serve", help="run the QPU service (owns the quantum device)")
    serve.add_argument("--address", default="", help="tcp://127.0.0.1:PORT, ipc:///path, mpi:file:/path or "
                       "mpi:name:SERVICE (default: $HCQW_SERVICE_ADDRESS or an ipc socket in a private state dir)")
    serve.add_argument("--transport", choices=["zmq", "mpi"], default=None,
                       help="shorthand: 'mpi' with no --address uses mpi:file:<state dir>/service/qpu.port")
    serve.add_argument("--simulator", default="qsim", help="the device's simulator: qsim (default), cirq, modelled "
                       "or module:Class")
    serve.add_argument("--threads", type=int, default=None, help="simulator threads (default: allowed cores)")
    serve.add_argument("--seed", type=int, default=None)
    serve.add_argument("--policy", default="fifo", help="queue policy: fifo, round-robin (per workflow), round-robin-user (per authenticated user), priority")
    serve.add_argument("--exclusive-sessions", action="store_true",
                       help="execute one session at a time: a session that started executing keeps the device until "
                            "it ends; the others stay open with their runs queued (staged), next in the policy's "
                            "order (for a qpu host whose gres count lets SLURM stage several jobs)")
    serve.add_argument("--max-exclusive-seconds", type=float, default=900.0,
                       help="with --exclusive-sessions: close a session that kept the device longer than this "
                            "(default 900), so one job cannot hold it from every staged one")
    serve.add_argument("--grants", default=None, metavar="DIR",
                       help="open sessions only for users holding a running allocation of gres/qpu on this host, "
                            "as recorded in DIR (root's) by SLURM's Prolog/Epilog (docs/site-guide.md)")
    serve.add_argument("--slurmd-spool", default="/var/spool/slurmd", metavar="DIR",
                       help="with --grants: this host's SlurmdSpoolDir (%%n expanded), where each running job step's "
                            "slurmstepd listens; a grant counts only while its job runs a step here "
                            "(default /var/spool/slurmd, SLURM's default)")
    serve.add_argument("--log", default=None, help="metrics log (JSON lines); '' disables")
    serve.add_argument("--session-timeout", type=float, default=60.0,
                       help="drop a session (and its queued runs) after this many seconds without a request "
                            "or heartbeat")
    serve.add_argument("--max-message", type=int, default=None, help="largest accepted request in bytes")
    serve.add_argument("--address-file", default=None, help="write the bound address here once ready")
    serve.add_argument("--auth", choices=["auto", "munge", "none"], default="auto",
                       help="who may connect: munge = every open and control request carries a MUNGE credential "
                            "(any user; a tcp address may be non-loopback, an ipc socket is made connectable by "
                            "all); none = only this user, through an ipc socket in a private directory; auto "
                            "(default) = none for such a private ipc address, else munge")
    serve.add_argument("--owner-only", action="store_true",
                       help="serve only this account's own sessions (a job's gateway; a personal service)")
    serve.add_argument("--operators", default="", metavar="USER,...",
                       help="users allowed service control and the full status, besides this account and root")
    limits = WorkLimits()
    for flag, name, help_ in (
            ("--max-item-shots", "item_shots", "repetitions x sweep points per work item"),
            ("--max-run-shots", "run_shots", "repetitions x sweep points per run request"),
            ("--max-result-bytes", "result_bytes", "sample bytes one run request may return"),
            ("--max-qubits", "qubits", "qubits per circuit (default: the device's limit)"),
            ("--max-item-seconds", "item_seconds", "modelled device seconds per work item"),
            ("--max-run-seconds", "run_seconds", "modelled device seconds per run request"),
            ("--max-sessions-per-user", "sessions_per_user", "open sessions per user"),
            ("--max-queued-items-per-user", "queued_items_per_user", "queued work items per user")):
        default = getattr(limits, name)
        serve.add_argument(flag, dest=f"limit_{name}", type=float if name.endswith("seconds") else int,
                           default=default, help=f"{help_} (default {default})")
    serve.add_argument("--mpi-max-clients", type=int, default=None,
                       help="stop accepting MPI connections after this many (frees the busy accept thread)")
    serve.add_argument("--log-group", default=None, metavar="GROUP",
                       help="the metrics log is 0640: readable by the service's account and this group (admins)")
    serve.add_argument("--priority-grant", action="append", default=[], metavar="USER=N",
                       help="let USER's sessions have priority up to N (policy priority; others are capped at 0, "
                            "so users can lower their priority but not raise it); repeatable")
    serve.add_argument("--mpi-clients-group", default=None, metavar="GROUP",
                       help="only members of this group may connect over MPI (default: the service's own group)")
    serve.add_argument("--metrics-address", default=None, metavar="IP:PORT",
                       help="serve Prometheus metrics (device status, queue, sessions, busy seconds per user and "
                            "workflow, limits hit, refusals) at http://IP:PORT/metrics, e.g. 127.0.0.1:9464; "
                            "off by default (needs hcqw[metrics]; docs/site-guide.md, Monitoring)")
    serve.set_defaults(handler=_serve)

    def client_parser(name: str, help_: str):
        parser = commands.add_parser(name, help=help_)
        parser.add_argument("--address", default=None, help="service address (default as for serve)")
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a reply")
        return parser

    status = client_parser("status", "device status, queue and sessions of a running service")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)
    set_status = client_parser("set-status", "mark the device calibrating/offline (queued work waits) or idle")
    set_status.add_argument("status", choices=["idle", "calibrating", "offline"])
    set_status.add_argument("--reason", default="")
    set_status.set_defaults(handler=_set_status)
    for name, help_ in (("drain", "accept no new sessions; exit once open sessions close"),
                        ("shutdown", "fail queued work and stop the service")):
        client_parser(name, help_).set_defaults(handler=_control, control=name)

    stats = commands.add_parser("stats", help="utilization, idle gaps, quantum seconds per workflow and user")
    stats.add_argument("--log", default=None, help="metrics log (default: the service's default log)")
    stats.add_argument("--device", default=None, help="only this device's events")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=_stats)


def _grant(text: str) -> tuple[str, int]:
    user, sep, cap = text.partition("=")
    if not sep or not user or not cap.lstrip("-").isdigit():
        raise SystemExit(f"--priority-grant {text!r}: expected USER=N, e.g. --priority-grant alice=10")
    return user, int(cap)


def _serve(args: argparse.Namespace) -> int:
    from hcqw.paths import state_dir
    from hcqw.service import protocol as P
    from hcqw.service.limits import WorkLimits
    from hcqw.service.server import ServiceConfig, serve

    address = args.address
    if not address and args.transport == "mpi":
        address = f"mpi:file:{state_dir() / 'service' / 'qpu.port'}"
    serve(ServiceConfig(address=address, simulator=args.simulator, threads=args.threads, seed=args.seed,
                        policy=args.policy, metrics=args.log, session_timeout=args.session_timeout,
                        max_message=args.max_message or P.MAX_MESSAGE_BYTES, address_file=args.address_file,
                        mpi_max_clients=args.mpi_max_clients, mpi_clients_group=args.mpi_clients_group,
                        priority_grants=tuple(_grant(g) for g in args.priority_grant), log_group=args.log_group,
                        auth=args.auth, owner_only=args.owner_only,
                        exclusive_sessions=args.exclusive_sessions, grants=args.grants, slurmd_spool=args.slurmd_spool,
                        max_exclusive_seconds=args.max_exclusive_seconds, metrics_address=args.metrics_address,
                        operators=tuple(n.strip() for n in args.operators.split(",") if n.strip()),
                        limits=WorkLimits(**{k[len("limit_"):]: v for k, v in vars(args).items()
                                             if k.startswith("limit_")})))
    return 0


def _client(args: argparse.Namespace):
    from hcqw.service.client import ServiceClient

    return ServiceClient(args.address, timeout=args.timeout)


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        status = client.status()
    if args.json:
        json.dump(status, sys.stdout, indent=2)
        print()
        return 0
    reason = f" ({status['reason']})" if status["reason"] else ""
    print(f"device {status['device']}: {status['status']}{reason}; policy {status['policy']}; "
          f"{status['queued']} queued; {status['open_sessions']} sessions; {status['served']} jobs served; "
          f"up {status['uptime']:.0f} s{'; draining' if status['draining'] else ''}")
    for entry in status["queue"]:
        if entry["mine"]:
            print(f"  #{entry['position']:<4} {entry['workflow']}/{entry['node']} session {entry['session']}")
        else:
            print(f"  #{entry['position']:<4} (another user's)")
    return 0


def _set_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        print(client.set_status(args.status, args.reason))
    return 0


def _control(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = getattr(client, args.control)()
    if result:
        print(json.dumps(result))
    return 0


def _stats(args: argparse.Namespace) -> int:
    from hcqw.service.server import default_metrics_path
    from hcqw.service.stats import compute_stats, format_stats

    stats = compute_stats(args.log or default_metrics_path(), device=args.device)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m hcqw.cli.device serve`` means ``hcqw device serve``."""
    from hcqw.errors import HcqwError

    parser = argparse.ArgumentParser(prog="python -m hcqw.cli.device")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    register(parser.add_subparsers(dest="command", required=True))
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = [a for a in argv if a in ("-v", "-vv", "--verbose")]
    rest = [a for a in argv if a not in verbose]
    args = parser.parse_args([*verbose, "device", *rest])
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except HcqwError as err:
        print(f"hcqw: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
