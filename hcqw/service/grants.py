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
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from hcqw.errors import DeviceError

_REREAD_S = 1.0  # re-read at least this often even if the directory's mtime says nothing changed


def _check_directory(path: Path) -> os.stat_result:
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise DeviceError(f"--grants {path}: not a directory (a link is refused)")
    if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise DeviceError(f"--grants {path}: must be root's and writable by root only (it is uid {info.st_uid}, "
                          f"mode {stat.S_IMODE(info.st_mode):o}); SLURM's Prolog (root) writes the grants there")
    return info


class Grants:
    """The uids holding the device on this host, from the grant directory (see the module docstring)."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        _check_directory(self.directory)
        self._mtime = -1
        self._read_at = 0.0
        self._jobs: dict[str, int] = {}  # job id -> uid

    def jobs(self) -> dict[str, int]:
        """job id -> uid of every running allocation of the device here (re-read when it changed)."""
        info = os.stat(self.directory)
        now = time.monotonic()
        if info.st_mtime_ns != self._mtime or now - self._read_at > _REREAD_S:
            self._jobs = self._read()
            self._mtime, self._read_at = info.st_mtime_ns, now
        return self._jobs

    def holds(self, uid: int) -> bool:
        return uid in self.jobs().values()

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
