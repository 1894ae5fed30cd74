"""Which device each hold, exec and session used, when a run's logs name devices unevenly.

A run may use several devices (two qpu hosts, each its own QPU; a chain may move between
them). Each distinct ``device`` of ``hold``/``exec`` events is one device, with two repairs
for logs that name the device loosely:

- **generic names** (``GENERIC_DEVICES``) say "a QPU" without saying which: a SLURM quantum
  node's lease logs its hold on ``gateway`` (the job's gateway, in front of whichever device
  SLURM gave the job), the benchmark's SLURM view holds ``slurm-qpu``, old logs give none. Such
  a hold belongs to the device its node's execs during the hold ran on;
- a hold naming a device is exclusive, so its node's execs during it ran on that device, even
  when an exec names its simulator instead (``qsim``, the same behind every qpu host's service).

What is still generic after that (a hold that executed nothing, an exec outside every hold)
goes to the run's only device when there is exactly one; otherwise it keeps its name, so it
shows as a device of its own rather than on a wrong one. A ``session`` (it reserves nothing;
a client logs the service's address as its device) goes to the device of its node's execs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import replace
from typing import Iterable, Sequence

from hcqw.timeline.events import Event

GENERIC_DEVICES = frozenset({"", "gateway", "slurm-qpu"})

DEVICE_KINDS = ("hold", "exec")

_EPS = 1e-3  # seconds: interval ends written by different processes disagree by microseconds


def _overlaps(a: Event, b: Event) -> bool:
    return a.start < b.end + _EPS and b.start < a.end + _EPS


def _most_common(names: Iterable[str]) -> str | None:
    counts = Counter(names)
    return counts.most_common(1)[0][0] if counts else None


def resolve_devices(events: Sequence[Event]) -> list[Event]:
    """``events`` (same order) with ``device`` naming the device each hold, exec and session used (module doc)."""
    device = [e.device for e in events]
    execs: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, e in enumerate(events):
        if e.kind == "exec":
            execs[(e.workflow, e.node)].append(i)
    for i, hold in enumerate(events):
        if hold.kind != "hold":
            continue
        during = [j for j in execs[(hold.workflow, hold.node)] if _overlaps(events[j], hold)]
        if hold.device not in GENERIC_DEVICES:
            for j in during:
                device[j] = hold.device
            continue
        named = _most_common(events[j].device for j in during if events[j].device not in GENERIC_DEVICES)
        if named is not None:
            device[i] = named
            for j in during:
                if device[j] in GENERIC_DEVICES:
                    device[j] = named
    named_devices = {device[i] for i, e in enumerate(events)
                     if e.kind in DEVICE_KINDS and device[i] not in GENERIC_DEVICES}
    only = next(iter(named_devices)) if len(named_devices) == 1 else None
    for i, e in enumerate(events):
        if only is not None and e.kind in DEVICE_KINDS and device[i] in GENERIC_DEVICES:
            device[i] = only
    for i, e in enumerate(events):
        if e.kind == "session":
            used = _most_common(device[j] for j in execs[(e.workflow, e.node)] if _overlaps(events[j], e))
            device[i] = used if used is not None else (only or "")
    return [e if e.device == name else replace(e, device=name) for e, name in zip(events, device)]


def device_names(resolved: Iterable[Event]) -> list[str]:
    """The devices of already resolved events, sorted: every name a hold or exec used."""
    return sorted({e.device for e in resolved if e.kind in DEVICE_KINDS})


def capacity(names: Iterable[str]) -> int:
    """How many devices the run had for the fractions and the bound: its named devices, at least one.

    A generic name left over (a hold that executed nothing, in a run of several devices) is no
    device of its own: its node held one of the named ones.
    """
    return max(1, sum(1 for name in names if name not in GENERIC_DEVICES))


def only_device(events: Sequence[Event], name: str) -> list[Event]:
    """The resolved events of device ``name``, with every ``ready`` and ``cpu`` (they name no device)."""
    return [e for e in resolve_devices(events) if e.kind in ("ready", "cpu") or e.device == name]
