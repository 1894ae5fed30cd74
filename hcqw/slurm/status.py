"""Rate-limited job status for many workflow nodes at once.

One :class:`StatusPoller` per backend. Each refresh costs one SLURM call for
all tracked jobs (never one call per job: a workflow may track hundreds of
nodes and slurmctld is shared), refreshes are at least ``min_interval``
apart, and a job is never queried again once its merged state is final.

Where the records come from (:class:`CliStatusSource`): ``scontrol -o show
job`` first, then ``sacct`` for the jobs the controller has already
forgotten (finished more than MinJobAge seconds ago) -- if accounting really
works, which is decided once by running sacct: without slurmdbd it exits 1
with "accounting storage is disabled" although the binary exists.

Why the controller first: measured on Slurm 22.05, slurmdbd lags a few
seconds behind, and during that time ``sacct -X`` shows a just-finished
hetjob as one plain job named "allocation" without its components. A
verdict taken from that row would be final (and cached) yet lack the qpu
component's release and timestamps.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from hcqw.slurm.commands import command_env, run_slurm
from hcqw.slurm.errors import SlurmError
from hcqw.slurm.parsing import SACCT_FIELDS, group_by_leader, parse_sacct, parse_scontrol
from hcqw.slurm.states import ComponentInfo, NodeState, Phase, merge_components
from hcqw.paths import state_dir
from hcqw.trust import PRIVATE_DIR_FIX, make_private_dir, open_nofollow, read_own_file, write_nofollow

log = logging.getLogger(__name__)

#: Takes leader job ids, returns the records of all their components.
QueryFn = Callable[[Sequence[str]], list[ComponentInfo]]


def leader_of(job_id: str) -> str:
    """``'123+1'`` -> ``'123'``: status is always kept per leader."""
    return str(job_id).split("+", 1)[0]


class CliStatusSource:
    """Query job records with the SLURM command-line tools (sacct or scontrol)."""

    def __init__(self, env: Mapping[str, str] | None = None, use_sacct: bool | None = None):
        """``use_sacct``: None detects once on first use; True/False forces a source."""
        self._env = command_env(env)
        self._use_sacct = use_sacct

    @property
    def uses_sacct(self) -> bool:
        if self._use_sacct is None:
            self._use_sacct = self._detect_accounting()
        return self._use_sacct

    def _detect_accounting(self) -> bool:
        proc = run_slurm(["sacct", "-X", "-n", "-P", "-o", "JobID", "-S", "now"], env=self._env, check=False)
        if proc.returncode == 0:
            log.info("job status from sacct (accounting storage works)")
            return True
        log.info("job status from scontrol: sacct unusable (%s)", proc.stderr.strip() or f"exit {proc.returncode}")
        return False

    def __call__(self, leader_ids: Sequence[str]) -> list[ComponentInfo]:
        """Records of every component of the given leaders that SLURM still knows."""
        wanted = set(leader_ids)
        records = self.query_scontrol(wanted)
        missing = wanted - {r.leader_id for r in records}
        if missing and self.uses_sacct:
            records += self.query_sacct(missing)
        return records

    def query_scontrol(self, leaders: Iterable[str]) -> list[ComponentInfo]:
        """The controller's records: one call for all its jobs, filtered here
        (cheaper for slurmctld than one ``show job <id>`` per job)."""
        wanted = set(leaders)
        return [r for r in parse_scontrol(self.scontrol_text()) if r.leader_id in wanted]

    def scontrol_text(self) -> str:
        """What ``scontrol -o show job`` prints: every job the controller knows, one line each."""
        proc = run_slurm(["scontrol", "-o", "show", "job"], env=self._env, check=False)
        if proc.returncode != 0 and "No jobs in the system" not in proc.stdout + proc.stderr:
            raise SlurmError(f"`scontrol -o show job` failed: {proc.stderr.strip()}")
        return proc.stdout

    def query_sacct(self, leaders: Iterable[str]) -> list[ComponentInfo]:
        """The accounting records (one ``sacct -X`` call), newest job per id."""
        wanted = set(leaders)
        proc = run_slurm(
            ["sacct", "-X", "-n", "--parsable2", "--format=" + ",".join(SACCT_FIELDS), "-j", ",".join(sorted(wanted))],
            env=self._env,
        )
        return _newest_per_leader(r for r in parse_sacct(proc.stdout) if r.leader_id in wanted)


def _newest_per_leader(records: Iterable[ComponentInfo]) -> list[ComponentInfo]:
    """Drop older jobs that had the same id: the accounting database outlives
    slurmctld's job-id counter (a cluster reset or id wrap-around), and
    ``sacct -j`` returns every job ever recorded under that id."""
    groups = group_by_leader(records)
    kept: list[ComponentInfo] = []
    for recs in groups.values():
        newest = max((r.submit_time for r in recs if r.submit_time), default=None)
        kept += [r for r in recs if r.submit_time == newest]
    return kept


class StatusPoller:
    """Cache of merged :class:`NodeState` per leader id, refreshed by one query at a time."""

    def __init__(self, query: QueryFn, min_interval: float = 2.0):
        self._query = query
        self.min_interval = min_interval
        self._states: dict[str, NodeState] = {}
        self._tracked: set[str] = set()
        self._last_refresh = float("-inf")
        self._lock = threading.Lock()

    def track(self, job_id: str) -> None:
        """Follow a job from now on (called by submit)."""
        with self._lock:
            self._tracked.add(leader_of(job_id))

    def status(self, job_ids: Iterable[str], *, force: bool = False) -> dict[str, NodeState]:
        """Merged state per requested job id (keyed as given; component ids map to their leader).

        Queries SLURM only if a requested job is not final and the last query
        is older than ``min_interval`` (or ``force``); one query covers every
        tracked unfinished job, so polling N jobs one by one costs one call.
        """
        ids = [str(j) for j in job_ids]
        leaders = {leader_of(j) for j in ids}
        with self._lock:
            self._tracked |= leaders
            pending = {j for j in self._tracked if not (j in self._states and self._states[j].done)}
            stale = time.monotonic() - self._last_refresh >= self.min_interval
            needs = (leaders & pending) and (force or stale or not leaders <= self._states.keys())
            if needs:
                self._refresh(pending, force)
            return {j: self._states.get(leader_of(j), NodeState(leader_of(j), Phase.UNKNOWN)) for j in ids}

    def _refresh(self, leaders: set[str], force: bool = False) -> None:
        started = time.monotonic()
        # A source shared between processes answers from a snapshot unless told to ask now.
        query = getattr(self._query, "fresh", self._query) if force else self._query
        groups = group_by_leader(query(sorted(leaders, key=int)))
        self._last_refresh = time.monotonic()
        for leader in leaders:
            new = merge_components(leader, groups.get(leader, []))
            old = self._states.get(leader)
            if new.phase is Phase.UNKNOWN and old is not None and not new.components:
                # Gone from the controller (purged after MinJobAge, no sacct): keep what we saw.
                continue
            if old is None or old.phase is not new.phase:
                log.debug("job %s: %s", leader, new.phase.value)
            self._states[leader] = new
        log.debug("status refresh of %d jobs took %.3f s", len(leaders), self._last_refresh - started)


#: Seconds a shared status snapshot stays fresh: every follower of one user on one host reads it, and
#: one of them (whoever takes the lock) asks slurmctld again when it is older.
SHARED_MAX_AGE_S = 2.0
#: Bytes of a snapshot read back (a user's jobs as ``scontrol -o show job`` lines: ~1 kB each).
_SNAPSHOT_LIMIT = 64 << 20


def shared_status_dir() -> Path:
    """Where a user's status snapshots live: ``$XDG_RUNTIME_DIR/hcqw`` (host-local, the user's own), else
    the per-user state directory (``hcqw.paths.state_dir``)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "hcqw" if runtime else state_dir() / "status"


