"""Where the charge comes from (``--charge``), then the table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from hcqw.usage.logs import SERVICE_ACCOUNTS, read_logs
from hcqw.usage.period import Period, UsageError
from hcqw.usage.sacct import QPU_PARTITIONS, accounting_works, slurm_charges
from hcqw.usage.table import GROUPS, UsageTable, usage_table


def collect(logs: Sequence[Path | str], period: Period, charge: str = "auto", by: tuple[str, ...] = GROUPS,
            env: Mapping[str, str] | None = None, partitions: Sequence[str] = QPU_PARTITIONS,
            service_accounts: Sequence[str] = SERVICE_ACCOUNTS) -> UsageTable:
    """The usage table of ``logs`` (execs, and holds for ``charge='hold'``) over ``period``.

    ``charge``: ``sacct``, ``hold``, or ``auto`` (sacct when SLURM accounting answers, else hold).
    ``env``: the SLURM clients' environment (e.g. a lab's ``SLURM_CONF``); default ours.
    ``partitions``: where sacct looks for gres/qpu allocations (empty: every partition).
    ``service_accounts``: whose logs are believed about an event's user (``hcqw.usage.logs``).
    """
    if charge not in ("auto", "sacct", "hold"):
        raise UsageError(f"charge source {charge!r}: choose auto, sacct or hold")
    if charge == "auto":
        charge = "sacct" if accounting_works(env) else "hold"
    if charge == "hold" and not logs:
        raise UsageError("no SLURM accounting here (sacct does not answer) and no metrics logs given: give run "
                         "directories or QPU service logs, or run where sacct works")
    holds, busy = read_logs(logs, service_accounts) if logs else ([], None)
    charges = slurm_charges(period, env, partitions) if charge == "sacct" else holds
    return usage_table(charges, busy, period, charge, by)
