"""The reporting period: ``--since``/``--until`` as Unix seconds, and cutting intervals to it.

Accepted times: ``now``, ``today`` (local midnight), a relative ``-<number><unit>`` back from
now (units ``s``, ``m``, ``h``, ``d``, ``w``: ``-90m``, ``-1d``; the '-' may be left out, so
``--since 1d`` works where a shell user would otherwise need ``--since=-1d``), or an ISO 8601 date or date
and time (``2026-11-30``, ``2026-11-30T12:00``); without a UTC offset a time is local, as
SLURM prints and reads it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

from hcqw.errors import HcqwError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)([smhdw])$")


class UsageError(HcqwError):
    """``hcqw usage`` cannot report: bad arguments or no usable source."""


def parse_when(text: str, now: float | None = None) -> float:
    """Unix seconds of one ``--since``/``--until`` value (see the module docstring)."""
    now = time.time() if now is None else now
    value = text.strip()
    if value == "now":
        return now
    if value == "today":
        return datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    relative = _RELATIVE.match(value)
    if relative:
        return now - float(relative.group(1)) * _UNITS[relative.group(2)]
    try:
        return datetime.fromisoformat(value).timestamp()  # naive: local time
    except ValueError:
        raise UsageError(f"time {text!r} not understood: give now, today, [-]<N>{{s,m,h,d,w}} back from now (e.g. 1d) "
                         "or an ISO date/time such as 2026-11-30 or 2026-11-30T12:00") from None


@dataclass(frozen=True)
class Period:
    """``[since, until]`` in Unix seconds; None leaves that side open."""

    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise UsageError(f"--until ({_local(self.until)}) is before --since ({_local(self.since)})")

    def overlap(self, start: float, end: float) -> float:
        """Seconds of ``[start, end]`` inside the period."""
        lo = start if self.since is None else max(start, self.since)
        hi = end if self.until is None else min(end, self.until)
        return max(0.0, hi - lo)

    def touches(self, start: float, end: float) -> bool:
        """Whether ``[start, end]`` meets the period at all; a zero-length interval inside it does (SLURM
        records whole seconds, so a sub-second job may start and end in the same second)."""
        return (self.since is None or end >= self.since) and (self.until is None or start <= self.until)

    def describe(self) -> str:
        since = "the first record" if self.since is None else _local(self.since)
        until = "now" if self.until is None else _local(self.until)
        return f"{since} .. {until}"

    def to_dict(self) -> dict:
        return {"since": self.since, "until": self.until}


def _local(when: float) -> str:
    return datetime.fromtimestamp(when).isoformat(sep=" ", timespec="seconds")
