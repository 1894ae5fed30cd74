"""Parsl script of tests/parsl/test_parsl_faults.py, on ``hcqw_config(backend="slurm")``:

    python tests/parsl/outage_script.py RUN_DIR GO_FILE

Two qpu apps one after the other, each measuring X on one qubit 10 times through open_qpu; the first
waits for GO_FILE before it opens the device and ``RUN_DIR/first-done`` marks its result. The counts go
to ``RUN_DIR/result.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from parsl import python_app

from parsl_hcqw import hcqw_config, hcqw_parsl


@python_app(executors=["qpu"])
def measure(go: str = "") -> int:
    import os
    import time

    import cirq

    from hcqw.qpu import open_qpu

    deadline = time.time() + 300
    while go and not os.path.exists(go) and time.time() < deadline:
        time.sleep(0.1)
    qubit = cirq.LineQubit(0)
    with open_qpu(seed=1) as qpu:
        result = qpu.run(cirq.Circuit(cirq.X(qubit), cirq.measure(qubit, key="m")), repetitions=10)
    return int(result[0].measurements["m"].sum())


def main() -> None:
    run_dir, go = Path(sys.argv[1]), sys.argv[2]
    with hcqw_parsl(hcqw_config(backend="slurm", run_dir=str(run_dir / "parsl"), workflow=run_dir.name)):
        first = measure(go).result()
        (run_dir / "first-done").touch()
        second = measure().result()
    (run_dir / "result.json").write_text(json.dumps([first, second]))


if __name__ == "__main__":
    main()
