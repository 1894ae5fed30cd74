"""``hcqw timeline RUN_DIR...`` and ``hcqw report RUN_DIR...``.

Light at import time: the CLI builds every subcommand's parser, so matplotlib is imported
only inside the timeline handler.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)

FORMATS = ("png", "svg", "html")


def register(subparsers: argparse._SubParsersAction) -> None:
    timeline = subparsers.add_parser(
        "timeline", help="Gantt chart of QPU and CPU occupancy (PNG, SVG, HTML) and the co-scheduling figures")
    _add_runs(timeline)
    timeline.add_argument("--out", type=Path, default=None,
                          help="output directory (default: the first RUN_DIR)")
    timeline.add_argument("--name", default="timeline", help="base name of the output files (default: timeline)")
    timeline.add_argument("--format", default=",".join(FORMATS),
                          help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    timeline.add_argument("--title", default=None, help="figure title")
    timeline.set_defaults(handler=_timeline)

    report = subparsers.add_parser("report", help="the co-scheduling figures of runs, as a table or JSON")
    _add_runs(report)
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(handler=_report)


def _add_runs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="a run directory (every metrics/qpu.jsonl below it is one run) or a metrics file; "
                             "several are shown side by side, e.g. monolithic and split")
    parser.add_argument("--label", action="append", default=None,
                        help="label of each RUN_DIR in order (default: the directory name); repeatable")
    parser.add_argument("--device", default=None,
                        help="only this device's hold/exec events (default: every device, each with its own "
                             "lane and figures, and the run's totals)")


def _load(args: argparse.Namespace) -> dict[str, list]:
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


def _summaries(runs: dict[str, list]) -> dict:
    from hcqw.timeline.analysis import summarize

    return {label: summarize(events) for label, events in runs.items()}


def _report(args: argparse.Namespace) -> int:
    from hcqw.timeline.report import format_table, to_json

    summaries = _summaries(_load(args))
    print(to_json(summaries) if args.json else format_table(summaries))
    return 0


def _timeline(args: argparse.Namespace) -> int:
    from hcqw.errors import HcqwError
    from hcqw.timeline.report import format_table

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise HcqwError(f"--format {args.format!r}: choose from {', '.join(FORMATS)}")
    runs = _load(args)
    summaries = _summaries(runs)
    out = args.out or (args.runs[0] if args.runs[0].is_dir() else args.runs[0].parent)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    image_formats = [f for f in formats if f in ("png", "svg")]
    if image_formats:
        from hcqw.timeline.plot import render

        written += render(runs, out / args.name, image_formats, title=args.title)
    if "html" in formats:
        from hcqw.timeline.html import render_html

        written.append(render_html(runs, out / f"{args.name}.html", title=args.title))
    print(format_table(summaries))
    for path in written:
        print(f"wrote {path}")
    return 0
