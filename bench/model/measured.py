"""A lab cell's figures as a prediction file states them, and the prediction's errors.

Reads ``bench/coschedule.py --out DIR``'s runs (``DIR/<ratio>/k<K>/<mode>/rep<R>/slurm-view.jsonl``),
computes each repetition's figures per qpu host as the model counts them (``execs_on_hosts``), their
mean, and, given a prediction file, the errors of its chosen load row against the mean and against
each repetition:

    python -m bench.model.measured /tmp/model-runs/blind-k8 --prediction bench/model/predictions/F.json --load 1.5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from bench.view import execs_on_hosts
from hcqw.timeline.analysis import consistency_problems, summarize
from hcqw.timeline.events import load_events

FIGURES = ("makespan", "busy", "handover_median", "handover_p95", "wait_mean")


def repetition(view: Path) -> dict:
    events = execs_on_hosts(load_events([view]))
    s = summarize(events)
    return {"makespan": s.makespan, "busy": s.qpu_busy_fraction, "handover_median": s.handover_median,
            "handover_p95": s.handover_p95, "wait_mean": s.wait_mean,
            "problems": len(consistency_problems(events, tolerance=1.0))}  # SLURM's times are whole seconds


def measure(out: Path) -> dict[str, dict]:
    """Per mode: each repetition's figures (in repetition order) and their mean."""
    modes: dict[str, list[dict]] = {}
    for view in sorted(out.glob("*/k*/*/rep*/slurm-view.jsonl"), key=lambda p: (p.parent.parent.name, p.parent.name)):
        modes.setdefault(view.parent.parent.name, []).append(repetition(view))
    if not modes:
        raise SystemExit(f"{out}: no */k*/<mode>/rep*/slurm-view.jsonl; give bench/coschedule.py's --out directory")
    return {mode: {"reps": reps, "mean": mean(reps)} for mode, reps in modes.items()}


def mean(reps: list[dict]) -> dict:
    """The repetitions' mean of each figure that every repetition has (a p95 is None where no node waited)."""
    return {k: statistics.fmean(r[k] for r in reps) for k in FIGURES if all(r[k] is not None for r in reps)}


def errors(predicted: dict, measured: dict) -> dict:
    """Makespan relative, busy and p95 hand-over absolute: the issue's three goals (p95 None where no node waited)."""
    p95 = (predicted["handover_p95"] - measured["handover_p95"]
           if predicted.get("handover_p95") is not None and measured.get("handover_p95") is not None else None)
    return {"makespan_rel": predicted["makespan"] / measured["makespan"] - 1,
            "busy_abs": predicted["busy"] - measured["busy"], "handover_p95_abs": p95}


def _seconds(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="bench/coschedule.py's --out directory")
    p.add_argument("--prediction", type=Path, help="a prediction file (bench/model/predictions/)")
    p.add_argument("--load", help="its load row (predictions_by_load key) to compare against")
    args = p.parse_args(argv)
    got = measure(args.out)
    result: dict = {"modes": got}
    if args.prediction:
        rows = json.loads(args.prediction.read_text())["predictions_by_load"]
        if args.load not in rows:
            raise SystemExit(f"--load {args.load!r}: the prediction has rows {sorted(rows)}")
        row = rows[args.load]
        result["errors"] = {mode: {"mean": errors(row[mode], m["mean"]),
                                   "reps": [errors(row[mode], r) for r in m["reps"]]}
                            for mode, m in got.items() if mode in row}
    for mode, m in got.items():
        reps = "  ".join(f"{r['makespan']:.2f}/{r['busy']:.3f}/{_seconds(r['handover_p95'])}" for r in m["reps"])
        print(f"{mode:<15} reps (makespan/busy/p95) {reps}", file=sys.stderr)
        if mode in result.get("errors", {}):
            err = result["errors"][mode]["mean"]
            print(f"{'':<15} error vs mean: makespan {err['makespan_rel']:+.1%}  busy {err['busy_abs']:+.3f}  "
                  f"p95 {_seconds(err['handover_p95_abs'], '+.2f')} s", file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
