"""What a Gantt chart shows, independent of how it is drawn (matplotlib in ``plot``, SVG in ``html``).

One panel per run. Lane 0 is the QPU: every hold (pale, in its workflow's colour), every exec
(solid) and the stretches where nobody holds the device (marked as idle). Below it one lane per
workflow, in the style of the first paper's Fig. 3: classical blocks (grey), quantum holds and
execs, and the wait from a quantum node's ready time to its hold as a thin line.
Times are seconds from the panel's first event.
"""

from __future__ import annotations

from dataclasses import dataclass

from hcqw.timeline.analysis import Summary, allocated_spans, gaps, quantum_nodes, summarize
from hcqw.timeline.events import Event

# Colour-blind-safe palette (Okabe-Ito without black/yellow), cycled over workflows.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999933", "#882255"]
CPU_COLOUR = "#7f7f7f"
IDLE_COLOUR = "#d62728"

QPU_LANE = "QPU"


@dataclass(frozen=True)
class Bar:
    lane: int
    start: float
    end: float
    style: str  # "hold" | "exec" | "cpu" | "wait" | "free"
    colour: str
    tooltip: str


@dataclass(frozen=True)
class Panel:
    label: str
    lanes: list[str]
    bars: list[Bar]
    duration: float
    summary: Summary

    def caption(self) -> str:
        s = self.summary
        ratio = "-" if s.makespan_over_bound is None else f"{s.makespan_over_bound:.2f}"
        return (f"{self.label}: makespan {s.makespan:.2f} s, QPU busy {100 * s.qpu_busy_fraction:.0f}%, "
                f"allocated-but-idle {s.qpu_allocated_idle:.2f} s, makespan/bound {ratio}")


def workflow_colours(workflows: list[str]) -> dict[str, str]:
    return {wf: PALETTE[i % len(PALETTE)] for i, wf in enumerate(workflows)}


def layout(label: str, events: list[Event]) -> Panel:
    summary = summarize(events)
    t0 = summary.start
    workflows = sorted({e.workflow for e in events if e.workflow})
    colour = workflow_colours(workflows)
    lane_of = {wf: i + 1 for i, wf in enumerate(workflows)}
    bars: list[Bar] = []
    rel = lambda t: t - t0  # noqa: E731
    for e in events:
        if e.kind in ("ready", "session") or e.workflow not in lane_of:  # a session reserves nothing: its execs show
            continue
        c = CPU_COLOUR if e.kind == "cpu" else colour.get(e.workflow, CPU_COLOUR)
        tip = f"{e.workflow}/{e.node} {e.kind} {rel(e.start):.3f}-{rel(e.end):.3f} s ({e.duration:.3f} s)"
        if e.kind in ("hold", "exec"):
            bars.append(Bar(0, rel(e.start), rel(e.end), e.kind, c, tip))
        bars.append(Bar(lane_of[e.workflow], rel(e.start), rel(e.end), e.kind, c, tip))
    nodes = quantum_nodes(events)
    for node in nodes:
        if node.wait:
            bars.append(Bar(lane_of[node.workflow], rel(node.ready), rel(node.start), "wait", colour[node.workflow],
                            f"{node.workflow}/{node.node} waited {node.wait:.3f} s for the QPU"))
    for a, b in gaps(allocated_spans(nodes), summary.start, summary.end):
        bars.append(Bar(0, rel(a), rel(b), "free", IDLE_COLOUR, f"QPU free (idle) {rel(a):.3f}-{rel(b):.3f} s"))
    order = {"free": 0, "hold": 1, "wait": 2, "cpu": 3, "exec": 4}  # paint pale things first
    bars.sort(key=lambda bar: (order[bar.style], bar.start))
    return Panel(label, [QPU_LANE, *workflows], bars, summary.makespan, summary)


def legend() -> list[tuple[str, str, str]]:
    """(style, colour, text) for each mark, shared by both renderers."""
    return [
        ("exec", PALETTE[0], "QPU executing (exec)"),
        ("hold", PALETTE[0], "QPU held by the node (hold)"),
        ("cpu", CPU_COLOUR, "classical block (cpu)"),
        ("wait", PALETTE[0], "quantum node waiting for the QPU"),
        ("free", IDLE_COLOUR, "QPU idle, not allocated"),
    ]
