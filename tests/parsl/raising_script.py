"""A Parsl script that raises while a qpu app holds the device and a cpu app runs.

    python tests/parsl/raising_script.py RUN_DIR WORKFLOW BACKEND

Every process it starts carries ``$HCQW_PARSL_TEST_MARK`` (also its SLURM jobs), so the test
can look for leftovers by that mark.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from parsl import python_app

from hcqw.hetjob.jobs import NodeJobSettings
from parsl_hcqw import hcqw_config, hcqw_parsl


@python_app(executors=["qpu"])
def hold_qpu(marker: str) -> None:
    from pathlib import Path

    from hcqw.qpu import open_qpu

    with open_qpu():
        Path(marker).touch()
        time.sleep(120)


@python_app(executors=["cpu"])
def busy_cpu() -> None:
    time.sleep(120)


def main() -> None:
    run_dir, workflow, backend = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    settings = NodeJobSettings(environment={"HCQW_PARSL_TEST_MARK": os.environ["HCQW_PARSL_TEST_MARK"]})
    config = hcqw_config(backend=backend, run_dir=str(run_dir / "parsl"), workflow=workflow, settings=settings)
    marker = run_dir / "qpu-held"
    with hcqw_parsl(config):
        busy_cpu()
        hold_qpu(str(marker))
        while not marker.exists():
            time.sleep(0.1)
        raise RuntimeError("the user's script failed mid-run")


if __name__ == "__main__":
    main()
