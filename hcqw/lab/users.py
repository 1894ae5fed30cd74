"""The lab's Unix accounts: two ordinary users and the service account of the resident QPU services.

The accounts are machine-wide (``/etc/passwd`` is shared by every lab on the
machine); each lab gives every user a home of their own under its root
(``<root>/home/<user>``, mode 0700) and sets ``HOME`` explicitly whenever it
runs something as them (:func:`user_env`). A user's passwd home points at the
home of the lab that last found it missing, so ``~user`` resolves too.
"""

from __future__ import annotations

import grp
import logging
import pwd
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from hcqw.lab import host
from hcqw.lab.errors import LabError

log = logging.getLogger(__name__)

USERS: tuple[str, ...] = ("hcqw-alice", "hcqw-bob")
#: Runs the resident QPU services: not root, not a user who submits jobs.
SERVICE_ACCOUNT = "hcqw-qpu"
#: Reads the resident services' logs (0640), which name every user's workflows and sessions; the
#: service account is a member, so it can give its log to the group (``--log-group``).
ADMIN_GROUP = "hcqw-admin"
#: New files of lab users are private unless they say otherwise (homes are 0700 as well).
USER_UMASK = 0o077
LANG = "C.UTF-8"


def ensure_accounts(home: Path) -> None:
    """Create the lab users (homes under ``home``) and the service account if missing."""
    for user in USERS:
        user_home = home / user
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            _create(user, ["--user-group", "--no-create-home", "--home-dir", str(user_home), "--shell", "/bin/bash"])
            continue
        if not Path(entry.pw_dir).is_dir():
            _run(["usermod", "--home", str(user_home), user], f"set the home of {user}")
    try:
        pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        _create(SERVICE_ACCOUNT, ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                                  "--shell", "/usr/sbin/nologin"])
    try:
        members = grp.getgrnam(ADMIN_GROUP).gr_mem
    except KeyError:
        log.warning("creating group %s", ADMIN_GROUP)
        result = subprocess.run(["groupadd", "--system", ADMIN_GROUP], capture_output=True, text=True, check=False)
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise LabError(f"could not create group {ADMIN_GROUP}: {result.stderr.strip()}")
        members = []
    if SERVICE_ACCOUNT not in members:
        _run(["usermod", "--append", "--groups", ADMIN_GROUP, SERVICE_ACCOUNT], f"add {SERVICE_ACCOUNT} to {ADMIN_GROUP}")


def admin_gid() -> int:
    """The gid of ``ADMIN_GROUP`` (made by ``ensure_accounts``)."""
    return grp.getgrnam(ADMIN_GROUP).gr_gid


def _create(user: str, options: list[str]) -> None:
    log.warning("creating Unix account %s", user)
    result = subprocess.run(["useradd", *options, user], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        try:
            pwd.getpwnam(user)  # another lab created it at the same moment
        except KeyError:
            raise LabError(f"could not create Unix account {user}: `useradd` exit {result.returncode}: "
                           f"{result.stderr.strip()}") from None


def ensure_homes(home: Path) -> None:
    """``home`` (0755, root's) with one directory per user, owned by them, mode 0700 (no link followed)."""
    host.ensure_dir(home, 0o755)
    for user in USERS:
        entry = pwd.getpwnam(user)
        host.ensure_dir(home / user, 0o700, entry.pw_uid, entry.pw_gid)


def ensure_owned_dir(path: Path, user: str, mode: int) -> None:
    """``path`` exists, belongs to ``user`` and has ``mode`` (its parent must exist; no link followed)."""
    entry = pwd.getpwnam(user)
    host.ensure_dir(path, mode, entry.pw_uid, entry.pw_gid)


def ids(user: str) -> tuple[int, int]:
    """(uid, gid) of ``user``."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise LabError(f"no such user {user!r}; the lab's users are {', '.join(USERS)} (created by `hcqw lab up`)")
    return entry.pw_uid, entry.pw_gid


def user_env(user: str, home: Path, base: Mapping[str, str]) -> dict[str, str]:
    """A clean login-like environment for ``user``: identity, home, ``LANG`` and ``base`` (PATH, SLURM_CONF...)."""
    return {"HOME": str(home), "USER": user, "LOGNAME": user, "LANG": LANG, **base}


def as_user(user: str, argv: list[str]) -> list[str]:
    """``argv`` run as ``user`` (runuser, with its PAM session) in exactly the environment runuser is given.

    ``-m`` keeps runuser from resetting HOME to the passwd entry's; the environment travels
    through ``execve``, not the command line, so nothing in it shows in a process list."""
    ids(user)
    return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", user, "-m", "--", *argv]


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"could not {what}: `{' '.join(argv)}` exit {result.returncode}: {result.stderr.strip()}")
