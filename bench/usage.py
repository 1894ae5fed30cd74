"""How long ``hcqw usage`` takes against real SLURM accounting (issue 14).

    eval "$(.venv/bin/hcqw lab env --dir DIR)"      # a lab started with --accounting
    .venv/bin/python bench/usage.py [--hetjobs 25] [--plain 25] [--runs 5] [--json out.json]

Submits ``--hetjobs`` cpu+qpu hetjobs named as hcqw names them (``hcqw:<workflow>:<node>``, the
qpu component released with scancel after a 1 s block, as a quantum node does) and ``--plain``
plain 1 s qpu jobs (the one qpu node runs them one after another: about a minute for 50),
waits until slurmdbd lists them all, then times, ``--runs`` times each: the ``sacct`` call alone,
``hcqw.usage.collect.collect`` in this process, and the ``hcqw usage`` command (a fresh Python
process, as an admin runs it). Prints the medians and the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

HETJOB = """#!/bin/bash
#SBATCH --job-name=hcqw:{workflow}:q{index:04d}
#SBATCH --partition=cpu --ntasks=1 --output=/dev/null
#SBATCH hetjob
#SBATCH --partition=qpu --gres=qpu:1 --ntasks=1
srun --het-group=1 -n1 sleep 1
scancel "$SLURM_JOB_ID_HET_GROUP_1"
"""


def sbatch(args: list[str], script: str | None = None) -> str:
    return subprocess.run(["sbatch", "--parsable", *args], input=script, capture_output=True, text=True,
                          check=True).stdout.strip()


def submit(hetjobs: int, plain: int, workdir: Path) -> list[str]:
    jobs = []
    for index in range(max(hetjobs, plain)):
        if index < hetjobs:
            jobs.append(sbatch([f"--chdir={workdir}"], HETJOB.format(workflow=f"bench-w{index % 5}", index=index)))
        if index < plain:
            jobs.append(sbatch(["-p", "qpu", "--gres=qpu:1", "-o", "/dev/null", f"--chdir={workdir}", "--wrap", "sleep 1"]))
    return jobs


def finished_rows(since: str) -> list[str]:
    out = subprocess.run(["sacct", "-a", "-X", "-n", "-P", "-o", "JobID,End", "-S", since, "-E", "now"],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if not line.endswith("|Unknown")]


def median_seconds(action, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hetjobs", type=int, default=25)
    parser.add_argument("--plain", type=int, default=25)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if "SLURM_CONF" not in os.environ:
        parser.error("set SLURM_CONF to a lab with accounting: eval \"$(hcqw lab env --dir DIR)\"")
    from hcqw.usage.collect import collect
    from hcqw.usage.period import Period
    from hcqw.usage.sacct import sacct_command

    since = int(time.time()) - 1
    since_text = datetime.fromtimestamp(since).isoformat()
    with tempfile.TemporaryDirectory(prefix="hcqw-bench-usage-") as workdir:
        started = time.monotonic()
        jobs = submit(args.hetjobs, args.plain, Path(workdir))
        expected = args.hetjobs * 2 + args.plain
        while len(finished_rows(since_text)) < expected:
            if time.monotonic() - started > 600:
                raise SystemExit(f"only {len(finished_rows(since_text))}/{expected} sacct rows after 600 s")
            time.sleep(1)
        ran = time.monotonic() - started
    period = Period(since=since)
    table = collect([], period, "sacct")
    command = [sys.executable, "-m", "hcqw", "usage", "--charge", "sacct", "--since", since_text]
    figures = {
        "jobs": len(jobs), "sacct_rows": expected, "charges": table.total.charges,
        "charged_s": table.total.charged_s, "rows": len(table.rows), "submit_to_recorded_s": ran,
        "sacct_s": median_seconds(lambda: subprocess.run(sacct_command(period), capture_output=True, check=True),
                                  args.runs),
        "collect_s": median_seconds(lambda: collect([], period, "sacct"), args.runs),
        "command_s": median_seconds(lambda: subprocess.run(command, capture_output=True, check=True), args.runs),
        "runs": args.runs, "load_average": os.getloadavg(),
    }
    print(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
