"""``hcqw lab exec`` runs a user's command in a session of its own (issue 24, finding 8): from root's
terminal (a pty here), a user's process cannot push input into it with TIOCSTI, which it could while
it shared root's session (this machine allows TIOCSTI)."""

from __future__ import annotations

import os
import pty
import select
import sys
import time

import pytest

from hcqw.lab.users import USERS

pytestmark = pytest.mark.slurm
BOB = USERS[1]

INJECT = ("import fcntl, termios\n"
          "try:\n"
          "    fcntl.ioctl(0, termios.TIOCSTI, b'!')\n"
          "    print('INJECTED')\n"
          "except OSError as err:\n"
          "    print('REFUSED', err.errno)\n")


def test_a_lab_users_command_cannot_type_into_roots_terminal(slurm_lab):
    argv = [sys.executable, "-m", "hcqw", "lab", "exec", "--dir", str(slurm_lab.root), "--user", BOB, "--",
            "python", "-c", INJECT]
    pid, master = pty.fork()
    if pid == 0:  # the child: a session leader whose controlling terminal is the pty, as root at a terminal
        os.execv(argv[0], argv)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and b"INJECTED" not in out and b"REFUSED" not in out:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                out += os.read(master, 4096)
            except OSError:
                break
    os.waitpid(pid, 0)
    os.close(master)
    assert b"REFUSED" in out and b"INJECTED" not in out, out.decode(errors="replace")
