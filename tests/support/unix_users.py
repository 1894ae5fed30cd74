"""Real Unix users for isolation tests: processes run as another uid with ``runuser``."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
from dataclasses import dataclass
from typing import Sequence

from tests.support import ROOT


@dataclass
class UnixUsers:
    """``names`` exist on this host; ``python`` is an interpreter (with pyzmq, numpy, cirq) every
    one of them may execute; hcqw comes from this checkout (``PYTHONPATH``)."""

    names: tuple[str, ...]
    python: str

    def uid(self, name: str) -> int:
        return pwd.getpwnam(name).pw_uid

    def env(self, name: str, **extra: str) -> dict:
        keep = {k: v for k, v in os.environ.items() if k in ("HCQW_MUNGE_SOCKET", "SLURM_CONF", "LANG", "PATH")}
        home = pwd.getpwnam(name).pw_dir
        return {**keep, "HOME": home, "USER": name, "PYTHONPATH": str(ROOT), "HCQW_STATE_DIR": f"{home}/.hcqw-test",
                **extra}

    def command(self, name: str, args: Sequence[str]) -> list[str]:
        return ["runuser", "-u", name, "--", self.python, *args]

    def popen(self, name: str, args: Sequence[str], **kwargs) -> subprocess.Popen:
        """A process as ``name`` in a process group of its own (``stop`` ends runuser and its child)."""
        return subprocess.Popen(self.command(name, args), env=self.env(name), text=True, start_new_session=True,
                                **kwargs)

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def run(self, name: str, args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess:
        proc = self.popen(name, args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            self.stop(proc)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
