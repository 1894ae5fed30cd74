"""The co-scheduling figures, as pure functions of timeline events.

Definitions per device (``hcqw.timeline.devices`` says which device each event used; pass
``device=`` to keep one); the run's totals follow the list:

- makespan: first event start (normally the first ``ready``) to last event end;
- QPU busy: the union of ``exec`` intervals; QPU allocated: the union of ``hold`` intervals;
- allocated-but-idle: per hold, its length minus the union of its own ``exec`` intervals
  (the device was reserved for a node that was not using it: what splitting removes);
- QPU service sessions (``session`` events) do not reserve the device: the service's queue
  interleaves the work items of every open session. A session node counts as holding the
  device only while its own items execute (allocated = busy, never allocated-but-idle), and
  its wait runs from its ``ready`` to its first ``exec``;
- wait of a quantum node (one ``hold``): ``hold.start`` minus the node's ``ready`` time; without
  a ``ready`` event, the end of the workflow's latest ``cpu``/``hold`` interval before the hold
  is used, and a node with neither is left out (``waits_measured`` says how many counted);
- lower bound on the makespan: ``max(sum of all exec durations + shortest final classical
  stretch, longest workflow)``. A workflow's final classical stretch is its ``cpu`` time after its
  last exec: whichever workflow's block the device runs last still has that stretch to go. A
  workflow's length is its exec plus ``cpu`` time (its critical path when run alone: its blocks are
  sequential). Without ``cpu`` events the bound only counts quantum time;
- hand-over: on one device, from the last exec of one quantum node to the first exec of the next
  node, counted only when the next node was already waiting (ready, or no ``ready`` logged) and
  the two did not interleave. It is what the device loses to scheduling between blocks (SLURM's
  release, allocation and job start); no peer publishes it, so it is reported as median and p95.

A run of several devices reports each device's figures (``Summary.devices``) and totals: the
makespan, waits and hand-overs of all of them; busy, allocated, allocated-but-idle and free
seconds added over the devices, their fractions of ``devices x makespan`` (the capacity the run
had); idle gaps counted over the devices, the longest of any; and in the lower bound the device
work spread over the devices, ``sum of exec durations / devices``. With one device the totals are
that device's figures.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from statistics import fmean, median
from typing import Iterable, Sequence

from hcqw.timeline.devices import capacity, device_names, only_device, resolve_devices
from hcqw.timeline.events import Event

Span = tuple[float, float]

# Interval ends are Unix seconds from time.time(); events written by different processes
# may disagree by a few microseconds, which consistency checks must tolerate.
_EPS = 1e-3


def union(spans: Iterable[Span]) -> list[Span]:
    """Merge overlapping or touching spans; sorted, disjoint. Empty and reversed spans are dropped."""
    merged: list[list[float]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def covered(spans: Iterable[Span]) -> float:
    """Seconds covered by at least one span (overlaps counted once)."""
    return sum(b - a for a, b in union(spans))


def gaps(spans: Iterable[Span], start: float, end: float) -> list[Span]:
    """The parts of ``[start, end]`` that no span covers, in order."""
    out: list[Span] = []
    cursor = start
    for a, b in union(spans):
        if b <= cursor:
            continue
        if a >= end:
            break
        if a > cursor:
            out.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < end:
        out.append((cursor, end))
    return out


def clip(spans: Iterable[Span], start: float, end: float) -> list[Span]:
    """The spans cut to ``[start, end]``; spans outside vanish."""
    return [(max(a, start), min(b, end)) for a, b in spans if min(b, end) > max(a, start)]


@dataclass(frozen=True)
class QuantumNode:
    """One device hold and what the node did with it."""

    workflow: str
    node: str
    ready: float | None
    start: float  # hold start; for a shared (service session) node its first exec start
    end: float
    busy: float  # seconds of its own exec inside the hold
    shared: bool = False  # a service session: the device was not reserved for it
    exec_spans: tuple[Span, ...] = ()
    device: str = ""

    @property
    def held(self) -> float:
        return self.busy if self.shared else self.end - self.start

    @property
    def allocated(self) -> list[Span]:
        """When the device was allocated to this node: the hold, or a session's own execs."""
        return list(self.exec_spans) if self.shared else [(self.start, self.end)]

    @property
    def idle(self) -> float:
        return self.held - self.busy

    @property
    def wait(self) -> float | None:
        return None if self.ready is None else max(0.0, self.start - self.ready)


