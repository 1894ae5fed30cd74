"""Quantum-node timelines from both sides: the run's metrics log and SLURM's own records.

The metrics log says when the quantum block held the device (``hold``) and how long
the release took (``release``); SLURM says when the qpu component itself started and
ended (``NodeState.component(1)``). Benchmarks compare the two: the gap between the end
of ``hold`` and the component's EndTime is what the early release leaves on the table.
SLURM prints whole seconds as naive local times; they are converted to Unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hcqw.metrics import read_events
from hcqw.slurm import NodeState


@dataclass(frozen=True)
class QpuTimeline:
    node: str
    hold_start: float | None  # metrics: quantum block (session) start
    hold_end: float | None  # metrics: quantum block end
    qpu_start: float | None  # SLURM: component 1 StartTime (whole seconds)
    qpu_end: float | None  # SLURM: component 1 EndTime (whole seconds)
    leader_end: float | None  # SLURM: component 0 EndTime

    @property
    def release_lag(self) -> float | None:
        """Seconds from the end of the quantum block to SLURM ending the qpu component (1 s resolution)."""
        if self.hold_end is None or self.qpu_end is None:
            return None
        return self.qpu_end - self.hold_end


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None  # naive datetimes are local time, as SLURM prints them


def qpu_component_times(state: NodeState) -> tuple[float | None, float | None]:
    """(start, end) of the qpu component (offset 1) in Unix seconds, from SLURM's records."""
    comp = state.component(1)
    return (_ts(comp.start_time), _ts(comp.end_time)) if comp else (None, None)


def qpu_timeline(metrics_path: Path | str, workflow: str, node: str, state: NodeState) -> QpuTimeline:
    holds = [e for e in read_events(metrics_path, "hold") if e.get("workflow") == workflow and e.get("node") == node]
    hold = holds[-1] if holds else {}
    start, end = qpu_component_times(state)
    leader = state.component(0)
    return QpuTimeline(node, hold.get("start"), hold.get("end"), start, end, _ts(leader.end_time) if leader else None)
