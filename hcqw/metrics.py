"""The QPU timeline: one JSON object per line, appended by every process that uses a device.

Two kinds of interval are recorded, because their difference is what splitting buys:

- ``hold``: the device was allocated to a workflow node (from acquire to release);
- ``exec``: the device was executing a batch of that node's work items.

Fields: kind, workflow, node, device, user, start, end (Unix seconds), and for ``exec``
also qubits, shots, items.
"""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path
from typing import Iterator


class MetricsLog:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    def record(self, kind: str, **fields) -> None:
        """Append one event. A single ``write`` on an ``O_APPEND`` descriptor keeps lines whole across processes."""
        event = {"kind": kind, "user": _user(), **fields}
        line = (json.dumps(event, sort_keys=True) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def events(self, kind: str | None = None) -> list[dict]:
        return list(read_events(self.path, kind))


def read_events(path: Path | str, kind: str | None = None) -> Iterator[dict]:
    path = Path(path)
    if not path.exists():
        return
    with path.open() as lines:
        for line in lines:
            if line.strip():
                event = json.loads(line)
                if kind is None or event.get("kind") == kind:
                    yield event


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
