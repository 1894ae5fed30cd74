"""Holds and execs from metrics logs: the device's side of usage.

Read with the timeline reader (:func:`hcqw.timeline.events.find_metrics` and
:func:`~hcqw.timeline.events.parse_events`), so a run directory means every
``metrics/qpu.jsonl`` and ``metrics/gateway.jsonl`` below it, and a file is any log in the
``hcqw.metrics`` format (a QPU service's ``--metrics`` log included).

Only exclusive ``hold`` events become charges: a QPU service logs a session's lifetime as a
hold with a ``session`` field, which the timeline reader turns into a non-exclusive
``session`` (sessions share the device through its queue, so they are not charged).

An ``exec`` relayed by a job's gateway is logged both in the run's gateway log and in the
resident service's log: execs seen twice (same device, start and end) count once.

Who an event is charged to comes from the file system, not from the event: a log a user wrote
(a run's ``metrics/qpu.jsonl``) can say anything, so its events are credited to the file's owner
(``st_uid``, the file opened without following a link), and events naming someone else are
counted and reported. Only the logs of root and of the QPU service's account
(``SERVICE_ACCOUNTS``; the service records the user MUNGE proved) are believed about the user.
"""

from __future__ import annotations

import logging
import pwd
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hcqw.identity import user_name
from hcqw.metrics import read_owned_events
from hcqw.timeline.events import TimelineError, find_metrics, parse_events
from hcqw.trust import UntrustedPath
from hcqw.usage.period import UsageError
from hcqw.usage.records import Busy, Charge

log = logging.getLogger(__name__)

#: Accounts whose metrics logs are believed about an event's user: the resident QPU service's (the
#: site guide's unit runs it as ``hcqw-qpu``). Root's logs are believed too.
SERVICE_ACCOUNTS = ("hcqw-qpu",)


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


def read_logs(paths: Iterable[Path | str],
              service_accounts: Iterable[str] = SERVICE_ACCOUNTS) -> tuple[list[Charge], list[Busy]]:
    """(holds as charges, execs) of every metrics log under ``paths``, each credited to the owner of
    its file unless root or one of ``service_accounts`` owns it (see the module docstring)."""
    files: list[Path] = []
    for path in paths:
        try:
            files += find_metrics(path)
        except TimelineError as err:
            raise UsageError(f"{err}; give run directories or QPU service metrics logs") from None
    trusted = {0} | {uid for uid in map(_uid, service_accounts) if uid is not None}
    logs = []
    for file in dict.fromkeys(files):  # a file under two given paths is read once
        try:
            owner, raws = read_owned_events(file)
        except (UntrustedPath, OSError, ValueError) as err:
            raise UsageError(f"cannot read metrics log {file}: {err}") from None
        logs.append((owner not in trusted, owner, parse_events(raws, file), file))
    holds: list[Charge] = []
    busy: dict[tuple, Busy] = {}
    for untrusted, owner, events, file in sorted(logs, key=lambda entry: entry[0]):  # the service's logs first
        disowned = 0
        for event in events:
            user = event_user(event.extra)
            if untrusted:
                disowned += user not in (None, user_name(owner))
                user = user_name(owner)
            if event.kind == "hold":
                holds.append(Charge(user, None, event.workflow or None, event.node or None, event.start, event.end))
            elif event.kind == "exec":
                busy.setdefault((event.device, event.start, event.end), Busy(
                    user, event.workflow or None, event.node or None, event.start, event.end, event.device))
        if disowned:
            log.warning("%s: %d event(s) name a user other than the file's owner; charged to its owner %s (only "
                        "the QPU service's own log is believed about who the user was)", file, disowned,
                        user_name(owner))
    holds.sort(key=lambda charge: (charge.start, charge.end))
    return holds, sorted(busy.values(), key=lambda batch: (batch.start, batch.end))


def _uid(account: str) -> int | None:
    try:
        return pwd.getpwnam(account).pw_uid
    except KeyError:
        return None
