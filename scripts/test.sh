#!/usr/bin/env bash
# Set up (if needed) and run the full test suite. The SLURM tests start a real local cluster
# (munge, slurmctld, several slurmd, slurmrestd on loopback) and install its Debian packages on
# first use, which needs root; HCQW_TEST_SLURM=0 skips them where that is impossible.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"  # mpiexec, hydra_nameserver, process workers
# Two workers (pytest-xdist), a test file at a time each, each with labs of its own: the lab tests mostly wait
# for SLURM's scheduler, so two run side by side on CI's 2 cores. HCQW_TEST_WORKERS=0: one process.
exec .venv/bin/python -m pytest -n "${HCQW_TEST_WORKERS:-2}" --dist loadfile "$@"
