"""Fair share between users on one QPU (issue 14): nice-by-iteration on and off, side by side.

    hcqw lab up --dir DIR --port-base P --accounting [--simulator modelled]
    .venv/bin/python bench/fair_share.py --lab-dir DIR [--runs 2] [--iterations 6] [--hold 1.0] [--json out.json]

Runs the scenario of ``tests/usage/fair_share.py`` (hcqw-alice submits four split chains, hcqw-bob
one, together, on one qpu node) ``--runs`` times with ``nice = iteration x 1000`` (hcqw's rule) and
with nice 0, alternating, and prints per run: the light user's longest wait for the QPU, the
longest quantum block and hand-over (SLURM's records), whether the light user was starved (wait >
block + hand-over + 1 s) and whether its workflow ended before the heavy user's last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from hcqw.hetjob.chain import NICE_STEP, WINDOW_RECORDS
    from hcqw.lab import LabCluster
    from hcqw.slurm import open_backend
    from tests.usage import fair_share

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lab-dir", type=Path, required=True, help="a running lab with --accounting")
    p.add_argument("--runs", type=int, default=2, help="runs per rule (alternating)")
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--hold", type=float, default=1.0, help="seconds each quantum block keeps the device")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    lab = LabCluster.from_dir(args.lab_dir)
    os.environ.update(lab.env)
    backend = open_backend("slurm", env=lab.env, poll_interval=0.5)
    qpu_node = next(h.name for h in lab.hosts if h.role == "qpu")
    rows = []
    with fair_share.only_qpu_node(lab, qpu_node):
        for run in range(args.runs):
            for rule, step, window in (("window 5 records", 0, WINDOW_RECORDS),
                                       ("whole, nice = iteration x 1000", NICE_STEP, None), ("whole, nice 0", 0, None)):
                tag = f"fs{int(time.time())}-{step}-{window}"
                figures, _ = fair_share.run(lab, backend, tag, iterations=args.iterations, hold=args.hold, nice_step=step,
                                            window=window)
                row = {"run": run, "rule": rule, **asdict(figures), "light_not_starved": figures.light_not_starved,
                       "light_finishes_first": figures.light_finishes_first,
                       "light_end_s": figures.light_end - (figures.heavy_last_end - figures.makespan)}
                rows.append(row)
                print(f"run {run} {rule:24s} light wait max {figures.light_wait_max:5.1f} s  block max "
                      f"{figures.block_max:4.1f} s  hand-over max {figures.handover_max:4.1f} s  not starved "
                      f"{figures.light_not_starved}  light ends first {figures.light_finishes_first}  makespan "
                      f"{figures.makespan:5.1f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print("| run | rule | light wait max s | block max s | hand-over max s | not starved | light ends before heavy's last | makespan s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['rule']} | {r['light_wait_max']:.0f} | {r['block_max']:.0f} | {r['handover_max']:.0f} | "
              f"{'yes' if r['light_not_starved'] else 'NO'} | {'yes' if r['light_finishes_first'] else 'NO'} | "
              f"{r['makespan']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
