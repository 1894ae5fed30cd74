"""Plain-text and JSON presentation of ``Summary`` figures, one column per run."""

from __future__ import annotations

import json
from typing import Callable, Mapping

from hcqw.timeline.analysis import Summary

_S = lambda v: "-" if v is None else f"{v:.2f} s"  # noqa: E731
_F = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731

# (label, how to read it from a Summary) in display order.
ROWS: list[tuple[str, Callable[[Summary], str]]] = [
    ("workflows", lambda s: str(s.workflows)),
    ("quantum nodes (holds)", lambda s: str(s.quantum_nodes)),
    ("classical blocks logged", lambda s: str(s.classical_nodes)),
    ("makespan", lambda s: _S(s.makespan)),
    ("QPU busy (exec)", lambda s: _S(s.qpu_busy)),
    ("QPU busy fraction", lambda s: _F(s.qpu_busy_fraction)),
    ("QPU allocated (hold)", lambda s: _S(s.qpu_allocated)),
    ("QPU allocated fraction", lambda s: _F(s.qpu_allocated_fraction)),
    ("QPU allocated but idle", lambda s: _S(s.qpu_allocated_idle)),
    ("QPU free (unallocated)", lambda s: _S(s.qpu_free)),
    ("QPU idle gaps (count)", lambda s: str(s.idle_gaps)),
    ("longest QPU idle gap", lambda s: _S(s.longest_idle_gap)),
    ("wait per quantum node, mean", lambda s: _S(s.wait_mean)),
    ("wait per quantum node, max", lambda s: _S(s.wait_max)),
    ("waits measured", lambda s: f"{s.waits_measured}/{s.quantum_nodes}"),
    ("sum of quantum blocks", lambda s: _S(s.quantum_work)),
    ("longest single workflow", lambda s: _S(s.longest_workflow)),
    ("hand-over, median", lambda s: _S(s.handover_median)),
    ("hand-over, p95", lambda s: _S(s.handover_p95)),
    ("hand-overs measured", lambda s: str(s.handovers_measured)),
    ("lower bound", lambda s: _S(s.bound)),
    ("makespan / bound", lambda s: _F(s.makespan_over_bound)),
]


def format_table(summaries: Mapping[str, Summary]) -> str:
    """The figures as an aligned text table, plus QPU-holding seconds per workflow below it."""
    labels = list(summaries)
    rows = [["", *labels]] + [[name, *(get(summaries[k]) for k in labels)] for name, get in ROWS]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    for label, s in summaries.items():
        prefix = f"{label}: " if len(summaries) > 1 else ""
        held = ", ".join(f"{wf} {sec:.2f} s" for wf, sec in s.hold_per_workflow.items())
        lines.append(f"{prefix}QPU holding per workflow: {held or '-'}")
    return "\n".join(lines)


def to_json(summaries: Mapping[str, Summary]) -> str:
    return json.dumps({label: s.to_dict() for label, s in summaries.items()}, indent=2, sort_keys=True)
