"""``hcqw device serve | status | stats | set-status | drain | shutdown``.

Light at import time (the CLI builds every subcommand's parser): cirq, zmq and mpi4py are
imported inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    device = subparsers.add_parser("device", help="the QPU service on the service node")
    commands = device.add_subparsers(dest="device_command", required=True)

    serve = commands.add_parser("serve", help="run the QPU service (owns the quantum device)")
    serve.add_argument("--address", default="", help="tcp://127.0.0.1:PORT, ipc:///path, mpi:file:/path or "
                       "mpi:name:SERVICE (default: $HCQW_SERVICE_ADDRESS or an ipc socket in a private state dir)")
    serve.add_argument("--transport", choices=["zmq", "mpi"], default=None,
                       help="shorthand: 'mpi' with no --address uses mpi:file:<state dir>/service/qpu.port")
    serve.add_argument("--backend", default="qsim", help="device backend: qsim, cirq or module:Class")
    serve.add_argument("--threads", type=int, default=None, help="simulator threads (default: allowed cores)")
    serve.add_argument("--seed", type=int, default=None)
    serve.add_argument("--policy", default="fifo", help="queue policy: fifo, round-robin, priority")
    serve.add_argument("--log", default=None, help="metrics log (JSON lines); '' disables")
    serve.add_argument("--session-timeout", type=float, default=60.0,
                       help="drop a session (and its queued runs) after this many seconds without a request "
                            "or heartbeat")
    serve.add_argument("--max-message", type=int, default=None, help="largest accepted request in bytes")
    serve.add_argument("--address-file", default=None, help="write the bound address here once ready")
    serve.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback tcp address")
    serve.add_argument("--mpi-max-clients", type=int, default=None,
                       help="stop accepting MPI connections after this many (frees the busy accept thread)")
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


def _serve(args: argparse.Namespace) -> int:
    from hcqw.paths import state_dir
    from hcqw.service import protocol as P
    from hcqw.service.server import ServiceConfig, serve

    address = args.address
    if not address and args.transport == "mpi":
        address = f"mpi:file:{state_dir() / 'service' / 'qpu.port'}"
    serve(ServiceConfig(address=address, backend=args.backend, threads=args.threads, seed=args.seed,
                        policy=args.policy, metrics=args.log, session_timeout=args.session_timeout,
                        max_message=args.max_message or P.MAX_MESSAGE_BYTES, address_file=args.address_file,
                        allow_remote=args.allow_remote, mpi_max_clients=args.mpi_max_clients))
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
          f"{status['queued']} queued; {len(status['sessions'])} sessions; {status['served']} jobs served; "
          f"up {status['uptime']:.0f} s{'; draining' if status['draining'] else ''}")
    for entry in status["queue"]:
        print(f"  #{entry['position']:<4} {entry['workflow']}/{entry['node']} session {entry['session']}")
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
