"""``python -m hcqw.service serve ...``: the ``hcqw device`` commands without the rest of the CLI
(what tests, benchmarks and ``mpiexec`` launches use)."""

import argparse
import logging
import sys

from hcqw.errors import HcqwError
from hcqw.service.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hcqw.service")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    # "python -m hcqw.service serve" means "hcqw device serve".
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
