#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded default: the H2 VQE example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m examples.vqe "$@"
