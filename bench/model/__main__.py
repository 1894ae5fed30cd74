"""The model's commands: ``check`` (the calibration cells), ``predict`` (one cell, several modes),
``scale`` (many users on many QPUs) and ``plot`` (a scale run's PNG).

    .venv/bin/python -m bench.model check
    .venv/bin/python -m bench.model predict --k 6 --qpus 2 --q 2 --c 0.5 --n 4 --exec-time 2.03 --load 8
    .venv/bin/python -m bench.model predict ... --reps 5   # and how a lab cell of 5 repetitions lands around it
    .venv/bin/python -m bench.model predict ... --sensitivity   # and whether each figure hinges on the run's state
    .venv/bin/python -m bench.model scale --users 1000 --qpus 8,32 --out docs/model-1000-users.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from bench.model.figures import SEEDS, run
from bench.model.params import CALIBRATION, MODES, Calibration, Workload
from bench.model.sensitivity import sensitivity


def check(cal: Calibration, seeds: int) -> list[dict]:
    """Model vs measured for every calibration cell, with the errors the test bounds."""
    rows = []
    for cell in cal.cells:
        got = run(replace(cal.timings, **cell.get("timings", {})), Workload(**cell["workload"]), seeds, cal.rpc_per)
        m = cell["measured"]
        rows.append({"name": cell["name"], "model": got, "measured": m,
                     "makespan_err": got["makespan"] / m["makespan"] - 1, "busy_err": got["busy"] - m["busy"],
                     "p95_err": (got["handover_p95"] - m["handover_p95"])
                     if m.get("handover_p95") is not None and got["handover_p95"] is not None else None})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.model", description=__doc__.split("\n\n")[0])
    p.add_argument("--calibration", type=Path, default=CALIBRATION)
    p.add_argument("--seeds", type=int, default=SEEDS, help="runs per figure (medians; tick phase and jitter vary)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="model vs the calibration cells")
    pr = sub.add_parser("predict", help="one cell's figures per mode")
    for name, kind, default in (("--k", int, 4), ("--n", int, 3), ("--q", float, 1.0), ("--c", float, 1.0),
                                ("--qpus", int, 1), ("--depth", int, 2), ("--load", float, 1.0),
                                ("--exec-time", float, None), ("--classical-cores", float, 2.0)):
        pr.add_argument(name, type=kind, default=default)
    pr.add_argument("--modes", default=",".join(MODES))
    pr.add_argument("--reps", type=int, help="a lab cell's repetitions: also how their mean lands if the model is right")
    pr.add_argument("--sensitivity", action="store_true",
                    help="also each figure's range over the start-up levels and block spreads the lab has shown")
    pr.add_argument("--no-init", action="store_true",
                    help="the submitter writes the initial state (no init job: hcqw since issue 22)")
    from bench.model import scale as scale_mod
    scale_mod.register(sub)
    args = p.parse_args(argv)
    cal = Calibration.load(args.calibration)
    if args.command == "check":
        for r in check(cal, args.seeds):
            p95 = f"{r['p95_err']:+.2f}" if r["p95_err"] is not None else "  -  "
            print(f"{r['name']:<30} makespan {r['model']['makespan']:8.2f} vs {r['measured']['makespan']:8.2f} "
                  f"({r['makespan_err']:+6.1%})  busy {r['model']['busy']:.3f} vs {r['measured']['busy']:.3f} "
                  f"({r['busy_err']:+.3f})  p95 hand-over err {p95} s")
        return 0
    if args.command == "predict":
        timings = replace(cal.timings, classical_cores=args.classical_cores)
        out = {}
        for mode in args.modes.split(","):
            w = Workload(k=args.k, n=args.n, q=args.q, c=args.c, mode=mode, qpus=args.qpus, depth=args.depth,
                         load=args.load, exec_time=args.exec_time, init_job=not args.no_init)
            out[mode] = run(timings, w, args.seeds, cal.rpc_per, args.reps)
            if args.sensitivity:
                out[mode]["sensitivity"] = sensitivity(timings, w, args.seeds, cal.rpc_per)
        mono = out.get("monolithic", {}).get("makespan")
        for mode, f in out.items():
            ratio = f"{f['makespan'] / mono:.2f}" if mono else "-"
            p95 = f"{f['handover_p95']:.2f}" if f["handover_p95"] is not None else "-"
            print(f"{mode:<15} makespan {f['makespan']:7.2f} s  vs mono {ratio}  busy {f['busy']:.3f}  "
                  f"hand-over p95 {p95} s  wait mean {f['wait_mean']:.2f} s")
            if "repeatability" in f:
                r = f["repeatability"]
                shares = "  ".join(f"{key} {share:.0%}" for key, share in r["within"].items())
                print(f"{'':<15} if the model is right, {r['reps']} repetitions' mean meets: {shares}, "
                      f"all {r['all_within']:.0%}")
            if "sensitivity" in f:
                ranges = "  ".join(f"{key} {v['low']:.3g}-{v['high']:.3g}{'' if v['determinate'] else ' (hinges on the run)'}"
                                   for key, v in f["sensitivity"]["figures"].items())
                print(f"{'':<15} over the lab's start-up levels and block spreads: {ranges}")
        print(json.dumps(out))
        return 0
    return scale_mod.main(args, cal)


if __name__ == "__main__":
    sys.exit(main())
