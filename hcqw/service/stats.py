"""Accounting over a metrics log: utilization, idle gaps, quantum seconds per workflow and user.

Reads the ``hcqw.metrics`` JSON-lines format, so it reports on a QPU service's log and on
the log of ``LocalDevice`` leases alike.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from hcqw.metrics import read_events


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def compute_stats(path: Path | str, device: str | None = None) -> dict:
    """Summary of one log (optionally one device's events only)."""
    events = [e for e in read_events(path) if device is None or e.get("device") == device]
    execs = [e for e in events if e.get("kind") == "exec"]
    holds = [e for e in events if e.get("kind") == "hold"]
    if not events:
        return {"events": 0}
    span_start = min(e["start"] for e in events)
    span_end = max(e["end"] for e in events)
    span = max(span_end - span_start, 1e-12)
    busy = _merge([(e["start"], e["end"]) for e in execs])
    busy_seconds = sum(end - start for start, end in busy)
    gaps = [b[0] - a[1] for a, b in zip(busy, busy[1:])]

    def per(key: str) -> dict:
        table: dict = defaultdict(lambda: {"quantum_s": 0.0, "hold_s": 0.0, "items": 0, "shots": 0, "jobs": 0,
                                           "sessions": 0})
        for e in execs:
            row = table[e.get(key, "?")]
            row["quantum_s"] += e["end"] - e["start"]
            row["items"] += e.get("items", 0)
            row["shots"] += e.get("shots", 0)
            row["jobs"] += 1
        for e in holds:
            row = table[e.get(key, "?")]
            row["hold_s"] += e["end"] - e["start"]
            row["sessions"] += 1
        return dict(sorted(table.items()))

    return {
        "events": len(events), "start": span_start, "end": span_end, "span_s": span,
        "busy_s": busy_seconds, "utilization": busy_seconds / span, "jobs": len(execs),
        "idle_gaps": {
            "count": len(gaps), "total_s": sum(gaps),
            "median_s": statistics.median(gaps) if gaps else 0.0,
            "max_s": max(gaps) if gaps else 0.0,
        },
        "per_workflow": per("workflow"),
        "per_user": per("user"),
    }


def format_stats(stats: dict) -> str:
    if not stats.get("events"):
        return "no events in the metrics log"
    gaps = stats["idle_gaps"]
    lines = [
        f"span {stats['span_s']:.3f} s, busy {stats['busy_s']:.3f} s, utilization {100 * stats['utilization']:.1f}%, "
        f"{stats['jobs']} jobs",
        f"idle gaps: {gaps['count']}, total {gaps['total_s']:.3f} s, median {1e3 * gaps['median_s']:.3f} ms, "
        f"max {gaps['max_s']:.3f} s",
    ]
    for title, key in (("workflow", "per_workflow"), ("user", "per_user")):
        lines.append(f"{title:<24} {'quantum s':>12} {'hold s':>10} {'jobs':>8} {'items':>8} {'shots':>10} "
                     f"{'sessions':>8}")
        for name, row in stats[key].items():
            lines.append(f"{str(name)[:24]:<24} {row['quantum_s']:>12.4f} {row['hold_s']:>10.3f} {row['jobs']:>8} "
                         f"{row['items']:>8} {row['shots']:>10} {row['sessions']:>8}")
    return "\n".join(lines)
