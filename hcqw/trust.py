"""What a process may trust on the file system: directories only its own user (and root) control,
and files opened without following a link.

A directory is *private to* a user when it and every directory above it belong to that user or
to root and no one else may write them. Anyone who may write a directory on the path can swap
what is below it (plant a ``hcqw/`` package, a ``gateway.address``, a symlink to a file of the
victim's): so run and work directories, directories modules are imported from, and every path
root writes under are checked whole. One exception, the one every Unix has: a sticky directory
(``/tmp``) above the path, where others may create entries but not rename or remove ours.

Files in such directories are then opened with ``O_NOFOLLOW`` (the last component is not a link
either) and changed through the open descriptor (``fchown``/``fchmod``), never by path.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from hcqw.errors import HcqwError
from hcqw.identity import user_name

#: The write bits of group and others.
SHARED_WRITE = 0o022


class UntrustedPath(HcqwError):
    """A path other users control: a directory they own or may write, or a link where a file must be."""


def untrusted_reason(path: Path | str, uid: int | None = None, owner_only: bool = True) -> str | None:
    """Why ``path`` (a directory) is not private to ``uid`` (default: this process's), or None if it is.

    Checked: ``path`` itself (owned by ``uid``, or by ``uid`` or root unless ``owner_only``) and every
    directory above it (``uid`` or root), none writable by group or others except a sticky ancestor;
    both the path as given and where its links lead.
    """
    uid = os.geteuid() if uid is None else uid
    given = Path(os.path.abspath(path))
    real = Path(os.path.realpath(given))
    for chain in dict.fromkeys((given, real)):
        for index, directory in enumerate((chain, *chain.parents)):
            try:
                info = os.lstat(directory)
            except FileNotFoundError:
                return f"{directory} does not exist"
            owners = (uid,) if index == 0 and owner_only else (uid, 0)
            if info.st_uid not in owners:
                trusted = " or ".join(dict.fromkeys(user_name(o) for o in owners))
                if stat.S_ISLNK(info.st_mode):
                    return f"{directory} is a link made by {user_name(info.st_uid)}, not by {trusted}"
                return f"{directory} belongs to {user_name(info.st_uid)}, not to {trusted}"
            if stat.S_ISLNK(info.st_mode):
                continue  # a trusted user's link: where it leads is the real chain, checked too
            mode = stat.S_IMODE(info.st_mode)
            if mode & SHARED_WRITE and not (index and mode & stat.S_ISVTX):
                return f"{directory} is writable by {'others' if mode & 0o002 else 'its group'} (mode {mode:04o})"
    return None


def require_private(path: Path | str, what: str, fix: str, uid: int | None = None, owner_only: bool = True) -> None:
    """``UntrustedPath`` naming ``what`` (e.g. "run directory"), why, and ``fix`` unless ``path`` is private."""
    reason = untrusted_reason(path, uid, owner_only)
    if reason:
        raise UntrustedPath(f"{what} {path} is not private to {user_name(os.geteuid() if uid is None else uid)}: "
                            f"{reason}, so another user could replace what hcqw reads or writes there. {fix}")


def nearest_existing(path: Path | str) -> Path:
    """``path``, or the nearest directory above it that exists (what a check can see before it is made)."""
    path = Path(os.path.abspath(path))
    return next(p for p in (path, *path.parents) if os.path.lexists(p))


def submitter(path: Path | str) -> int:
    """Whose private ``path`` must be for work submitted from here: this process's user; for root (a
    tool or test preparing a user's jobs), the path's owner, so another user's directory is still refused."""
    return os.geteuid() or os.lstat(path).st_uid


def make_private_dir(path: Path | str, what: str, fix: str, mode: int = 0o700) -> Path:
    """Create ``path`` (and missing parents, ``mode``) if needed, then ``require_private`` it (to its
    ``submitter``)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    require_private(path, what, fix, uid=submitter(path))
    return path


def open_nofollow(path: Path | str, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that refuses a link as the last component (``UntrustedPath``), also on create."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as err:
        if err.errno == errno.ELOOP:  # the name is a symbolic link
            raise UntrustedPath(f"{path} is a symbolic link; hcqw does not follow links there (remove it)") from None
        raise


def write_nofollow(path: Path | str, data: bytes, mode: int = 0o644) -> None:
    """Replace the contents of ``path`` (created with ``mode``; never through a link), mode set through the fd."""
    fd = open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def read_own_file(path: Path | str, limit: int = 1 << 20) -> str:
    """The text of ``path``, a regular file of this process's user, read without following a link
    (``FileNotFoundError`` if missing, ``UntrustedPath`` if it is someone else's or not a file)."""
    fd = open_nofollow(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise UntrustedPath(f"{path} is not a file of {user_name(os.geteuid())}'s (owner "
                                f"{user_name(info.st_uid)}); hcqw does not trust it: remove it")
        return os.read(fd, limit).decode("utf-8", "replace")
    finally:
        os.close(fd)


#: What to do about a run or work directory other users may write (for ``require_private``'s ``fix``).
PRIVATE_DIR_FIX = ("Use a directory only you may write, e.g. `mkdir -m 700 ~/runs` (not /tmp itself, and not a "
                   "directory another user created), or `chmod go-w` it if it is yours")
