"""The phases the model's timings stand for, measured from a lab cell's ``slurm-view.jsonl``.

SLURM's start and end times have whole seconds (truncated), the metrics logs' exec and cpu times
are exact: a phase that starts at a SLURM time is over-estimated by 0.5 s on average, which the
medians below correct by adding 0.5 s to SLURM-started spans (stated per phase).

    python -m bench.model.phases RUN_DIR/.../slurm-view.jsonl ...
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from hcqw.timeline.events import Event, load_events


def phases(events: list[Event]) -> dict[str, list[float]]:
    """Per node: allocation -> first exec (node start-up, SLURM start truncated: +0.5 s applied),
    last exec -> classical step start, classical end -> next exec (the node's whole way back)."""
    by_wf: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_wf[e.workflow].append(e)
    out: dict[str, list[float]] = defaultdict(list)
    for evs in by_wf.values():
        allocs = {e.node: e.start for e in evs if e.kind in ("hold", "session")}
        execs: dict[str, list[Event]] = defaultdict(list)
        for e in evs:
            if e.kind == "exec":
                execs[e.node].append(e)
        for node, start in allocs.items():
            if execs.get(node):
                out["startup"].append(min(x.start for x in execs[node]) - start - 0.5)
        cpus = sorted((e for e in evs if e.kind == "cpu"), key=lambda e: e.start)
        exec_ends = sorted(x.end for xs in execs.values() for x in xs)
        exec_starts = sorted(x.start for xs in execs.values() for x in xs)
        for cpu in cpus:
            before = [t for t in exec_ends if t <= cpu.start + 1e-3]
            if before:
                out["exec_to_cpu"].append(cpu.start - before[-1])
            after = [t for t in exec_starts if t >= cpu.end - 1e-3]
            if after:
                out["cpu_to_exec"].append(after[0] - cpu.end)
            out["cpu"].append(cpu.duration)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("views", nargs="+", type=Path)
    args = p.parse_args(argv)
    for view in args.views:
        got = phases(load_events([view]))
        shown = "  ".join(f"{k} median {statistics.median(v):.2f} (n={len(v)})" for k, v in sorted(got.items()))
        print(f"{view}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
