"""Helpers of the Parsl adapter tests."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support import ROOT


def run_example(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m <module> args`` from the repository root, as a user runs the examples."""
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())
    assert proc.returncode == 0, f"{module} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc
