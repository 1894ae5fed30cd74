"""A one-line progress report for long runs: iterations done, latest objective, QPU queue.

Read from what the run already writes (checkpoint headers, the device's FIFO tickets), so
it can watch runs in other processes without any channel to them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from hcqw.errors import HcqwError
from hcqw.paths import STATE_FILE_GLOB, run_checkpoints, state_iteration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkflowProgress:
    workflow: str
    iterations_done: int
    summary: str | None  # the loop's ``describe`` line of the latest state, e.g. "objective 3.2"


def workflow_progress(run_dir: Path) -> WorkflowProgress:
    """The latest state checkpoint of one run directory (``<runs>/<workflow>``)."""
    latest, latest_path = 0, None
    for path in run_checkpoints(run_dir).glob(STATE_FILE_GLOB):
        iteration = state_iteration(path.name)
        if iteration is not None and iteration >= latest:
            latest, latest_path = iteration, path
    summary = None
    if latest_path is not None and latest > 0:
        from hcqw.checkpoint import read_header

        try:
            summary = read_header(latest_path).meta.get("summary")
        except (HcqwError, OSError) as err:  # being replaced right now; the next poll sees it
            log.debug("progress: %s: %s", latest_path, err)
    return WorkflowProgress(run_dir.name, latest, summary)


def queue_line(device_dir: Path | None) -> str:
    """``holder, then waiters with their queue position`` of a local device, from its tickets."""
    if device_dir is None:
        return ""
    from hcqw.device.fifo_lock import FifoLock

    owners = FifoLock(device_dir).holders()
    if not owners:
        return "QPU: free"
    names = [f"{o.get('workflow', '?')}/{o.get('node', '?')}" for o in owners]
    waiting = ", ".join(f"{n} (#{i})" for i, n in enumerate(names[1:], start=1))
    return f"QPU: {names[0]} holding" + (f"; queue {waiting}" if waiting else "")


def progress_line(run_dirs: Sequence[Path], total_iterations: int, device_dir: Path | None = None) -> str:
    """E.g. ``iterations 7/20; k4-w1: objective 3.41; QPU: k4-w2/q0003 holding; queue k4-w0/q0003 (#1)``."""
    states = [workflow_progress(d) for d in run_dirs]
    done = sum(s.iterations_done for s in states)
    parts = [f"iterations {done}/{total_iterations}"]
    latest = max(states, key=lambda s: s.iterations_done, default=None)
    if latest is not None and latest.summary:
        parts.append(f"{latest.workflow}: {latest.summary}")
    queue = queue_line(device_dir)
    if queue:
        parts.append(queue)
    return "; ".join(parts)
