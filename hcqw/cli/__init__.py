"""The ``hcqw`` command.

One rule: the module of ``hcqw <command>`` is ``hcqw/cli/<command>.py``, exposing
``register(subparsers)``. The modules listed here are imported when the parser is built,
so they must stay light (no cirq at import time); the heavy work is imported inside the
command handlers, from the package that does it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hcqw import __version__
from hcqw.errors import HcqwError

#: The commands, each the name of its module here. Add a name (and its module) to add a command.
COMMANDS: list[str] = ["run", "device", "lab", "slurm", "timeline", "report", "usage"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hcqw", description="Hybrid classical-quantum workflows on HPC.")
    parser.add_argument("--version", action="version", version=f"hcqw {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        importlib.import_module(f"hcqw.cli.{command}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        return int(args.handler(args) or 0)
    except HcqwError as err:
        print(f"hcqw: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hcqw: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
