"""Who holds the QPU now: the grant records SLURM's Prolog/Epilog keep for a qpu host's service.

A resident QPU service (``hcqw device serve --grants DIR``) opens sessions only for a uid that
holds a running allocation of ``gres/qpu`` on its host. SLURM says so: the host's slurmd runs
the Prolog as root when a job starts there, with the job's uid and id from SLURM's own job
credential (``SLURM_JOB_UID``, ``SLURM_JOB_ID``), and it writes ``DIR/<job id>`` holding that
uid; the Epilog removes it when the job (a hetjob's qpu component included) ends. The qpu
partition admits only jobs that ask for ``gres/qpu`` (``job_submit.lua``), so every job on the
host holds the device. (The idea of pam_slurm_adopt: a node trusts what its slurmd recorded.)

Only root can write there: the directory must be root's and writable by nobody else, and a
record counts only if it is a root-owned regular file (opened without following links). The
check costs a ``stat`` of the directory per open; the directory is re-read only when it changed
(its mtime) or a second went by: a few microseconds, measured in bench/grants.py.

A record counts only while its job still runs a step on this host. An Epilog that never ran (the
host's slurmd and the job's slurmstepd killed at once, as in a crash: tests/service/test_allocation_check.py)
leaves its record behind, and that record alone would let its user in for good. So the service asks the host
itself, as Slurm's own tools do (``scontrol listpids``, pam_slurm_adopt): every running step has a
slurmstepd listening on ``<SlurmdSpoolDir>/<node>_<job>.<step>``, root's socket, and a dead one's
socket refuses connections. One connect costs ~50 microseconds; a live answer is kept for a second,
a dead one is asked again at the next open (the job's first step may start just after its Prolog).
With ``PrologFlags=Contain`` the job's extern step holds a socket for the whole allocation;
without it, for as long as a step of the job runs on the host (the gateway's, or a batch script's).
"""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path

from hcqw.errors import DeviceError

_REREAD_S = 1.0  # re-read at least this often even if the directory's mtime says nothing changed
LIVE_ANSWER_KEPT_S = 1.0  # how long a job counts as running a step here after its step last answered


def _check_directory(path: Path, option: str, writer: str) -> os.stat_result:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise DeviceError(f"{option} {path}: no such directory; {writer}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise DeviceError(f"{option} {path}: not a directory (a link is refused)")
    if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DeviceError(f"{option} {path}: must be root's and writable by root only (it is uid {info.st_uid}, "
                          f"mode {stat.S_IMODE(info.st_mode):o}); {writer}")
    return info


GRANTS_WRITER = "SLURM's Prolog (root) writes the grants there"
SPOOL_WRITER = "give this host's SlurmdSpoolDir, %n expanded (scontrol show config | grep SlurmdSpoolDir)"


class Grants:
    """The uids holding the device on this host, from the grant directory (see the module docstring)."""

    def __init__(self, directory: Path | str, spool: Path | str):
        self.directory = Path(directory)
        self.spool = Path(spool)
        _check_directory(self.directory, "--grants", GRANTS_WRITER)
        _check_directory(self.spool, "--slurmd-spool", SPOOL_WRITER)
        self._mtime = -1
        self._read_at = 0.0
        self._records: dict[str, int] = {}  # job id -> uid, as the Prolog wrote them
        self._alive: dict[str, float] = {}  # job id -> when a step of it last answered

    def jobs(self) -> dict[str, int]:
        """job id -> uid of every running allocation of the device here: a record whose job runs a step here."""
        info = os.stat(self.directory)
        now = time.monotonic()
        if info.st_mtime_ns != self._mtime or now - self._read_at > _REREAD_S:
            self._records = self._read()
            self._mtime, self._read_at = info.st_mtime_ns, now
        self._alive = {job: at for job, at in self._alive.items()
                       if job in self._records and now - at <= LIVE_ANSWER_KEPT_S}
        unknown = [job for job in self._records if job not in self._alive]
        if unknown:
            for job in self._running(unknown):
                self._alive[job] = now
        return {job: uid for job, uid in self._records.items() if job in self._alive}

    def holds(self, uid: int) -> bool:
        return uid in self.jobs().values()

    def _running(self, jobs: list[str]) -> set[str]:
        """Of ``jobs``, those with a step whose slurmstepd answers on this host's spool."""
        wanted, running = set(jobs), set()
        dirfd = os.open(self.spool, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for name in os.listdir(dirfd):
                job, dot, step = name.rpartition("_")[2].partition(".")
                if not dot or job not in wanted or job in running or not step.isdigit():
                    continue
                try:
                    info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile
                if stat.S_ISSOCK(info.st_mode) and info.st_uid == 0 and _answers(self.spool / name):
                    running.add(job)
        finally:
            os.close(dirfd)
        return running

    def _read(self) -> dict[str, int]:
        jobs: dict[str, int] = {}
        dirfd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            for name in os.listdir(dirfd):
                if not name.isdigit():
                    continue  # the Prolog's temporary files, anything else
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
                except OSError:
                    continue  # removed meanwhile, or a link
                try:
                    info = os.fstat(fd)
                    if not stat.S_ISREG(info.st_mode) or info.st_uid != 0:
                        continue
                    text = os.read(fd, 64).decode("ascii", errors="replace").split()
                finally:
                    os.close(fd)
                if text and text[0].isdigit():
                    jobs[name] = int(text[0])
        finally:
            os.close(dirfd)
        return jobs


def _answers(path: Path) -> bool:
    """Whether a process listens on the Unix socket ``path`` (a killed slurmstepd leaves its socket behind)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
