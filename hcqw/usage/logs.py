"""Holds and execs from metrics logs: the device's side of usage.

Read with the timeline reader (:func:`hcqw.timeline.events.find_metrics` and
:func:`~hcqw.timeline.events.load_events`), so a run directory means every
``metrics/qpu.jsonl`` and ``metrics/gateway.jsonl`` below it, and a file is any log in the
``hcqw.metrics`` format (a QPU service's ``--metrics`` log included).

Only exclusive ``hold`` events become charges: a QPU service logs a session's lifetime as a
hold with a ``session`` field, which the timeline reader turns into a non-exclusive
``session`` (sessions share the device through its queue, so they are not charged).

An ``exec`` relayed by a job's gateway is logged both in the run's gateway log and in the
resident service's log: execs seen twice (same device, start and end) count once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hcqw.timeline.events import Event, TimelineError, find_metrics, load_events
from hcqw.usage.period import UsageError
from hcqw.usage.records import Busy, Charge


def event_user(fields: Mapping[str, Any]) -> str | None:
    """The user an event names, preferring an authenticated identity over a name a client claimed.

    Read, in order: ``identity`` or ``user`` as an object (``{"uid": .., "user"|"name": ..}``, the
    authenticated user), then ``user`` as a string (today's field: the service's record of the
    session's user, or the logging process's login name), then a bare ``uid``.
    """
    for key in ("identity", "user"):
        value = fields.get(key)
        if isinstance(value, Mapping):
            name = value.get("user") or value.get("name")
            if name:
                return str(name)
            if value.get("uid") is not None:
                return f"uid {value['uid']}"
    user = fields.get("user")
    if isinstance(user, str) and user:
        return user
    if fields.get("uid") is not None:
        return f"uid {fields['uid']}"
    return None


def read_logs(paths: Iterable[Path | str]) -> tuple[list[Charge], list[Busy]]:
    """(holds as charges, execs) of every metrics log under ``paths``."""
    files: list[Path] = []
    for path in paths:
        try:
            files += find_metrics(path)
        except TimelineError as err:
            raise UsageError(f"{err}; give run directories or QPU service metrics logs") from None
    holds: list[Charge] = []
    busy: dict[tuple, Busy] = {}
    for event in load_events(dict.fromkeys(files)):  # a file under two given paths is read once
        if event.kind == "hold":
            holds.append(_hold(event))
        elif event.kind == "exec":
            busy.setdefault((event.device, event.start, event.end), _exec(event))
    return holds, list(busy.values())


def _hold(event: Event) -> Charge:
    return Charge(event_user(event.extra), None, event.workflow or None, event.node or None, event.start, event.end)


def _exec(event: Event) -> Busy:
    return Busy(event_user(event.extra), event.workflow or None, event.node or None, event.start, event.end,
                event.device)
