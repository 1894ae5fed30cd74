"""Starting and stopping the lab's daemons, by PID file only.

Every daemon is started in the foreground (``-D``/``-F``) as a child in its own
session, and hcqw writes its PID file itself as ``"<pid> <starttime>"``. The
start time (field 22 of /proc/PID/stat) guards against PID reuse: a PID file
whose process has since died and whose PID now belongs to someone else is
treated as stale, so ``down()`` can never signal a process it did not start.

Liveness is read from /proc/PID/stat rather than ``kill -0``: on these VMs
PID 1 reaps orphans slowly, so a dead daemon lingers as a zombie for a while
and ``kill -0`` still succeeds on it.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hcqw.trust import open_nofollow, write_nofollow

log = logging.getLogger(__name__)


@dataclass
class DaemonSpec:
    """One process of a lab cluster: how to start it and where it reports."""

    name: str  # also the PID file's stem: run/<name>.pid
    argv: list[str]
    log_file: Path  # what to tell the user to read when it fails
    out_file: Path  # where its stdout/stderr go (may equal log_file)
    port: int | None = None  # checked to be free before starting (daemons of the submit host only)
    extra_env: dict[str, str] = field(default_factory=dict)
    host: str = "submit"  # the lab host (network namespace) it runs on
    user: str | None = None  # None: root
    env: dict[str, str] | None = None  # the whole environment, instead of the lab's base environment + extra_env


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/PID/stat that matter here."""

    state: str  # R, S, D, Z, X, ...
    start_time: int  # clock ticks since boot

    @property
    def alive(self) -> bool:
        return self.state not in ("Z", "X", "x")


def proc_stat(pid: int) -> ProcStat | None:
    """Read /proc/PID/stat, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as err:
        if err.errno in (errno.ESRCH, errno.ENOENT):
            return None
        raise
    # The command name (field 2) is in parentheses and may contain spaces or ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(state=fields[0], start_time=int(fields[19]))


@dataclass(frozen=True)
class PidRecord:
    """Contents of a PID file written by :func:`spawn`."""

    pid: int
    start_time: int

    def is_running(self) -> bool:
        """True if this very process (same PID and start time) is alive and not a zombie."""
        stat = proc_stat(self.pid)
        return stat is not None and stat.alive and stat.start_time == self.start_time


def read_pid_file(path: Path) -> PidRecord | None:
    """The record in ``path``, or None if it is missing or malformed."""
    try:
        parts = path.read_text().split()
        return PidRecord(int(parts[0]), int(parts[1]))
    except (FileNotFoundError, IndexError, ValueError):
        return None


def running_pid(path: Path) -> int | None:
    """PID of the live process recorded in ``path``, else None."""
    record = read_pid_file(path)
    return record.pid if record is not None and record.is_running() else None


def spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    pid_file: Path,
    log_file: Path,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached (own session, stdin closed, output to ``log_file``) and record its PID.

    The child survives the Python process that started it (``hcqw lab up``
    returns while the cluster keeps running); ``down()`` later finds it by
    ``pid_file``.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    # Never through a link (root writes here): see hcqw.lab.host.
    with os.fdopen(open_nofollow(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), "ab") as out:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    stat = proc_stat(proc.pid)
    start_time = stat.start_time if stat is not None else 0
    tmp = pid_file.with_suffix(".tmp")
    write_nofollow(tmp, f"{proc.pid} {start_time}\n".encode(), 0o644)
    tmp.replace(pid_file)
    # Popen objects that are dropped while the child runs are reaped by
    # subprocess' internal bookkeeping; we also reap explicitly in stop().
    log.debug("started %s (pid %d): %s", name, proc.pid, " ".join(argv))
    return proc.pid


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child (else PID 1 does it, eventually)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(name: str, pid_file: Path, timeout: float = 10.0) -> bool:
    """Stop the process recorded in ``pid_file``: SIGTERM, then SIGKILL after ``timeout`` s.

    Returns True if a live process was stopped. Stale or missing PID files are
    removed silently; a PID whose start time does not match is never signalled.
    """
    return bool(stop_all({name: pid_file}, timeout))


def stop_all(pid_files: Mapping[str, Path], timeout: float = 10.0) -> list[str]:
    """:func:`stop` several processes at once (all signalled first, then waited for); return those stopped.

    Raises OSError naming the first process that survived SIGKILL (its PID file is kept for a retry).
    """
    records = {}
    for name, pid_file in pid_files.items():
        record = read_pid_file(pid_file)
        if record is None or not record.is_running():
            pid_file.unlink(missing_ok=True)
            continue
        log.debug("stopping %s (pid %d)", name, record.pid)
        _signal(record.pid, signal.SIGTERM)
        records[name] = record
    deadline = time.monotonic() + timeout
    for name, record in records.items():
        if not _wait_dead(record, max(0.0, deadline - time.monotonic())):
            log.warning("%s (pid %d) ignored SIGTERM for %.0f s; sending SIGKILL", name, record.pid, timeout)
            _signal(record.pid, signal.SIGKILL)
            if not _wait_dead(record, 5.0):
                raise OSError(f"{name} (pid {record.pid}) survived SIGKILL")
        pid_files[name].unlink(missing_ok=True)
    return list(records)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_dead(record: PidRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(record.pid)
        if not record.is_running():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def tail(path: Path, lines: int = 8) -> str:
    """The last ``lines`` lines of a log file, for error messages ('' if unreadable)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 8192))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
