"""Reading timeline events: find every ``metrics/qpu.jsonl`` under a run directory and parse them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from hcqw.errors import HcqwError
from hcqw.metrics import read_events
from hcqw.paths import GATEWAY_METRICS, METRICS_DIR, QPU_METRICS

log = logging.getLogger(__name__)

INTERVAL_KINDS = frozenset({"hold", "exec", "cpu", "session"})
POINT_KINDS = frozenset({"ready"})


class TimelineError(HcqwError):
    """No usable timeline under the given path."""


@dataclass(frozen=True)
class Event:
    """One timeline event. ``end`` equals ``start`` for point events (``ready``)."""

    kind: str
    workflow: str
    node: str
    start: float
    end: float
    device: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def duration(self) -> float:
        return self.end - self.start

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Event":
        kind = str(raw["kind"])
        if kind == "hold" and raw.get("session"):
            # The QPU service logs a session's lifetime as a hold, but sessions share the device
            # (its queue interleaves their work items): read it as a non-exclusive ``session``.
            kind = "session"
        start = float(raw["start"])
        end = float(raw.get("end", start)) if kind not in POINT_KINDS else start
        known = {"kind", "workflow", "node", "start", "end", "device"}
        return cls(kind, str(raw.get("workflow", "")), str(raw.get("node", "")), start, end,
                   str(raw.get("device", "")), {k: v for k, v in raw.items() if k not in known})


def find_metrics(path: Path | str) -> list[Path]:
    """Every metrics log under ``path``: the file itself, or each ``metrics/qpu.jsonl`` below a directory.

    A benchmark cell or a multi-workflow run keeps one run directory per workflow, so the
    logs of one co-scheduled run are spread over several files; they are analysed together.
    A SLURM run's ``metrics/gateway.jsonl`` (the device's execs) is read along with its ``qpu.jsonl``.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TimelineError(f"{path}: no such file or directory")
    # A SLURM quantum node's gateway (the QPU service on its qpu component) logs the device's side.
    found = sorted(p for name in (QPU_METRICS, GATEWAY_METRICS) for p in path.rglob(name)
                   if p.parent.name == METRICS_DIR)
    if not found:
        raise TimelineError(f"{path}: no {METRICS_DIR}/{QPU_METRICS} below it; is this a run directory?")
    return found


def load_events(paths: Iterable[Path | str]) -> list[Event]:
    """Parse the known event kinds from ``paths``, sorted by start; unknown kinds are skipped (forward compatible)."""
    events: list[Event] = []
    for path in paths:
        events += parse_events(read_events(path), path)
    events.sort(key=lambda e: (e.start, e.end))
    return events


def parse_events(raws: Iterable[dict[str, Any]], source: Path | str) -> list[Event]:
    """The events of known kinds among ``raws`` (read from ``source``, named in warnings), in file order."""
    events: list[Event] = []
    for raw in raws:
        if raw.get("kind") not in INTERVAL_KINDS | POINT_KINDS:
            continue
        try:
            events.append(Event.from_dict(raw))
        except (KeyError, TypeError, ValueError) as err:
            log.warning("%s: skipping malformed event %r: %s", source, raw, err)
    return events


def load_run(path: Path | str) -> list[Event]:
    """``load_events(find_metrics(path))``."""
    return load_events(find_metrics(path))
