"""``hcqw usage [LOG ...]``: quantum-seconds charged and worked per user, account and workflow."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "usage", help="quantum-seconds per user, account and workflow: charged (SLURM or holds) beside device busy",
        description="SLURM's charge for the quantum device (gres/qpu allocation time from sacct) beside the "
                    "device's busy time (exec events of the logs given) and their ratio, per user, account and "
                    "workflow. Without SLURM accounting the charge is the logs' hold intervals.")
    p.add_argument("logs", nargs="*", type=Path, metavar="LOG",
                   help="a run directory (every metrics/qpu.jsonl and metrics/gateway.jsonl below it) or a "
                        "metrics log, e.g. a QPU service's --metrics file; repeatable")
    p.add_argument("--charge", choices=("auto", "sacct", "hold"), default="auto",
                   help="where the charge comes from: sacct (SLURM accounting), hold (the logs' hold intervals), "
                        "auto: sacct if SLURM accounting answers, else hold (default)")
    p.add_argument("--since", default=None,
                   help="period start: now, today, [-]<N>{s,m,h,d,w} back from now (e.g. 1d, --since=-90m) or an ISO date/time in local time "
                        "(default: the first record)")
    p.add_argument("--until", default=None, help="period end, same forms as --since (default: now)")
    p.add_argument("--partition", default="qpu",
                   help="the partition(s) of the qpu hosts, comma-separated, where sacct looks for gres/qpu "
                        "allocations ('all': every partition; default: qpu)")
    p.add_argument("--service-account", action="append", default=None, metavar="USER",
                   help="an account whose logs are believed about who each event's user was (the resident QPU "
                        "service's; default hcqw-qpu); events in any other user's log are charged to that log's "
                        "owner; repeatable")
    p.add_argument("--by", default="user,account,workflow",
                   help="group rows by these, comma-separated (default: user,account,workflow)")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON")
    output.add_argument("--csv", action="store_true", help="print CSV (rows only, no total)")
    p.set_defaults(handler=_usage)


def _usage(args: argparse.Namespace) -> int:
    from hcqw.usage.period import Period, UsageError, parse_when
    from hcqw.usage.report import format_table, to_csv, to_json
    from hcqw.usage.table import parse_groups
    from hcqw.usage.collect import collect
    from hcqw.usage.logs import SERVICE_ACCOUNTS

    by = parse_groups(args.by)
    period = Period(parse_when(args.since) if args.since else None, parse_when(args.until) if args.until else None)
    if args.charge == "hold" and not args.logs:
        raise UsageError("--charge hold needs metrics logs: give run directories or QPU service logs")
    partitions = () if args.partition == "all" else tuple(p for p in args.partition.split(",") if p)
    table = collect(args.logs, period, args.charge, by, partitions=partitions,
                    service_accounts=args.service_account or SERVICE_ACCOUNTS)
    print(to_json(table) if args.json else to_csv(table).rstrip("\n") if args.csv else format_table(table))
    return 0
