"""Where a quantum node's charged-but-idle QPU time goes (issue 14): per quantum node of a SLURM run of
``bench/coschedule.py``, the phases from the qpu component's allocation to its release.

    .venv/bin/python bench/charge_phases.py RUN_DIR --lab-dir LAB_DIR

Times are seconds after the qpu component was allocated, to the millisecond: the allocation and the
release (``scancel`` reaching slurmctld) from the lab's slurmctld log, the rest from the run's own logs:
the gateway's log (its cluster address known, its address published), the node's metrics (``ready``:
its own start-up done, ``hold``: session open) and the gateway's exec events. ``charged`` is SLURM's
record (sacct ElapsedRaw, whole seconds: the start and end are each cut to the second).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

PHASES = ("address", "published", "ready", "hold", "first_exec", "last_exec_end", "released")
_STARTED = re.compile(r"\[(\S+)\] sched/backfill: _start_job: Started JobId=(\d+)\+1\(")
_CANCELLED = re.compile(r"\[(\S+)\] _slurm_rpc_kill_job: REQUEST_KILL_JOB JobId=(\d+)\+1 ")


def qpu_allocations(slurmctld_log: Path) -> dict[str, tuple[float, float]]:
    """Hetjob leader id -> (qpu component allocated, its cancellation received), from slurmctld's log."""
    started: dict[str, float] = {}
    cancelled: dict[str, float] = {}
    for line in slurmctld_log.read_text(errors="replace").splitlines():
        for pattern, into in ((_STARTED, started), (_CANCELLED, cancelled)):
            if (match := pattern.match(line)):
                into.setdefault(match.group(2), datetime.fromisoformat(match.group(1)).timestamp())
    return {job: (start, cancelled[job]) for job, start in started.items() if job in cancelled}


def _logged_at(log: list[str], marker: str) -> float:
    line = next(line for line in log if marker in line)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def node_phases(run: Path, allocations: dict[str, tuple[float, float]]) -> list[dict]:
    """One row per quantum node of every workflow directory under ``run``."""
    rows = []
    for metrics in sorted(run.glob("**/metrics/qpu.jsonl")):
        workflow = metrics.parent.parent
        events = [json.loads(line) for line in metrics.read_text().splitlines()]
        execs = [json.loads(line) for line in (metrics.parent / "gateway.jsonl").read_text().splitlines()]
        for job_dir in sorted((workflow / "jobs").glob("q*.*")):
            node, leader = job_dir.name.split(".")[:2]
            if leader not in allocations:
                continue
            start, released = allocations[leader]
            gateway_log = (job_dir / "gateway.log").read_text().splitlines()
            mine = {e["kind"]: e for e in events if e.get("node") == node}
            runs = [e for e in execs if e.get("node") == node and e["kind"] == "exec"]
            charged = subprocess.run(["sacct", "-n", "-P", "-X", "-j", f"{leader}+1", "-o", "ElapsedRaw"],
                                     capture_output=True, text=True, check=True).stdout.split()
            rows.append({
                "workflow": workflow.name, "node": node, "charged": int(charged[0]), "allocated": released - start,
                "busy": sum(e["end"] - e["start"] for e in runs),
                "address": _logged_at(gateway_log, "cluster address") - start,
                "published": _logged_at(gateway_log, "relaying") - start,
                "ready": mine["ready"]["start"] - start, "hold": mine["hold"]["start"] - start,
                "first_exec": min(e["start"] for e in runs) - start,
                "last_exec_end": max(e["end"] for e in runs) - start, "released": released - start,
            })
    return rows


def phase_table(rows: list[dict]) -> str:
    """Markdown: one line per quantum node, their means, then the run's totals and ratios."""
    columns = ("charged", "allocated", "busy", *PHASES)
    lines = ["| workflow | node | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    lines += [f"| {row['workflow']} | {row['node']} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |"
              for row in rows]
    lines.append("| mean | | " + " | ".join(f"{statistics.fmean(r[c] for r in rows):.3f}" for c in columns) + " |")
    total = {c: sum(r[c] for r in rows) for c in ("charged", "allocated", "busy")}
    lines.append(f"\n{len(rows)} quantum nodes: charged {total['charged']} s (SLURM), allocated "
                 f"{total['allocated']:.2f} s (to the ms), busy {total['busy']:.2f} s; busy/charged "
                 f"{total['busy'] / total['charged']:.3f}, busy/allocated {total['busy'] / total['allocated']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a --backend slurm split run's --out directory (gateways relaying)")
    p.add_argument("--lab-dir", type=Path, required=True, help="the lab it ran on (its slurmctld log)")
    args = p.parse_args(argv)
    rows = node_phases(args.run, qpu_allocations(args.lab_dir / "log" / "slurmctld.log"))
    if not rows:
        print(f"no quantum node of {args.run} found in the lab's slurmctld log", file=sys.stderr)
        return 1
    print(phase_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
