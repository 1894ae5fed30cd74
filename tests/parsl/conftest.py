"""Shared helpers of the Parsl adapter tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def job_env(monkeypatch):
    """Jobs and worker pools find this checkout (apps import ``examples.parsl.apps``)."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")


def run_example(module: str, *args: str, timeout: float = 300, check: bool = True,
                env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m <module> args`` from the repository root, as a user runs the examples."""
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, f"{module} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc


def energy_line(stdout: str) -> str:
    return next(line for line in stdout.splitlines() if line.startswith("VQE energy"))
