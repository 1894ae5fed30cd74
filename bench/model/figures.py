"""A model run's figures, computed by ``hcqw.timeline.analysis`` from its events as for a lab cell."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from bench.model.params import Timings, Workload
from bench.model.sim import Outcome, simulate
from hcqw.timeline.analysis import summarize


@dataclass(frozen=True)
class Figures:
    makespan: float
    busy: float
    handover_median: float | None
    handover_p95: float | None
    wait_mean: float
    classical: float  # mean classical block as run (stretched by sharing cores)
    rpc_per_s: float
    peak_records: int

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def figures(outcome: Outcome, rpc_per: dict | None = None) -> Figures:
    summary = summarize(outcome.events)
    cpu = [e.duration for e in outcome.events if e.kind == "cpu"]
    rpcs = total_rpcs(outcome, rpc_per)
    return Figures(summary.makespan, summary.qpu_busy_fraction, summary.handover_median, summary.handover_p95,
                   summary.wait_mean or 0.0, statistics.fmean(cpu) if cpu else 0.0,
                   rpcs / summary.makespan if summary.makespan else 0.0, outcome.peak_records())


def total_rpcs(outcome: Outcome, rpc_per: dict | None = None) -> float:
    """slurmctld's RPCs: the model's counts weighted by the RPCs each stands for (calibration's rpc_per)."""
    weights = rpc_per or {}
    return sum(count * weights.get(kind, 1.0) for kind, count in outcome.rpcs.items())


# Runs per figure. An unstaged form's hand-over is a tick wait set by its jobs' lengths modulo the tick; its
# p95 from one run jumps by up to a tick, and the median of 9 runs still moved by 0.3 s between seed sets.
SEEDS = 49


def run(timings: Timings, workload: Workload, seeds: int = SEEDS, rpc_per: dict | None = None) -> dict[str, float]:
    """Median of each figure over ``seeds`` runs (tick phase, start-ups and classical blocks vary per seed)."""
    runs = [figures(simulate(timings, workload.with_(seed=workload.seed + s)), rpc_per) for s in range(seeds)]
    keys = runs[0].to_dict().keys()
    out = {}
    for key in keys:
        values = [getattr(r, key) for r in runs if getattr(r, key) is not None]
        out[key] = statistics.median(values) if values else None
    return out
