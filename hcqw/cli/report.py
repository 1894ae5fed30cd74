"""``hcqw report RUN_DIR...``: the co-scheduling figures of runs, as a table or JSON.

Also what ``hcqw timeline`` shares with it: the RUN_DIR arguments and reading them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser("report", help="the co-scheduling figures of runs, as a table or JSON")
    add_runs(report)
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(handler=_report)


def add_runs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="a run directory (every metrics/qpu.jsonl below it is one run) or a metrics file; "
                             "several are shown side by side, e.g. monolithic and split")
    parser.add_argument("--label", action="append", default=None,
                        help="label of each RUN_DIR in order (default: the directory name); repeatable")
    parser.add_argument("--device", default=None,
                        help="only this device's hold/exec events (default: every device, each with its own "
                             "lane and figures, and the run's totals)")


def load_runs(args: argparse.Namespace) -> dict[str, list]:
    """label -> events, in the order given."""
    from hcqw.errors import HcqwError
    from hcqw.timeline.devices import device_names, only_device, resolve_devices
    from hcqw.timeline.events import load_run

    labels = args.label or []
    if labels and len(labels) != len(args.runs):
        raise HcqwError(f"--label given {len(labels)} time(s) for {len(args.runs)} RUN_DIR(s); give one per RUN_DIR")
    runs: dict[str, list] = {}
    for index, path in enumerate(args.runs):
        label = labels[index] if labels else (path.resolve().name or str(path))
        if label in runs:
            label = f"{label} ({index + 1})"
        events = load_run(path)
        if not events:
            raise HcqwError(f"{path}: the metrics log holds no events")
        if args.device:
            known = device_names(resolve_devices(events))
            if args.device not in known:
                raise HcqwError(f"{path}: no hold or exec of device {args.device!r}; its devices: "
                                f"{', '.join(repr(name) for name in known) or 'none'}")
            events = only_device(events, args.device)
        runs[label] = events
    return runs


def summaries(runs: dict[str, list]) -> dict:
    from hcqw.timeline.analysis import summarize

    return {label: summarize(events) for label, events in runs.items()}


def _report(args: argparse.Namespace) -> int:
    from hcqw.timeline.report import format_table, to_json

    figures = summaries(load_runs(args))
    print(to_json(figures) if args.json else format_table(figures))
    return 0
