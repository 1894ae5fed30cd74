"""A live QPU service process for tests: real sockets, stopped by PID in teardown."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from tests.support import ROOT

VENV_BIN = Path(sys.executable).parent
MPIEXEC = VENV_BIN / "mpiexec"
SUITE = ROOT / "tests" / "service" / "protocol_suite.py"


def _env(state: Path) -> dict:
    env = dict(os.environ, HCQW_STATE_DIR=str(state), PYTHONPATH=str(ROOT))
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    return env


class LiveService:
    def __init__(self, tmp: Path, address: str, *extra: str, mpi: bool = False, mpi_args: Sequence[str] = ()):
        self.tmp = tmp
        self.log = tmp / "metrics.jsonl"
        self.address_file = tmp / "address"
        self.env = _env(tmp / "state")
        cmd = [sys.executable, "-m", "hcqw.cli.device", "serve", "--address", address, "--threads", "1",
               "--log", str(self.log), "--address-file", str(self.address_file), "--max-message", "1048576", *extra]
        if mpi:
            cmd = [str(MPIEXEC), *mpi_args, "-n", "1", *cmd]
        self.stderr = (tmp / "service.err").open("w")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while not self.address_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"service did not start: {(tmp / 'service.err').read_text()}")
            time.sleep(0.05)
        self.address = self.address_file.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)  # the service's own process group (mpiexec + its proxy and rank)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(5)
        self.stderr.close()