@dataclass(frozen=True)
class DeviceSummary:
    """The figures of one device in a run; the fractions are of the run's makespan."""

    device: str
    workflows: int
    quantum_nodes: int
    qpu_busy: float
    qpu_busy_fraction: float
    qpu_allocated: float
    qpu_allocated_fraction: float
    qpu_allocated_idle: float
    qpu_free: float
    idle_gaps: int
    longest_idle_gap: float
    wait_mean: float | None
    wait_max: float | None
    waits_measured: int
    quantum_work: float
    hold_per_workflow: dict[str, float] = field(default_factory=dict)
    handover_median: float | None = None
    handover_p95: float | None = None
    handovers_measured: int = 0


@dataclass(frozen=True)
class Summary:
    """The figures of one co-scheduled run. Times in seconds; ``start``/``end`` are Unix seconds."""

    workflows: int
    quantum_nodes: int
    classical_nodes: int
    start: float
    end: float
    makespan: float
    qpu_busy: float
    qpu_busy_fraction: float
    qpu_allocated: float
    qpu_allocated_fraction: float
    qpu_allocated_idle: float
    qpu_free: float  # not allocated to anyone
    idle_gaps: int  # stretches without exec
    longest_idle_gap: float
    wait_mean: float | None
    wait_max: float | None
    waits_measured: int
    quantum_work: float  # sum of exec durations
    classical_work: float  # sum of cpu durations
    longest_workflow: float
    bound: float
    makespan_over_bound: float | None
    hold_per_workflow: dict[str, float] = field(default_factory=dict)
    handover_median: float | None = None
    handover_p95: float | None = None
    handovers_measured: int = 0
    qpu_devices: int = 1  # the devices the fractions and the bound count (see the module doc)
    devices: dict[str, DeviceSummary] = field(default_factory=dict)  # by name; empty without hold/exec events

    def to_dict(self) -> dict:
        return asdict(self)


def quantum_nodes(events: Sequence[Event]) -> list[QuantumNode]:
    """One ``QuantumNode`` per ``hold`` event and per node and device with ``session`` events, with its ready
    time, busy seconds and device. ``events`` as ``resolve_devices`` returns them."""
    execs: dict[tuple[str, str], list[Span]] = defaultdict(list)
    execs_on: dict[tuple[str, str], dict[str, list[Span]]] = defaultdict(lambda: defaultdict(list))
    ready: dict[tuple[str, str], float] = {}
    previous_ends: dict[str, list[float]] = defaultdict(list)
    for e in events:
        key = (e.workflow, e.node)
        if e.kind == "exec":
            execs[key].append((e.start, e.end))
            execs_on[key][e.device].append((e.start, e.end))
        elif e.kind == "ready":
            ready.setdefault(key, e.start)  # a resumed run may re-record; the first is when it became ready
        if e.kind in ("cpu", "hold"):
            previous_ends[e.workflow].append(e.end)
    def ready_time(key: tuple[str, str], start: float) -> float | None:
        when = ready.get(key)
        if when is None:
            earlier = [t for t in previous_ends[key[0]] if t <= start + _EPS]
            when = max(earlier) if earlier else None
        return when

    out = []
    sessions: dict[tuple[str, str], list[Event]] = {}
    for e in events:
        key = (e.workflow, e.node)
        if e.kind == "session":
            sessions.setdefault(key, []).append(e)  # a client's and the service's record of it
        if e.kind != "hold":
            continue
        busy = covered(clip(execs[key], e.start, e.end))
        out.append(QuantumNode(e.workflow, e.node, ready_time(key, e.start), e.start, e.end, busy, device=e.device))
    held_keys = {(n.workflow, n.node) for n in out}
    for key, opened in sessions.items():
        if key in held_keys:  # a session inside the node's own hold (a SLURM gateway): the hold says it all
            continue
        on = execs_on[key] or {opened[0].device: []}  # a session that never executed: where it was open
        for device, spans in on.items():
            own = union(spans)
            start = own[0][0] if own else min(e.start for e in opened)
            end = own[-1][1] if own else start
            out.append(QuantumNode(key[0], key[1], ready_time(key, start), start, end, covered(own), shared=True,
                                   exec_spans=tuple(own), device=device))
    out.sort(key=lambda n: n.start)
    return out


