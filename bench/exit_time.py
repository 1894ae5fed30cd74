"""How long a node's process takes to end after its last line, with and without the interpreter's teardown
(issue 22, point 3): a child imports cirq and qsimcirq (as a node that simulated or built circuits
does), prints the time, and ends with ``sys.exit`` or with ``hcqw.hetjob.runtime.exit_now`` (flush, then
``os._exit``); the parent takes the time when it has reaped it.

    .venv/bin/python bench/exit_time.py [--reps 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CHILD = ("import sys, time, cirq, qsimcirq\n"
         "from hcqw.hetjob.runtime import exit_now\n"
         "print(time.time(), flush=True)\n"
         "exit_now(0) if sys.argv[1] == 'exit_now' else sys.exit(0)\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    figures: dict[str, list[float]] = {"sys.exit": [], "exit_now": []}
    for _ in range(args.reps):
        for mode in figures:  # alternating, side by side
            out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True).stdout
            figures[mode].append(time.time() - float(out.strip()))
    for mode, times in figures.items():
        print(f"{mode:9s} last line -> reaped: median {statistics.median(times):.3f} s, "
              f"min {min(times):.3f}, max {max(times):.3f} ({len(times)} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
