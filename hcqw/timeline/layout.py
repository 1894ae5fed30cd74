"""What a Gantt chart shows, independent of how it is drawn (matplotlib in ``plot``, SVG in ``html``).

One panel per run. On top one lane per QPU device (a single device's lane is called ``QPU``,
several are ``QPU <device>``): every hold (pale, in its workflow's colour), every exec (solid)
and the stretches where nobody holds that device (marked as idle). Below them one lane per
workflow, in the style of the first paper's Fig. 3: classical blocks (grey), quantum holds and
execs, and the wait from a quantum node's ready time to its hold as a thin line; with several
devices each quantum bar's tooltip names its device, so a chain moving between devices shows.
Times are seconds from the panel's first event.
"""

from __future__ import annotations

from dataclasses import dataclass

from hcqw.timeline.analysis import Summary, allocated_spans, gaps, quantum_nodes, summarize
from hcqw.timeline.devices import resolve_devices
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
    label: str = ""  # written on the bar where it fits: the device of a workflow's block when there are several
    node: str = ""  # "workflow/node" of the event it shows ("" for the device's idle stretches)
    user: str = ""  # who ran the node, as the metrics log recorded it


@dataclass(frozen=True)
class Panel:
    label: str
    lanes: list[str]
    bars: list[Bar]
    duration: float
    summary: Summary
    qpu_lanes: int = 1  # the first lanes are the devices', the workflows' follow

    def caption(self) -> str:
        s = self.summary
        ratio = "-" if s.makespan_over_bound is None else f"{s.makespan_over_bound:.2f}"
        if len(s.devices) > 1:
            busy = ", ".join(f"{name} {100 * d.qpu_busy_fraction:.0f}%" for name, d in s.devices.items())
        else:
            busy = f"{100 * s.qpu_busy_fraction:.0f}%"
        return (f"{self.label}: makespan {s.makespan:.2f} s, QPU busy {busy}, "
                f"allocated-but-idle {s.qpu_allocated_idle:.2f} s, makespan/bound {ratio}")


def workflow_colours(workflows: list[str]) -> dict[str, str]:
    return {wf: PALETTE[i % len(PALETTE)] for i, wf in enumerate(workflows)}


def layout(label: str, events: list[Event]) -> Panel:
    events = resolve_devices(events)
    summary = summarize(events)
    t0 = summary.start
    devices = list(summary.devices) or [""]  # no hold or exec: one device, free all along
    several = len(devices) > 1
    device_lane = {name: i for i, name in enumerate(devices)}
    device_lanes = [f"{QPU_LANE} {name}" for name in devices] if several else [QPU_LANE]
    workflows = sorted({e.workflow for e in events if e.workflow})
    colour = workflow_colours(workflows)
    lane_of = {wf: len(devices) + i for i, wf in enumerate(workflows)}
    bars: list[Bar] = []
    rel = lambda t: t - t0  # noqa: E731
    held = {(e.workflow, e.node) for e in events if e.kind == "hold"}
    for e in events:
        if e.kind in ("ready", "session") or e.workflow not in lane_of:  # a session reserves nothing: its execs show
            continue
        c = CPU_COLOUR if e.kind == "cpu" else colour.get(e.workflow, CPU_COLOUR)
        on = f" on {e.device}" if several and e.kind in ("hold", "exec") else ""
        tip = f"{e.workflow}/{e.node} {e.kind}{on} {rel(e.start):.3f}-{rel(e.end):.3f} s ({e.duration:.3f} s)"
        who = {"node": f"{e.workflow}/{e.node}", "user": str(e.extra.get("user", ""))}
        if e.kind in ("hold", "exec"):
            bars.append(Bar(device_lane[e.device], rel(e.start), rel(e.end), e.kind, c, tip, **who))
        # Which device a block used, on the workflow's lane: on its hold (a session node's: on each exec).
        names = several and (e.kind == "hold" or (e.kind == "exec" and (e.workflow, e.node) not in held))
        bars.append(Bar(lane_of[e.workflow], rel(e.start), rel(e.end), e.kind, c, tip, e.device if names else "", **who))
    nodes = quantum_nodes(events)
    users = {(e.workflow, e.node): str(e.extra["user"]) for e in events if e.extra.get("user")}
    for node in nodes:
        if node.wait:
            on = f" {node.device}" if several else ""
            bars.append(Bar(lane_of[node.workflow], rel(node.ready), rel(node.start), "wait", colour[node.workflow],
                            f"{node.workflow}/{node.node} waited {node.wait:.3f} s for the QPU{on}",
                            node=f"{node.workflow}/{node.node}", user=users.get((node.workflow, node.node), "")))
    for name in devices:
        mine = [n for n in nodes if n.device == name]
        which = f" {name}" if several else ""
        for a, b in gaps(allocated_spans(mine), summary.start, summary.end):
            bars.append(Bar(device_lane[name], rel(a), rel(b), "free", IDLE_COLOUR,
                            f"QPU{which} free (idle) {rel(a):.3f}-{rel(b):.3f} s"))
    order = {"free": 0, "hold": 1, "wait": 2, "cpu": 3, "exec": 4}  # paint pale things first
    bars.sort(key=lambda bar: (order[bar.style], bar.start))
    return Panel(label, [*device_lanes, *workflows], bars, summary.makespan, summary, len(devices))


def legend() -> list[tuple[str, str, str]]:
    """(style, colour, text) for each mark, shared by both renderers."""
    return [
        ("exec", PALETTE[0], "QPU executing (exec)"),
        ("hold", PALETTE[0], "QPU held by the node (hold)"),
        ("cpu", CPU_COLOUR, "classical block (cpu)"),
        ("wait", PALETTE[0], "quantum node waiting for the QPU"),
        ("free", IDLE_COLOUR, "QPU idle, not allocated"),
    ]
