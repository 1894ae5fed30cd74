"""The SLURM view a ``bench/coschedule.py --backend slurm`` cell writes (``slurm-view.jsonl``): which qpu host
each exec ran on, and the staged forms' one-executor check.

Side-effect free to import (no BLAS settings, no cirq), for the benchmark and for readers of its views
(``bench.model.measured``).
"""

from __future__ import annotations

from dataclasses import replace


def execs_on_hosts(events: list) -> list:
    """Each exec on its node's qpu host, SLURM's record of the node's hold or session. Execs name their device
    their own way: a gateway's, or the resident service's simulator (``modelled``), the same on every qpu host,
    so on a lab with two qpu hosts both hosts' execs would count as one device's. Views written before this
    attributed only holds' execs; applied to one of those, this repairs its sessions' execs."""
    host = {(e.workflow, e.node): e.device for e in events if e.kind in ("hold", "session") and e.device}
    return [replace(e, device=host.get((e.workflow, e.node), e.device)) if e.kind == "exec" else e for e in events]


def staged_problems(events: list) -> list[str]:
    """One executor at a time: on each device no two execs overlap, and no node's block is interrupted by
    another node's exec (staged sessions wait with their runs queued until the executing one ends)."""
    from hcqw.timeline.devices import resolve_devices

    problems = []
    by_device: dict[str, list] = {}
    for e in resolve_devices(events):
        if e.kind == "exec":
            by_device.setdefault(e.device, []).append(e)
    for device, execs in by_device.items():
        execs.sort(key=lambda e: e.start)
        for before, after in zip(execs, execs[1:]):
            if after.start < before.end:
                problems.append(f"device {device!r} executed {before.workflow}/{before.node} and "
                                f"{after.workflow}/{after.node} at once")
        served = [(e.workflow, e.node) for e in execs]
        runs = [node for i, node in enumerate(served) if i == 0 or served[i - 1] != node]
        if len(runs) != len(set(runs)):
            problems.append(f"device {device!r}: a node's block was interrupted by another node's exec: {runs}")
    return problems
