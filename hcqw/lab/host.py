"""Host preparation for the lab cluster: key files, the slurm user, free ports, path permissions."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from hcqw.lab.errors import LabError

log = logging.getLogger(__name__)


def write_secret(path: Path, nbytes: int) -> None:
    """Create a random key file once (0600); an existing key is kept so tokens survive restarts."""
    if path.exists() and path.stat().st_size >= nbytes:
        path.chmod(0o600)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, secrets.token_bytes(nbytes))
    finally:
        os.close(fd)
    path.chmod(0o600)


def port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (a listener on 0.0.0.0 counts as busy too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ensure_user(user: str) -> None:
    """Create system user ``user`` if missing (slurmrestd refuses root and drops to it; Debian's packages
    normally create it already)."""
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    log.warning("creating system user %r for slurmrestd", user)
    result = subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", user],
        capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise LabError(f"could not create user {user!r} for slurmrestd: {result.stderr.strip()}; "
                       f"create it yourself (useradd --system {user})")


def check_reachable_by(user: str, path: Path) -> None:
    """``user`` (not root) must be able to reach ``path``: every parent directory needs o+x."""
    for parent in path.parents:
        if not parent.stat().st_mode & 0o001:
            raise LabError(f"{user} (and the lab's users) cannot reach {path}: directory {parent} is not "
                           f"world-searchable. Choose a lab directory under /tmp (--dir) or `chmod o+x {parent}`")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) across processes."""
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
