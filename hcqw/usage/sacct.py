"""SLURM's charge: every job component that was allocated ``gres/qpu``, from ``sacct``.

One ``sacct -a -X`` call over the period and the qpu partitions (so a centre's accounting
database is asked only for what the table needs), parsed by :func:`hcqw.slurm.parsing.parse_sacct`
(the reader the status poller uses). ``AllocTRES`` holds ``gres/qpu=<count>`` only where
slurm.conf says ``AccountingStorageTRES=gres/qpu``; without it SLURM keeps no record of who
held the device, and :func:`slurm_charges` says so.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from hcqw.slurm.commands import command_env, run_slurm
from hcqw.slurm.errors import SlurmError
from hcqw.slurm.parsing import SACCT_FIELDS, gres_count, parse_sacct
from hcqw.slurm.settings import parse_tag
from hcqw.slurm.states import ComponentInfo
from hcqw.slurm.status import CliStatusSource
from hcqw.usage.period import Period, UsageError
from hcqw.usage.records import Charge

log = logging.getLogger(__name__)

#: The GRES that stands for the quantum device (the lab's and the site guide's name).
QPU_GRES = "qpu"
#: The partition of the qpu hosts (the lab's and the site guide's name): only its jobs hold gres/qpu.
QPU_PARTITIONS = ("qpu",)
_EPOCH = "1970-01-01T00:00:00"
DEFAULT_SLURM_CONF = "/etc/slurm/slurm.conf"  # where Debian's SLURM looks without $SLURM_CONF


def accounting_works(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``sacct`` answers here (slurmdbd configured and reachable); False without SLURM at all."""
    env = command_env(env)
    conf = Path(env.get("SLURM_CONF") or DEFAULT_SLURM_CONF)
    if shutil.which("sacct", path=env.get("PATH")) is None or not conf.is_file():
        # Without a slurm.conf, sacct retries reading it for a minute before it fails.
        log.info("no SLURM accounting: %s", "no sacct on PATH" if conf.is_file() else f"no {conf}")
        return False
    try:
        return CliStatusSource(env).uses_sacct
    except SlurmError as err:  # no sacct binary, or no controller configured
        log.info("no SLURM accounting: %s", err)
        return False


def sacct_command(period: Period, partitions: Iterable[str] = QPU_PARTITIONS) -> list[str]:
    """The one sacct call: every user's allocations (``-X``) in the period on ``partitions`` (all
    partitions if empty).

    ``-D``: a requeued job keeps its id, and without it sacct lists only the job's last run, even
    for a period (measured on 22.05: a run requeued after 2 s then vanished from the period's list).
    """
    since = _sacct_time(period.since, math.floor) if period.since is not None else _EPOCH
    until = _sacct_time(period.until, math.ceil) if period.until is not None else "now"
    partitions = list(partitions)
    where = ["-r", ",".join(partitions)] if partitions else []
    return ["sacct", "-a", "-X", "-D", "-n", "--parsable2", "--format=" + ",".join(SACCT_FIELDS), *where, "-S", since,
            "-E", until]


def _sacct_time(when: float, rounding) -> str:
    # sacct reads local time with whole seconds; round outwards so the query covers the period.
    return datetime.fromtimestamp(rounding(when)).isoformat(timespec="seconds")


def charges_from_records(records: Iterable[ComponentInfo], now: float) -> list[Charge]:
    """A :class:`Charge` per started component with ``gres/qpu``; a running one is charged up to ``now``."""
    charges = []
    for record in records:
        devices = gres_count(record.tres, QPU_GRES)
        if devices <= 0 or record.start_time is None:
            continue
        workflow, node = parse_tag(record.comment) or parse_tag(record.name) or (None, None)
        end = record.end_time.timestamp() if record.end_time else now
        charges.append(Charge(record.user, record.account, workflow, node, record.start_time.timestamp(), end,
                              devices, record.job_id))
    return charges


def slurm_charges(period: Period, env: Mapping[str, str] | None = None,
                  partitions: Iterable[str] = QPU_PARTITIONS) -> list[Charge]:
    """SLURM's charges in ``period`` on ``partitions`` (one sacct call)."""
    env = command_env(env)
    now = time.time()
    try:
        proc = run_slurm(sacct_command(period, partitions), env=env)
    except SlurmError as err:
        raise UsageError(f"cannot read SLURM accounting: {err}; without slurmdbd use --charge hold "
                         "(the metrics logs' hold intervals)") from err
    charges = charges_from_records(parse_sacct(proc.stdout), now)
    if not charges and not _tracks_qpu(env):
        log.warning("SLURM does not account gres/%s, so no charge can be found: add "
                    "AccountingStorageTRES=gres/%s to slurm.conf (restart slurmctld)", QPU_GRES, QPU_GRES)
    return charges


def _tracks_qpu(env: Mapping[str, str]) -> bool:
    proc = run_slurm(["sacctmgr", "-n", "-P", "show", "tres", "format=type,name"], env=env, check=False)
    return proc.returncode != 0 or f"gres|{QPU_GRES}" in proc.stdout.split()  # unknown: do not warn
