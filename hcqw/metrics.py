"""The QPU timeline: one JSON object per line, appended by every process that uses a device.

Two kinds of interval are recorded, because their difference is what splitting buys:

- ``hold``: the device was allocated to a workflow node (from acquire to release);
- ``exec``: the device was executing a batch of that node's work items.

Fields: kind, workflow, node, device, user, start, end (Unix seconds), and for ``exec``
also qubits, shots, items.

``MetricsLog`` is the one writer of these logs: engines, gateways, relays and the QPU service.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from hcqw.identity import current_user
from hcqw.trust import open_nofollow

log = logging.getLogger(__name__)


class MetricsLog:
    """Appends events to ``path``. ``user`` defaults to this process's own account.

    ``keep_open``: hold the descriptor open between events, for a service that appends per work
    item (an open/close each would dominate a microsecond-scale dispatch); a failed append is then
    logged, not raised, so a full disk never stops the service. ``close()`` ends it."""

    def __init__(self, path: Path | str, keep_open: bool = False, mode: int = 0o644):
        self.path = Path(path)
        self.mode = mode  # of a new log; a service's own log is 0640 (hcqw.service.server)
        self._keep_open = keep_open
        self._fd: int | None = self._open() if keep_open else None  # a bad path fails at start-up

    def record(self, kind: str, **fields: Any) -> None:
        """Append one event. A single ``write`` on an ``O_APPEND`` descriptor keeps lines whole across processes."""
        if "user" not in fields:
            fields["user"] = current_user()
        line = (json.dumps({"kind": kind, **fields}, sort_keys=True) + "\n").encode()
        if not self._keep_open:
            fd = self._open()
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
            return
        try:
            if self._fd is None:
                raise OSError("the log is closed")
            os.write(self._fd, line)
        except OSError as err:
            log.error("cannot append to metrics log %s: %s", self.path, err)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Never through a link: a planted metrics/qpu.jsonl -> victim's file would be appended to.
        return open_nofollow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.mode)

    def events(self, kind: str | None = None) -> list[dict]:
        return list(read_events(self.path, kind))


def read_events(path: Path | str, kind: str | None = None) -> Iterator[dict]:
    """The events of ``path`` (none if it is missing), read without following a link."""
    try:
        _, events = read_owned_events(path)
    except FileNotFoundError:
        return
    for event in events:
        if kind is None or event.get("kind") == kind:
            yield event


def read_owned_events(path: Path | str) -> tuple[int, list[dict]]:
    """(uid owning the file, its events), opened without following a link: who wrote a log is who owns it."""
    fd = open_nofollow(path, os.O_RDONLY)
    with os.fdopen(fd, encoding="utf-8") as lines:
        owner = os.fstat(fd).st_uid
        return owner, [json.loads(line) for line in lines if line.strip()]
