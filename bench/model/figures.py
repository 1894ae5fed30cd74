"""A model run's figures, computed by ``hcqw.timeline.analysis`` from its events as for a lab cell."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass

from bench.model.measured import errors, mean
from bench.model.params import Timings, Workload
from bench.model.sim import Outcome, simulate
from hcqw.timeline.analysis import percentile, summarize


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


def run(timings: Timings, workload: Workload, seeds: int = SEEDS, rpc_per: dict | None = None,
        reps: int | None = None, goals: dict | None = None) -> dict:
    """Median of each figure over ``seeds`` runs (tick phase, start-ups and classical blocks vary per seed).
    Given ``reps``, also ``repeatability``: how a lab cell of ``reps`` repetitions lands if the model is right."""
    runs = [figures(simulate(timings, workload.with_(seed=workload.seed + s)), rpc_per) for s in range(seeds)]
    keys = runs[0].to_dict().keys()
    out: dict = {}
    for key in keys:
        values = [getattr(r, key) for r in runs if getattr(r, key) is not None]
        out[key] = statistics.median(values) if values else None
    if reps:
        out["repeatability"] = repeatability(runs, out, reps, goals or GOALS)
    return out


# The issue's goals for a blind prediction against a lab cell (the mean of its repetitions' figures).
GOALS = {"makespan_rel": 0.05, "busy_abs": 0.03, "handover_p95_abs": 0.2}


def repeatability(runs: list[Figures], predicted: dict, reps: int, goals: dict, draws: int = 2000) -> dict:
    """Draw ``reps`` of the model's runs as a lab cell's repetitions and compare their mean with ``predicted``,
    ``draws`` times: each error's 5th-95th percentile range, the share of draws within each goal and within
    all of them. A goal the model's own runs meet in only some draws cannot be verified by one such cell."""
    rng = random.Random(0)
    found: dict[str, list[float]] = {key: [] for key in goals}
    everything = 0
    for _ in range(draws):
        err = errors(predicted, mean([vars(runs[i]) for i in rng.sample(range(len(runs)), reps)]))
        checked = {key: err[key] for key in goals if err[key] is not None}
        for key, value in checked.items():
            found[key].append(value)
        everything += all(abs(value) <= goals[key] for key, value in checked.items())
    return {"reps": reps, "draws": draws,
            "error_range": {key: [percentile(v, 5), percentile(v, 95)] for key, v in found.items() if v},
            "within": {key: sum(abs(e) <= goals[key] for e in v) / draws for key, v in found.items() if v},
            "all_within": everything / draws}
