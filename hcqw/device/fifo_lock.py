"""A first-come-first-served lock shared by every process on the machine.

Each waiter takes a numbered ticket file and holds an ``flock`` on it for as long as
it waits or holds the device. A waiter blocks on the ``flock`` of the ticket just
before its own, so it wakes the moment its predecessor releases or dies: the kernel
drops a dead process's locks, so a crashed holder never keeps the device. A ticket
whose lock can be taken while its file still exists belongs to a dead process and is
removed by whoever finds it.

The queue serves one Unix user. Files cannot tell who wrote them: in a directory several
users may write, any of them could rewrite the counter to jump the queue, delete or
lock others' tickets, or forge the owners shown; and a sticky directory would keep the
dead tickets of one user from being cleared by another. So a queue directory must belong
to the caller and be writable by nobody else (``FifoLock`` refuses it otherwise, saying
why); several users share one device through a QPU service (``hcqw device serve``,
which knows each client's identity), not through a shared directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from hcqw.errors import DeviceError
from hcqw.identity import user_name
from hcqw.trust import untrusted_reason

_POLL_START = 0.001  # s; first sleep when waiting with a timeout
_POLL_MAX = 0.02  # s; polling cap, bounds the extra wake-up latency under a timeout
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC  # queue files are never reached through a link


@dataclass
class Ticket:
    number: int
    path: Path
    fd: int


def check_private(directory: Path) -> None:
    """Refuse a queue directory another user owns or may write (see the module docstring)."""
    info = os.stat(directory)
    share = ("to share one device between users, run a QPU service (hcqw device serve --address ipc://...) "
             "and point every user's HCQW_DEVICE_ADDRESS at it")
    if info.st_uid != os.geteuid():
        raise DeviceError(
            f"device queue {directory} belongs to {user_name(info.st_uid)}, not to you ({user_name(os.geteuid())}): "
            f"a local device queue serves one user; use a directory of your own (unset HCQW_DEVICE_DIR), or, {share}"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise DeviceError(
            f"device queue {directory} is writable by other users (mode {mode:04o}), who could reorder or block "
            f"the queue; run: chmod 700 {directory}. A local device queue serves one user; {share}"
        )
    # The directories above it too: whoever may write one of them can swap the queue for their own.
    reason = untrusted_reason(directory)
    if reason:
        raise DeviceError(f"device queue {directory} is not private to you: {reason}, so another user could "
                          f"replace it. Use a queue directory on a path only you and root control (unset "
                          f"HCQW_DEVICE_DIR for the default under your home); or, {share}")


class FifoLock:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.tickets = self.directory / "tickets"
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        check_private(self.directory)
        self.tickets.mkdir(exist_ok=True, mode=0o700)
        self._counter = self.directory / "counter"

    def acquire(self, owner: dict, timeout: float | None = None) -> Ticket:
        """Queue behind everyone already waiting; return once first. ``DeviceError`` on timeout."""
        ticket = self._take_ticket(owner)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while (predecessor := self._last_predecessor(ticket.number)) is not None:
                self._wait_for(predecessor, deadline)
        except BaseException:
            self.release(ticket)
            raise
        return ticket

    def release(self, ticket: Ticket) -> None:
        # Unlink before unlocking, so a successor that wakes never mistakes us for a dead holder.
        try:
            ticket.path.unlink()
        except FileNotFoundError:
            pass
        os.close(ticket.fd)

    def holders(self) -> list[dict]:
        """Owners of live tickets in queue order (the first holds the device)."""
        out = []
        for path in self._ticket_paths():
            try:
                out.append(json.loads(path.read_text() or "{}"))
            except (FileNotFoundError, json.JSONDecodeError):
                continue
        return out

    def _take_ticket(self, owner: dict) -> Ticket:
        counter_fd = os.open(self._counter, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
        try:
            fcntl.flock(counter_fd, fcntl.LOCK_EX)
            number = int(os.pread(counter_fd, 32, 0).decode() or "0") + 1
            os.pwrite(counter_fd, f"{number:<20d}".encode(), 0)
            # Lock the ticket under a temporary name and rename it into place, so no
            # scanner can ever see the ticket unlocked and take it for a dead one.
            temp = self.tickets / f".new-{os.getpid()}-{number}"
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | _NOFOLLOW, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), **owner}
            os.write(fd, json.dumps(info).encode())
            path = self.tickets / f"{number:020d}"
            os.rename(temp, path)
            return Ticket(number, path, fd)
        finally:
            os.close(counter_fd)

    def _ticket_paths(self) -> list[Path]:
        return sorted(p for p in self.tickets.iterdir() if not p.name.startswith("."))

    def _last_predecessor(self, number: int) -> Path | None:
        earlier = [p for p in self._ticket_paths() if int(p.name) < number]
        return earlier[-1] if earlier else None

    def _wait_for(self, path: Path, deadline: float | None) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError:
            return  # released between listing and opening
        try:
            if deadline is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                self._flock_until(fd, deadline)
            # We hold the predecessor's lock: it released (file gone) or died (file left). Clear the latter.
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)

    @staticmethod
    def _flock_until(fd: int, deadline: float) -> None:
        pause = _POLL_START
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeviceError("timed out waiting in the device queue; raise the timeout or retry later") from None
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, _POLL_MAX)
