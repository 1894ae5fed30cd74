"""``hcqw timeline RUN_DIR...``: Gantt charts of runs and their co-scheduling figures.

Light at import time: the CLI builds every subcommand's parser, so matplotlib is imported
only inside the timeline handler.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hcqw.cli.report import add_runs, load_runs, summaries

log = logging.getLogger(__name__)

FORMATS = ("png", "svg", "html")


def register(subparsers: argparse._SubParsersAction) -> None:
    timeline = subparsers.add_parser(
        "timeline", help="Gantt chart of QPU and CPU occupancy (PNG, SVG, HTML) and the co-scheduling figures")
    add_runs(timeline)
    timeline.add_argument("--out", type=Path, default=None,
                          help="output directory (default: the first RUN_DIR)")
    timeline.add_argument("--name", default="timeline", help="base name of the output files (default: timeline)")
    timeline.add_argument("--format", default=",".join(FORMATS),
                          help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    timeline.add_argument("--title", default=None, help="figure title")
    timeline.set_defaults(handler=_timeline)


def _timeline(args: argparse.Namespace) -> int:
    from hcqw.errors import HcqwError
    from hcqw.timeline.report import format_table

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise HcqwError(f"--format {args.format!r}: choose from {', '.join(FORMATS)}")
    runs = load_runs(args)
    figures = summaries(runs)
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
    print(format_table(figures))
    for path in written:
        print(f"wrote {path}")
    return 0