def summarize(events: Sequence[Event], device: str | None = None) -> Summary:
    """All figures of one run, per device and in total. ``events`` may come from several workflows' logs."""
    events = resolve_devices(events) if device is None else only_device(events, device)
    if not events:
        raise ValueError("no timeline events to summarize")
    start = min(e.start for e in events)
    end = max(e.end for e in events)
    makespan = end - start
    nodes = quantum_nodes(events)
    # A session that never executed used no device: it is a quantum node of the run, of no device.
    names = sorted(set(device_names(events)) | {n.device for n in nodes if n.exec_spans or not n.shared})
    handover = handovers_by_device(events)
    devices = {name: device_summary(name, events, nodes, start, end, handover.get(name, [])) for name in names}
    # Without any hold or exec the one device of the run was free and idle all along.
    figures = list(devices.values()) or [device_summary("", [], [], start, end, [])]
    count = capacity(names)
    waits = [n.wait for n in nodes if n.wait is not None]
    work: dict[str, float] = defaultdict(float)
    held: dict[str, float] = defaultdict(float)
    for e in events:
        if e.kind in ("exec", "cpu"):
            work[e.workflow] += e.duration
    for n in nodes:
        held[n.workflow] += n.held
    quantum_work = sum(e.duration for e in events if e.kind == "exec")
    classical_work = sum(e.duration for e in events if e.kind == "cpu")
    longest = max(work.values(), default=0.0)
    bound = max(quantum_work / count + min(final_classical(events).values(), default=0.0), longest)
    pooled = [seconds for name in names for seconds in handover.get(name, [])]
    busy = sum(d.qpu_busy for d in figures)
    allocated = sum(d.qpu_allocated for d in figures)
    frac = (lambda x: x / (count * makespan)) if makespan > 0 else (lambda x: 0.0)
    return Summary(
        workflows=len({e.workflow for e in events}),
        quantum_nodes=len(nodes),
        classical_nodes=sum(1 for e in events if e.kind == "cpu"),
        start=start, end=end, makespan=makespan,
        qpu_busy=busy, qpu_busy_fraction=frac(busy),
        qpu_allocated=allocated, qpu_allocated_fraction=frac(allocated),
        qpu_allocated_idle=sum(n.idle for n in nodes),
        qpu_free=count * makespan - allocated,
        idle_gaps=sum(d.idle_gaps for d in figures),
        longest_idle_gap=max(d.longest_idle_gap for d in figures),
        wait_mean=fmean(waits) if waits else None, wait_max=max(waits) if waits else None,
        waits_measured=len(waits),
        quantum_work=quantum_work, classical_work=classical_work, longest_workflow=longest,
        bound=bound, makespan_over_bound=makespan / bound if bound > 0 else None,
        hold_per_workflow=dict(sorted(held.items())),
        handover_median=median(pooled) if pooled else None,
        handover_p95=percentile(pooled, 95) if pooled else None,
        handovers_measured=len(pooled),
        qpu_devices=count,
        devices=devices,
    )


def device_summary(name: str, events: Sequence[Event], nodes: Sequence[QuantumNode], start: float, end: float,
                   handover: Sequence[float]) -> DeviceSummary:
    """The figures of device ``name`` over the run's span ``[start, end]``, from resolved events and nodes."""
    makespan = end - start
    execs = [(e.start, e.end) for e in events if e.kind == "exec" and e.device == name]
    mine = [n for n in nodes if n.device == name]
    waits = [n.wait for n in mine if n.wait is not None]
    held: dict[str, float] = defaultdict(float)
    for n in mine:
        held[n.workflow] += n.held
    idle = gaps(execs, start, end)
    busy, allocated = covered(execs), covered(allocated_spans(mine))
    frac = (lambda x: x / makespan) if makespan > 0 else (lambda x: 0.0)
    return DeviceSummary(
        device=name, workflows=len(held), quantum_nodes=len(mine),
        qpu_busy=busy, qpu_busy_fraction=frac(busy),
        qpu_allocated=allocated, qpu_allocated_fraction=frac(allocated),
        qpu_allocated_idle=sum(n.idle for n in mine), qpu_free=makespan - allocated,
        idle_gaps=len(idle), longest_idle_gap=max((b - a for a, b in idle), default=0.0),
        wait_mean=fmean(waits) if waits else None, wait_max=max(waits) if waits else None,
        waits_measured=len(waits), quantum_work=sum(b - a for a, b in execs),
        hold_per_workflow=dict(sorted(held.items())),
        handover_median=median(handover) if handover else None,
        handover_p95=percentile(handover, 95) if handover else None,
        handovers_measured=len(handover),
    )


