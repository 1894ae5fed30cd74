#!/usr/bin/env bash
# Set up (if needed) and run the full test suite. The SLURM tests start a real local cluster
# (munge, slurmctld, several slurmd, slurmrestd on loopback) and install its Debian packages on
# first use, which needs root; HCQW_TEST_SLURM=0 skips them where that is impossible.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"  # mpiexec, hydra_nameserver, process workers
exec .venv/bin/python -m pytest "$@"
