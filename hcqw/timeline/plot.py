"""Gantt charts with matplotlib (PNG and SVG): one panel per run, on a shared time axis."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

from hcqw.timeline.events import Event
from hcqw.timeline.layout import Panel, layout, legend

log = logging.getLogger(__name__)

# Bar heights per style (lane pitch is 1): holds frame execs; waits are a thin line.
HEIGHT = {"free": 0.9, "hold": 0.8, "exec": 0.55, "cpu": 0.5}


def render(runs: Mapping[str, Sequence[Event]], base: Path, formats: Sequence[str] = ("png", "svg"),
           title: str | None = None, dpi: int = 150) -> list[Path]:
    """Draw ``runs`` (label -> events) to ``base.<format>`` for each format; return the paths written."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # headless; keeps an interactive backend if the caller chose one
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D

    panels = [layout(label, list(events)) for label, events in runs.items()]
    heights = [len(p.lanes) + 1.2 for p in panels]
    fig, axes = plt.subplots(len(panels), 1, sharex=True, squeeze=False, figsize=(11, 0.42 * sum(heights) + 1.4),
                             gridspec_kw={"height_ratios": heights})
    horizon = max(p.duration for p in panels)
    for ax, panel in zip(axes[:, 0], panels):
        _draw_panel(ax, panel, horizon)
    axes[-1, 0].set_xlabel("time since the run's first event (s)")
    handles = []
    for style, colour, text in legend():
        if style == "wait":
            handles.append(Line2D([], [], color=colour, linestyle=":", linewidth=1.5, label=text))
        elif style == "hold":
            handles.append(Patch(facecolor=colour, alpha=0.25, edgecolor=colour, hatch="///", label=text))
        elif style == "free":
            handles.append(Patch(facecolor=colour, alpha=0.3, hatch="xx", edgecolor=colour, label=text))
        else:
            handles.append(Patch(facecolor=colour, label=text))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97 if title else 1))
    written = []
    for fmt in formats:
        path = base.with_name(f"{base.name}.{fmt}")
        fig.savefig(path, dpi=dpi, format=fmt)
        written.append(path)
    plt.close(fig)
    return written


def _draw_panel(ax, panel: Panel, horizon: float) -> None:
    for bar in panel.bars:
        y = -bar.lane
        if bar.style == "wait":
            ax.hlines(y, bar.start, bar.end, colors=bar.colour, linestyles=":", linewidth=1.5)
            continue
        h = HEIGHT[bar.style]
        kwargs = {"facecolor": bar.colour, "edgecolor": "none", "linewidth": 0}
        if bar.style == "hold":
            kwargs.update(alpha=0.25, edgecolor=bar.colour, hatch="///", linewidth=0.6)
        elif bar.style == "free":
            kwargs.update(alpha=0.3, hatch="xx", edgecolor=bar.colour)
        ax.barh(y, bar.end - bar.start, left=bar.start, height=h, **kwargs)
    # Labels last, over the execs; only where the bar is wide enough (about 0.8 % of the axis per character).
    for bar in panel.bars:
        if bar.label and bar.end - bar.start >= 0.008 * horizon * (len(bar.label) + 1):
            ax.text(bar.start + 0.004 * horizon, -bar.lane + HEIGHT[bar.style] / 2 - 0.04, bar.label, fontsize=6,
                    va="top", ha="left", color="black")
    ax.set_yticks([-i for i in range(len(panel.lanes))], panel.lanes, fontsize=8)
    ax.set_ylim(-len(panel.lanes) + 0.4, 0.6)
    ax.set_xlim(0, horizon * 1.01)
    ax.axhline(-(panel.qpu_lanes - 0.5), color="black", linewidth=0.5)  # separates the QPU lanes from the workflows
    for lane in range(1, panel.qpu_lanes):  # and the devices from each other, more lightly
        ax.axhline(-(lane - 0.5), color="black", linewidth=0.3, linestyle=":")
    ax.set_title(panel.caption(), fontsize=9, loc="left")
    ax.grid(axis="x", linewidth=0.3, alpha=0.5)
