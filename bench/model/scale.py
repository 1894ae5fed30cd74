"""Many users on many QPUs: the model's prediction (``python -m bench.model scale``)."""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import replace
from pathlib import Path

from bench.model.figures import total_rpcs
from bench.model.params import Calibration, Workload
from bench.model.sim import simulate
from hcqw.timeline.analysis import summarize


def register(sub) -> None:
    s = sub.add_parser("scale", help="U users, one workflow each, arriving over a period, on several QPU counts")
    s.add_argument("--users", type=int, default=1000)
    s.add_argument("--qpus", default="8,32")
    s.add_argument("--modes", default="split-resident,staged-fused")
    s.add_argument("--n", type=int, default=10)
    s.add_argument("--q", type=float, default=2.0)
    s.add_argument("--c", type=float, default=2.0)
    s.add_argument("--period", type=float, default=3600.0, help="users arrive uniformly at random within it (s)")
    s.add_argument("--load", type=float, default=0.0, help="start-up load term (0: a site's own nodes)")
    s.add_argument("--window", type=int, default=None, help="bounded submission window (nodes per chain)")
    s.add_argument("--no-init", action="store_true", help="no init job")
    s.add_argument("--out", type=Path, default=None)


def scale_cell(cal: Calibration, users: int, qpus: int, mode: str, n: int, q: float, c: float, period: float,
               load: float, window: int | None, init_job: bool, seed: int = 0) -> dict:
    rng = random.Random(seed)
    arrivals = tuple(sorted(rng.uniform(0.0, period) for _ in range(users)))
    w = Workload(k=users, n=n, q=q, c=c, mode=mode, qpus=qpus, depth=2, load=load, arrivals=arrivals,
                 window=window, init_job=init_job, seed=seed)
    timings = replace(cal.timings, classical_cores=None)  # a site's cpu partition: each job its own cores
    out = simulate(timings, w)
    s = summarize(out.events)
    # per user: submission to the end of the workflow, and its wait for the QPU (every node's)
    first = {e.workflow: e.start for e in out.events if e.kind == "ready" and e.node == "submitted"}
    last: dict[str, float] = {}
    for e in out.events:
        last[e.workflow] = max(last.get(e.workflow, 0.0), e.end)
    span = sorted(last[wf] - first[wf] for wf in first)
    rpcs = total_rpcs(out, cal.rpc_per)
    return {"users": users, "qpus": qpus, "mode": mode, "window": window, "init_job": init_job,
            "makespan_s": round(s.makespan, 1), "qpu_busy": round(s.quantum_work / (qpus * s.makespan), 3),  # over every QPU, used or not
            "wait_per_node_mean_s": round(s.wait_mean or 0.0, 2),
            "turnaround_median_s": round(span[len(span) // 2], 1), "turnaround_p95_s": round(span[int(len(span) * 0.95)], 1),
            "ideal_turnaround_s": round(n * (q + c), 1),
            "rpc_per_s": round(rpcs / s.makespan, 1), "polls_per_s": round(out.rpcs["poll"] * cal.rpc_per.get("poll", 1) / s.makespan, 1),
            "jobs": dict(out.jobs), "job_records": sum(r for _, r in out.records if r > 0), "peak_job_records": out.peak_records(),
            "handover_median_s": round(s.handover_median or 0.0, 2), "handover_p95_s": round(s.handover_p95 or 0.0, 2)}


def main(args: argparse.Namespace, cal: Calibration) -> int:
    rows = []
    for qpus in [int(x) for x in args.qpus.split(",")]:
        for mode in args.modes.split(","):
            row = scale_cell(cal, args.users, qpus, mode, args.n, args.q, args.c, args.period, args.load,
                             args.window, not args.no_init)
            rows.append(row)
            print(json.dumps(row))
    if args.out:
        args.out.write_text(json.dumps({"args": {k: (str(v) if isinstance(v, Path) else v)
                                                 for k, v in vars(args).items()}, "rows": rows}, indent=1))
    return 0