class SharedStatusSource:
    """One controller query per interval for all of a user's followers on a host (issue 22).

    Each follower process used to ask slurmctld for its own jobs every poll interval: a thousand
    workflows were five hundred status RPCs a second. Here the answer to ``scontrol -o show job``
    is written to a snapshot file in the user's private directory; a follower reads it while it is
    younger than ``max_age``, and the one that finds it older takes an exclusive lock, asks again
    and replaces it (the others wait on the lock, then read the new one). The directory and files
    are the user's alone (checked); nothing of another user's is read. Jobs the controller no
    longer knows go to ``sacct`` per process, as before (rare: finished and purged).
    """

    def __init__(self, cli: CliStatusSource, directory: Path | None = None, max_age: float = SHARED_MAX_AGE_S,
                 cluster_key: str = ""):
        self._cli = cli
        self.max_age = max_age
        self._directory = directory
        key = hashlib.sha256(cluster_key.encode()).hexdigest()[:12]
        self._name = f"jobs-{socket.gethostname()}-{key}"
        self.queries = 0  # controller queries this process made (for benchmarks and tests)
        self._absent: set[str] = set()  # jobs missing from a snapshot taken after they were asked for

    @property
    def directory(self) -> Path:
        directory = self._directory or shared_status_dir()
        make_private_dir(directory, "status directory", PRIVATE_DIR_FIX)
        return directory

    def __call__(self, leader_ids: Sequence[str]) -> list[ComponentInfo]:
        return self._records(leader_ids, fresh=False)

    def fresh(self, leader_ids: Sequence[str]) -> list[ComponentInfo]:
        """As a call, but from a snapshot taken now (``StatusPoller.status(force=True)``)."""
        return self._records(leader_ids, fresh=True)

    def _records(self, leader_ids: Sequence[str], fresh: bool) -> list[ComponentInfo]:
        wanted = set(leader_ids)
        records = [r for r in parse_scontrol(self._snapshot(fresh)) if r.leader_id in wanted]
        missing = wanted - {r.leader_id for r in records}
        if missing - self._absent and not fresh:
            # A job submitted after the snapshot was taken is not in it yet: ask once more, now. A job
            # missing from that one too is gone from the controller (purged), and never asks again.
            records = [r for r in parse_scontrol(self._snapshot(True)) if r.leader_id in wanted]
            missing = wanted - {r.leader_id for r in records}
            self._absent |= missing
        if missing and self._cli.uses_sacct:
            records += self._cli.query_sacct(missing)
        return records

    def _snapshot(self, fresh: bool) -> str:
        directory = self.directory
        path = directory / f"{self._name}.txt"
        asked = time.time()
        if not fresh and (text := self._read_if_fresh(path, asked - self.max_age)) is not None:
            return text
        fd = open_nofollow(directory / f"{self._name}.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Whoever held the lock may have just refreshed it: taken after we asked, it is fresh enough.
            text = self._read_if_fresh(path, asked if fresh else time.time() - self.max_age)
            if text is None:
                text = self._cli.scontrol_text()
                self.queries += 1
                temporary = directory / f"{self._name}.{os.getpid()}.tmp"
                write_nofollow(temporary, text.encode(), mode=0o600)
                os.replace(temporary, path)
            return text
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def _read_if_fresh(path: Path, since: float) -> str | None:
        try:
            if os.lstat(path).st_mtime < since:
                return None
            return read_own_file(path, _SNAPSHOT_LIMIT)
        except FileNotFoundError:
            return None
