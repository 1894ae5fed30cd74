"""The two kinds of interval usage is computed from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Charge:
    """Device time charged to someone: a job component holding ``gres/qpu`` (SLURM) or a ``hold`` (logs).

    ``devices`` is the gres/qpu count: a charge costs ``devices`` x its length.
    """

    user: str | None
    account: str | None
    workflow: str | None
    node: str | None
    start: float
    end: float
    devices: int = 1
    job_id: str | None = None  # SLURM's id ("123+1"); None for a hold


@dataclass(frozen=True)
class Busy:
    """One batch the device executed (an ``exec`` event)."""

    user: str | None
    workflow: str | None
    node: str | None
    start: float
    end: float
    device: str = ""
