"""A Parsl script of tests/parsl/test_parsl_per_call.py, run as users run theirs:

    python tests/parsl/per_call_script.py RUN_DIR WORKFLOW DEVICE_SERVICE DRIVER OUT CALLS PAUSE

One app on the ``per-call`` executor of ``hcqw_config(backend="slurm")`` runs the unsplit driver script
``DRIVER OUT CALLS PAUSE`` unchanged (``runpy``, as ``python DRIVER ...`` would): the app is a cpu job, and each
of the driver's quantum calls gets a qpu job of its own, relaying to the qpu host's QPU service.
"""

from __future__ import annotations

import sys

from parsl import python_app

from hcqw.hetjob.jobs import NodeJobSettings
from parsl_hcqw import hcqw_config, hcqw_parsl


@python_app(executors=["per-call"])
def run_driver(script: str, args: list[str]) -> str:
    import runpy
    import sys

    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")
    return "done"


def main() -> None:
    run_dir, workflow, service, driver, *args = sys.argv[1:]
    config = hcqw_config(backend="slurm", run_dir=f"{run_dir}/runinfo", workflow=workflow,
                         settings=NodeJobSettings(device_service=service))
    with hcqw_parsl(config):
        print(run_driver(driver, args).result(), flush=True)


if __name__ == "__main__":
    main()