def final_classical(events: Sequence[Event]) -> dict[str, float]:
    """Per workflow with quantum work: seconds of ``cpu`` intervals that start after its last exec ends."""
    last_exec: dict[str, float] = {}
    for e in events:
        if e.kind == "exec":
            last_exec[e.workflow] = max(last_exec.get(e.workflow, e.end), e.end)
    return {wf: sum(e.duration for e in events if e.kind == "cpu" and e.workflow == wf and e.start >= end - _EPS)
            for wf, end in last_exec.items()}


def handovers(events: Sequence[Event]) -> list[float]:
    """Seconds from one node's last exec to the next waiting node's first exec, on every device (module doc)."""
    by_device = handovers_by_device(resolve_devices(events))
    return [seconds for name in sorted(by_device) for seconds in by_device[name]]


def handovers_by_device(events: Sequence[Event]) -> dict[str, list[float]]:
    """``handovers`` of resolved events, by device."""
    ready: dict[tuple[str, str], float] = {}
    blocks: dict[str, dict[tuple[str, str], list[float]]] = defaultdict(dict)  # device -> node -> [first, last]
    for e in events:
        key = (e.workflow, e.node)
        if e.kind == "ready":
            ready.setdefault(key, e.start)
        elif e.kind == "exec":
            block = blocks[e.device].setdefault(key, [e.start, e.end])
            block[0], block[1] = min(block[0], e.start), max(block[1], e.end)
    out: dict[str, list[float]] = {}
    for device, nodes in blocks.items():
        ordered = sorted(nodes.items(), key=lambda item: item[1][0])
        out[device] = []
        for (_, (_, previous_end)), (key, (first, _)) in zip(ordered, ordered[1:]):
            waiting = ready.get(key, float("-inf")) <= previous_end + _EPS
            if waiting and first >= previous_end - _EPS:
                out[device].append(max(0.0, first - previous_end))
    return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile by linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def allocated_spans(nodes: Iterable[QuantumNode]) -> list[Span]:
    """When the device was allocated to some node (holds; a service session's own execs)."""
    return [span for n in nodes for span in n.allocated]


def consistency_problems(events: Sequence[Event], tolerance: float = _EPS) -> list[str]:
    """Invariants every timeline must satisfy, per device; an empty list means consistent.

    These catch broken logging or a broken device lock, not slow runs: intervals run
    forwards, every exec lies inside a hold of the same node, holds of one device never
    overlap (one holder at a time; holds of different devices may) and each device's busy
    time fits in its allocated time and the makespan.
    ``tolerance`` (seconds) absorbs clock resolution: SLURM's records have whole seconds.
    """
    events = resolve_devices(events)
    problems = []
    for e in events:
        if e.end < e.start:
            problems.append(f"{e.kind} {e.workflow}/{e.node} ends before it starts")
    holds_by_node: dict[tuple[str, str], list[Span]] = defaultdict(list)
    holds_by_device: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.kind in ("hold", "session"):
            holds_by_node[(e.workflow, e.node)].append((e.start, e.end))
        if e.kind == "hold":  # sessions share the device by design
            holds_by_device[e.device].append(e)
    for e in events:
        if e.kind == "exec" and not any(a - tolerance <= e.start and e.end <= b + tolerance
                                        for a, b in holds_by_node[(e.workflow, e.node)]):
            problems.append(f"exec {e.workflow}/{e.node} at {e.start:.3f} lies outside every hold or session "
                            "of that node")
    for device, holds in holds_by_device.items():
        holds.sort(key=lambda h: h.start)
        for before, after in zip(holds, holds[1:]):
            if after.start < before.end - tolerance:
                problems.append(f"device {device!r} held twice at once: {before.workflow}/{before.node} "
                                f"and {after.workflow}/{after.node} overlap by {before.end - after.start:.3f} s")
    if events:
        s = summarize(events)
        for device, d in s.devices.items():
            where = f"device {device!r}: " if len(s.devices) > 1 else ""
            if d.qpu_busy > d.qpu_allocated + tolerance * max(1, d.quantum_nodes):
                problems.append(f"{where}QPU busy {d.qpu_busy:.3f} s exceeds allocated {d.qpu_allocated:.3f} s")
            if d.qpu_allocated > s.makespan + tolerance:
                problems.append(f"{where}QPU allocated {d.qpu_allocated:.3f} s exceeds the makespan "
                                f"{s.makespan:.3f} s")
    return problems
