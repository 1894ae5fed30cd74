"""A run's quantum-node start-ups to the millisecond, and what ran on the lab's cores meanwhile.

The model draws a node's start-up (``Timings.node_startup``) from the machine's load; this measures what a
lab run's own nodes showed. Per quantum node, in every form: the start-up from the qpu component's
allocation (slurmctld's log, milliseconds) to its session's opening (the node's own ``hold`` in its
workflow's metrics: Python's start, imports, the checkpoint, the session; a staged node then waits in the
device's queue), the mean number of the run's classical blocks running during it, and of its other
nodes' start-ups.

    .venv/bin/python -m bench.model.startups RUN_DIR --lab-dir LAB_DIR

``RUN_DIR`` is a ``bench/coschedule.py --backend slurm`` output (each repetition's ``slurm-view.jsonl``
below it), ``LAB_DIR`` the lab it ran on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from bench.charge_phases import qpu_allocations
from hcqw.timeline.analysis import percentile
from hcqw.timeline.events import load_events
from hcqw.workflow import node_parts


def _overlap(span: tuple[float, float], others: list[tuple[float, float]]) -> float:
    """How many of ``others`` ran during ``span``, on average over it."""
    start, end = span
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in others) / (end - start)


def startups(view: Path, allocated: dict[str, float]) -> list[dict]:
    """One row per quantum node of the repetition whose SLURM view is ``view``; ``allocated`` maps hetjob
    leader ids to their qpu component's allocation time."""
    leader = {}
    for path in view.parent.glob("*/jobs/q*.*"):  # <node>.<leader id>; a fused node's quantum part is its q node
        job, job_id = path.name.split(".")[:2]
        leader[(path.parent.parent.name, node_parts(job)[0])] = job_id
    opened: dict[tuple[str, str], float] = {}
    for e in load_events(view.parent.glob("*/metrics/qpu.jsonl")):
        if e.kind == "hold":
            opened[(e.workflow, e.node)] = min(opened.get((e.workflow, e.node), e.start), e.start)
    spans = {key: (allocated[leader[key]], at) for key, at in opened.items()
             if leader.get(key) in allocated and at > allocated[leader[key]]}
    blocks = [(e.start, e.end) for e in load_events([view]) if e.kind == "cpu"]
    return [{"workflow": key[0], "node": key[1], "startup": span[1] - span[0], "blocks": _overlap(span, blocks),
             "others": _overlap(span, [s for k, s in spans.items() if k != key])}
            for key, span in sorted(spans.items())]


def summary(rows: list[dict]) -> dict:
    """The start-ups' median and p95 above it, and the mean overlaps of their shorter and longer halves."""
    ordered = sorted(rows, key=lambda r: r["startup"])
    times = [r["startup"] for r in ordered]
    median = statistics.median(times)
    shorter, longer = ordered[: len(ordered) // 2], ordered[len(ordered) // 2:]
    mean = lambda half, key: statistics.fmean(r[key] for r in half) if half else 0.0  # noqa: E731
    return {"nodes": len(rows), "median": median, "p95_above": percentile(times, 95) - median,
            "blocks_shorter": mean(shorter, "blocks"), "blocks_longer": mean(longer, "blocks"),
            "others_shorter": mean(shorter, "others"), "others_longer": mean(longer, "others")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.model.startups", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="bench/coschedule.py --backend slurm output directories")
    p.add_argument("--lab-dir", type=Path, required=True, help="the lab they ran on (its slurmctld log)")
    args = p.parse_args(argv)
    allocated = {job: start for job, (start, _) in
                 qpu_allocations(args.lab_dir / "log" / "slurmctld.log").items()}
    print("| repetition | nodes | start-up median s | p95 above it s | classical blocks running: shorter half "
          "/ longer half | other start-ups: shorter / longer |\n|---|---|---|---|---|---|")
    found = 0
    for run in args.runs:
        for view in sorted(run.glob("**/slurm-view.jsonl")):
            rows = startups(view, allocated)
            if not rows:
                continue
            found += 1
            s = summary(rows)
            print(f"| {view.parent.relative_to(run)} | {s['nodes']} | {s['median']:.2f} | {s['p95_above']:.2f} | "
                  f"{s['blocks_shorter']:.2f} / {s['blocks_longer']:.2f} | "
                  f"{s['others_shorter']:.2f} / {s['others_longer']:.2f} |")
    if not found:
        print(f"no quantum node of {', '.join(map(str, args.runs))} started in {args.lab_dir}'s slurmctld log: "
              "give the lab the runs ran on", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
