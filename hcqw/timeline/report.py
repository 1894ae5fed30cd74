"""Plain-text and JSON presentation of ``Summary`` figures, one column per run.

With one device per run the table is the run's figures. When a run used several devices, a
``QPU devices`` row says how many, the QPU rows are the run's totals (seconds added over the
devices, fractions of devices x makespan) and a row group per device follows with the figures
that only make sense per device.
"""

from __future__ import annotations

import json
from typing import Callable, Mapping, Union

from hcqw.timeline.analysis import DeviceSummary, Summary

_S = lambda v: "-" if v is None else f"{v:.2f} s"  # noqa: E731
_F = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731

Figures = Union[Summary, DeviceSummary]

# (label, how to read it from a Summary) in display order.
ROWS: list[tuple[str, Callable[[Figures], str]]] = [
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

# The rows a DeviceSummary has too (same field names), shown per device when a run used several.
DEVICE_ROWS = [(name, get) for name, get in ROWS if name not in {
    "workflows", "classical blocks logged", "makespan", "longest single workflow", "lower bound", "makespan / bound"}]

DEVICES_ROW = "QPU devices"
TOTALS_NOTE = ("QPU totals add the devices' seconds; their fractions are of devices x makespan. "
               "Per device, fractions are of the makespan.")


def several_devices(summaries: Mapping[str, Summary]) -> bool:
    return any(len(s.devices) > 1 for s in summaries.values())


def table_rows(summaries: Mapping[str, Summary]) -> list[tuple[str, list[str]]]:
    """(figure, one value per run) in display order: the run's figures, then one row group per device if
    any run used several (a header row with empty values, then its figures; ``-`` for runs without it)."""
    labels = list(summaries)
    rows = [(name, [get(summaries[k]) for k in labels]) for name, get in ROWS]
    if not several_devices(summaries):
        return rows
    rows.insert(3, (DEVICES_ROW, [str(summaries[k].qpu_devices) for k in labels]))
    devices = list(dict.fromkeys(name for s in summaries.values() for name in s.devices))
    for device in devices:
        rows.append((f"device {device}", ["" for _ in labels]))
        per_run = [summaries[k].devices.get(device) for k in labels]
        rows += [(f"  {name}", ["-" if d is None else get(d) for d in per_run]) for name, get in DEVICE_ROWS]
    return rows


def holdings(summary: Summary) -> list[tuple[str, str]]:
    """(title, seconds per workflow as text): the run's, then each device's if it used several; which device
    a workflow held for how long shows a chain moving between devices."""
    def text(held: Mapping[str, float]) -> str:
        return ", ".join(f"{wf} {sec:.2f} s" for wf, sec in held.items()) or "-"

    out = [("QPU holding per workflow", text(summary.hold_per_workflow))]
    if len(summary.devices) > 1:
        out += [(f"QPU holding per workflow on {name}", text(d.hold_per_workflow)) for name, d in summary.devices.items()]
    return out


def format_table(summaries: Mapping[str, Summary]) -> str:
    """The figures as an aligned text table, plus QPU-holding seconds per workflow below it."""
    labels = list(summaries)
    rows = [["", *labels]] + [[name, *values] for name, values in table_rows(summaries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             if any(r[1:]) else r[0] for r in rows]  # a device's header row has no values
    for label, s in summaries.items():
        prefix = f"{label}: " if len(summaries) > 1 else ""
        lines += [f"{prefix}{title}: {held}" for title, held in holdings(s)]
    if several_devices(summaries):
        lines.append(TOTALS_NOTE)
    return "\n".join(lines)


def to_json(summaries: Mapping[str, Summary]) -> str:
    return json.dumps({label: s.to_dict() for label, s in summaries.items()}, indent=2, sort_keys=True)
