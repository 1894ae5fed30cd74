"""Raising in the middle of a Parsl script under ``hcqw_parsl``: 15 s later no SLURM job of it is
left and no process it started (interchange, worker pools, apps) is alive."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hcqw.lab.pytest_plugin import wait_for
from hcqw.slurm.commands import run_slurm
from hcqw.slurm.parsing import parse_scontrol

SCRIPT = Path(__file__).with_name("raising_script.py")
LEFTOVER_S = 15.0


def marked_processes(mark: str) -> list[int]:
    """PIDs whose environment holds the test's mark (zombies excluded)."""
    needle = f"HCQW_PARSL_TEST_MARK={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def live_jobs(workflow: str) -> list[str]:
    """SLURM jobs of this workflow that are not finished, per the controller."""
    out = run_slurm(["scontrol", "-o", "show", "job"], check=False).stdout
    return [f"{r.job_id} {r.state}" for r in parse_scontrol(out)
            if (r.name or "").startswith(f"hcqw:{workflow}:") and not r.phase.terminal]


def run_and_raise(tmp_path: Path, backend: str) -> tuple[str, str]:
    mark, workflow = uuid.uuid4().hex, f"raise-{uuid.uuid4().hex[:6]}"
    argv = [sys.executable, str(SCRIPT), str(tmp_path), workflow, backend]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180,
                          env={**os.environ, "HCQW_PARSL_TEST_MARK": mark})
    assert proc.returncode != 0 and "the user's script failed mid-run" in proc.stderr, proc.stderr[-3000:]
    assert (tmp_path / "qpu-held").exists()  # it raised while the qpu app held the device
    return mark, workflow


@pytest.mark.slow
def test_raise_embedded_leaves_no_process(tmp_path, job_env):
    mark, _ = run_and_raise(tmp_path, "local")
    wait_for(lambda: not marked_processes(mark), LEFTOVER_S, "the script's processes to be gone")


@pytest.mark.slurm
def test_raise_on_slurm_leaves_no_job_and_no_process(tmp_path, job_env, slurm_lab):
    mark, workflow = run_and_raise(tmp_path, "slurm")
    wait_for(lambda: not live_jobs(workflow) and not marked_processes(mark), LEFTOVER_S,
             "no SLURM job and no process of the script")
