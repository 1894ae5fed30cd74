"""How far a prediction hinges on what the model cannot know before a run.

Two quantities changed from run to run of the same design on the lab, and no input of the model
predicts them (docs/benchmarks-history.md, the fifth to seventh blind cells):

- the level of a node's start-up (its qpu component's start to its first exec): per-repetition
  medians of 0.56-0.98 s in slurmctld's millisecond log in cells 5-6, from 0.05 s below to 0.37 s above
  the model's median at the cell's load row (0.48 s at load 1, 0.61 s at 2.5); 0.39-0.42 s in cell 7,
  whose lighter classical blocks left the cores freer (0.45 s in the model);
- how much the classical blocks vary: 0.015-0.11 relative sd across quiet runs.

An unstaged hand-over waits for SLURM's backfill tick, so its p95 jumps by a tick when either moves a
node's end across one. ``sensitivity`` re-runs a cell over those states and reports each figure's
range: a figure whose range is wider than its goal cannot be predicted blind for that cell, whatever
the model's other timings; one within it does not hinge on them.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from bench.model.figures import GOALS, run
from bench.model.measured import errors
from bench.model.params import Timings, Workload

# Start-up level added to a node's (and a monolithic job's) start-up base: a little below the model's own
# level to the slowest repetition the lab showed. Block spreads: the steadiest and the most varied quiet runs.
LEVELS = (-0.1, 0.15, 0.4)
SPREADS = (0.02, 0.11)


def states(timings: Timings) -> list[Timings]:
    """The timings of every (start-up level, block spread) state a lab run of this machine has shown."""
    out = []
    node, mono = timings.node_startup, timings.mono_startup
    for shift, spread in itertools.product(LEVELS, SPREADS):
        out.append(replace(timings, node_startup=replace(node, base=node.base + shift),
                           mono_startup=replace(mono, base=mono.base + shift),
                           classical_spread=spread, classical_run_spread=spread))
    return out


def sensitivity(timings: Timings, workload: Workload, seeds: int, rpc_per: dict | None = None,
                goals: dict | None = None) -> dict:
    """Each goal's figure over ``states``: its lowest and highest model median, its spread in the goal's
    terms (the highest state's error against the lowest's, as ``measured.errors`` counts a prediction's),
    and whether that spread is within the goal (``determinate``)."""
    goals = goals or GOALS
    got = [run(t, workload, seeds, rpc_per) for t in states(timings)]
    out: dict = {"states": len(got), "levels": list(LEVELS), "spreads": list(SPREADS), "figures": {}}
    for goal, limit in goals.items():
        key = goal.rsplit("_", 1)[0]
        present = [g for g in got if g[key] is not None]
        if not present:
            continue
        low, high = (pick(present, key=lambda g: g[key]) for pick in (min, max))
        spread = errors(high, low)[goal]
        out["figures"][key] = {"low": low[key], "high": high[key], "spread": spread, "determinate": spread <= limit}
    out["determinate"] = all(f["determinate"] for f in out["figures"].values())
    return out
