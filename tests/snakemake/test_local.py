"""The Snakefile VQE on the local backend (no SLURM): energy, device leases, logs, resume."""

from __future__ import annotations

import pytest

from hcqw.metrics import read_events

from smk_helpers import TOLERANCE, read_energy, run_snakemake

pytestmark = pytest.mark.slow


def test_example_local_backend_reaches_energy_and_resumes(workdir):
    run = run_snakemake(workdir)
    assert run.returncode == 0, run.output
    assert "hcqw executor: backend local" in run.output
    result = read_energy(workdir)
    assert abs(result["energy"] - result["exact"]) <= TOLERANCE, result
    # Each quantum rule held the machine-local device once, through open_qpu.
    holds = read_events(workdir / ".snakemake" / "hcqw" / "metrics" / "qpu.jsonl", "hold")
    assert sorted(e["node"] for e in holds) == ["q0001", "q0002", "q0003", "q0004"]
    logs = sorted((workdir / ".snakemake" / "hcqw_logs" / "quantum").glob("i=*/local-*.log"))
    assert len(logs) == 4

    # A run stopped before its last steps picks up from the finished checkpoints.
    for name in ("vqe/energy.txt", "vqe/checkpoints/state-0004.ckpt"):
        (workdir / name).unlink()
    again = run_snakemake(workdir)
    assert again.returncode == 0, again.output
    submitted = sorted(line.split()[2] for line in again.output.splitlines() if line.startswith("hcqw: rule "))
    assert submitted == ["classical", "energy"], again.output
    assert read_energy(workdir) == result
