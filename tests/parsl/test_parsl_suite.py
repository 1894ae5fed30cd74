"""Parsl's own test suite (the part for a generic config) against hcqw_config()'s cpu executor."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("run_parsl_suite.py")


@pytest.mark.slow
def test_parsl_suite_on_the_cpu_executor(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "-p", "no:randomly"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-2000:]
    assert proc.returncode == 0, f"Parsl's suite failed: {summary}\n{proc.stdout[-5000:]}"
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 100, summary  # the selection collapsing to a handful would hide a broken set-up
