"""Host preparation for the lab cluster: key files, the slurm user, free ports, path permissions.

Root never follows a path a user controls. The lab root (and the site tree) must be a directory
root owns and no one else may write, below directories that are root's too (a sticky ``/tmp``
above it is fine): :func:`secure_root` refuses anything else, for instance a ``/tmp/hcqw-lab``
another user created first. Below it, directories and files are made with no-follow opens and
changed through their descriptors (``fchown``/``fchmod``), so a link planted where a directory or
key is expected is refused instead of followed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pwd
import secrets
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

from hcqw.lab.errors import LabError
from hcqw.trust import UntrustedPath, open_nofollow, untrusted_reason

log = logging.getLogger(__name__)


def secure_root(root: Path, what: str = "lab directory") -> None:
    """Create ``root`` (root's, 0755) if missing, then refuse it unless root owns it and every directory
    above it, and no one else may write any of them (a sticky ancestor such as /tmp excepted)."""
    root = Path(os.path.abspath(root))
    missing = [d for d in (root, *root.parents) if not os.path.lexists(d)]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o755)
    reason = untrusted_reason(root, uid=0)
    if reason:
        raise LabError(f"{what} {root} is not safe for root to use: {reason}. Root writes keys, configuration and "
                       f"users' homes there and would follow links another user planted; choose a directory that "
                       f"does not exist yet (hcqw creates it) or one root owns and only root may write (--dir)")


def ensure_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    """``path`` is a directory (made if missing, never through a link) owned by uid:gid with ``mode``."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        raise LabError(f"{path} is not a directory ({err.strerror}): a link or file where the lab expects a "
                       f"directory is not followed; remove it and retry") from None
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def write_file(path: Path, text: str | bytes, mode: int) -> None:
    """Write ``path`` (never through a link), mode ``mode``, owned by whoever it was (root if new)."""
    fd = _open_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        data = text.encode() if isinstance(text, str) else text
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def ensure_file(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    """``path`` exists (created empty if missing, never through a link), owned by uid:gid with ``mode``."""
    fd = _open_file(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _open_file(path: Path, flags: int, mode: int = 0o600) -> int:
    try:
        return open_nofollow(path, flags, mode)
    except UntrustedPath as err:
        raise LabError(str(err)) from None


def write_secret(path: Path, nbytes: int) -> None:
    """Create a random key file once (0600); an existing key is kept so tokens survive restarts."""
    fd = _open_file(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != 0:
            raise LabError(f"key file {path} is not a regular file of root's; remove it and retry")
        os.fchmod(fd, 0o600)
        if info.st_size < nbytes:
            os.ftruncate(fd, 0)
            os.pwrite(fd, secrets.token_bytes(nbytes), 0)
    finally:
        os.close(fd)


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
    """Hold an exclusive lock on ``path`` (created 0600 if missing, never through a link) across processes."""
    fd = _open_file(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
