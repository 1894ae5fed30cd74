"""A private munged for tests: its own key (0600) and socket, stopped by PID, like the lab's."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path


class PrivateMunged:
    """``munged -F`` on ``<directory>/munge.socket``; the directory is searchable by every user,
    so other Unix users' clients reach the socket (the key stays 0600, in a 0700 directory).
    munged insists that every directory above the socket be searchable by all: put ``directory``
    outside pytest's (0700) tmp dir, e.g. in a ``tempfile.mkdtemp()`` made 0755."""

    def __init__(self, directory: Path):
        if shutil.which("munged") is None:
            raise RuntimeError("munged is not installed (Debian: apt-get install munge)")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        secret = directory / "secret"
        secret.mkdir(mode=0o700, exist_ok=True)
        key = secret / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o600)
        self.socket = directory / "munge.socket"
        self.log = directory / "munged.log"
        self.proc = subprocess.Popen(
            ["munged", "-F", f"--socket={self.socket}", f"--key-file={key}", f"--pid-file={directory / 'munged.pid'}",
             f"--seed-file={secret / 'munged.seed'}", f"--log-file={self.log}", "--num-threads=4"],
            stdout=subprocess.DEVNULL, stderr=(directory / "munged.err").open("w"))
        deadline = time.monotonic() + 15
        while not self.socket.is_socket():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"munged did not start: {(directory / 'munged.err').read_text()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, 9)
                self.proc.wait(5)
