"""Real Unix users for isolation tests: processes run as another uid with ``runuser``."""

from __future__ import annotations

import os
import pwd
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[2]


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
        return subprocess.Popen(self.command(name, args), env=self.env(name), text=True, **kwargs)

    def run(self, name: str, args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(name, args), env=self.env(name), text=True, capture_output=True,
                              timeout=timeout)
