"""The model's PNG (docs/model.png): calibration cells, the blind cell, and 1,000 users.

    .venv/bin/python -m bench.model.plot --blind bench/model/predictions/k8-2qpus-q2-3reps.json \
        --scale /tmp/model-runs/scale/hour.json /tmp/model-runs/scale/hour-window2.json --out docs/model.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.model.__main__ import check  # noqa: E402
from bench.model.figures import SEEDS  # noqa: E402
from bench.model.params import Calibration  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blind", type=Path, required=True, help="the prediction file, with its 'measured' part")
    p.add_argument("--scale", type=Path, nargs="+", required=True, help="python -m bench.model scale --out's files")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))

    ax = axes[0]
    rows = check(Calibration.load(), seeds=SEEDS)
    measured = [r["measured"]["makespan"] for r in rows]
    model = [r["model"]["makespan"] for r in rows]
    ax.scatter(measured, model, s=18)
    top = max(measured + model) * 1.05
    ax.plot([0, top], [0, top], color="grey", lw=0.8)
    ax.plot([0, top], [0, top * 1.08], color="grey", lw=0.5, ls="--")
    ax.plot([0, top], [0, top * 0.92], color="grey", lw=0.5, ls="--")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("measured makespan (s)"), ax.set_ylabel("model makespan (s)")
    ax.set_title(f"calibration: {len(rows)} lab cells (dashed: ±8%)")

    ax = axes[1]
    blind = json.loads(args.blind.read_text())
    got = blind["measured"]
    pred = blind["predictions_by_load"][str(got["prediction_load"])]
    modes = list(got["modes"])
    xs = range(len(modes))
    second = blind.get("measured_second")
    bars = [(pred, f"predicted blind (load {got['prediction_load']})", {}),
            (got["modes"], f"measured (load {got['run_load'][0]}-{got['run_load'][1]})", {})]
    if second:
        bars += [(blind["predictions_by_load"][str(second["prediction_load"])],
                  f"predicted blind (load {second['prediction_load']})", {"color": "tab:cyan"}),
                 (second["modes"], f"measured again (load {second['run_load'][0]}-{second['run_load'][1]})",
                  {"color": "tab:red"})]
    width = 0.8 / len(bars)
    for i, (figures_, label, style) in enumerate(bars):
        heights = [figures_[m]["makespan"] for m in modes]
        if all("reps" in figures_[m] for m in modes):  # the repetitions' mean, with their range
            label = f"{label}, mean of {len(figures_[modes[0]]['reps'])} (bars: range)"
            spans = [[h - min(r["makespan"] for r in figures_[m]["reps"]) for h, m in zip(heights, modes)],
                     [max(r["makespan"] for r in figures_[m]["reps"]) - h for h, m in zip(heights, modes)]]
            style = {**style, "yerr": spans, "capsize": 3}
        ax.bar([x - 0.4 + width * (i + 0.5) for x in xs], heights, width, label=label, **style)
    ax.set_xticks(list(xs), modes, rotation=15)
    ax.set_ylabel("makespan (s)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # room for the legend
    p95 = ax.twinx()  # the hand-over p95, the figure the unstaged forms miss
    for i, (figures_, style) in enumerate(((pred, dict(marker="x", color="navy")), (got["modes"], dict(marker="o", color="darkred")))):
        p95.plot([x - 0.2 + 0.4 * i for x in xs], [figures_[m]["handover_p95"] for m in modes], ls="none",
                 label=("predicted" if i == 0 else "measured") + " hand-over p95", **style)
    p95.set_ylabel("hand-over p95 (s)")
    p95.set_ylim(0, 4)
    p95.legend(fontsize=7, loc="upper right", bbox_to_anchor=(1.0, 0.86))
    ax.set_title(got.get("title", "blind cell: K=6, 2 QPUs, q=2 s, 4:1, N=4"))  # the first file has no title
    ax.legend(fontsize=7, loc="upper left")

    ax = axes[2]
    scale = [row for path in args.scale for row in json.loads(path.read_text())["rows"]]
    labels = [f"{r['mode']}{' (window 2)' if r.get('window') else ''}, {r['qpus']} QPUs" for r in scale]
    xs = range(len(scale))
    ax.bar(xs, [r["qpu_busy"] for r in scale], color="tab:blue")
    ax.set_ylabel("QPU busy", color="tab:blue")
    ax.set_ylim(0, 1)
    ax.set_xticks(list(xs), labels, fontsize=6, rotation=30, ha="right")
    ax2 = ax.twinx()
    ax2.plot(list(xs), [r["turnaround_median_s"] for r in scale], "o", color="tab:red")
    ax2.set_ylabel("turnaround per user, median (s)", color="tab:red")
    ax2.set_yscale("log")
    ax.set_title("1,000 users (1 h, N=10, q=c=2 s): model")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
