"""Parsl scripts of tests/parsl/test_parsl_hold.py, on the embedded ``hcqw_config()``, run as users run theirs:

    python tests/parsl/hold_script.py MODE RUN_DIR OTHER_RUN_DIR [--backend slurm QPU_NODE]

- ``direct``: after a barrier with the other script, a chain of three qpu apps that call qsimcirq
  directly (no open_qpu);
- ``early``: one qpu app that opens open_qpu, closes it, then waits for the other script's late app;
- ``late``: once the other script's early app holds the device, one qpu app that calls qsimcirq directly.

The results (the apps' own timestamps) go to ``RUN_DIR/result.json``. With ``--backend slurm QPU_NODE``
the script runs on ``hcqw_config(backend="slurm")``, every qpu app a hetjob whose qpu part asks for that node.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from parsl import python_app

from parsl_hcqw import hcqw_config, hcqw_parsl

WAIT = 300  # s; bound on waiting for the other script


def wait_for_file(path: Path) -> bool:
    deadline = time.time() + WAIT
    while not path.exists() and time.time() < deadline:
        time.sleep(0.05)
    return path.exists()


@python_app(executors=["qpu"])
def warm_up() -> None:
    import cirq  # noqa: F401 - imported once per worker, before the measured apps
    import qsimcirq  # noqa: F401


@python_app(executors=["qpu"])
def direct(workflow: str, other_done: str, after: dict | None = None) -> dict:
    import os
    import time

    import cirq
    import qsimcirq

    from hcqw.device import LocalDevice
    from hcqw.environment import DEVICE_HOLD

    qubits = cirq.LineQubit.range(2)
    bell = cirq.Circuit(cirq.H(qubits[0]), cirq.CNOT(*qubits), cirq.measure(*qubits, key="m"))
    simulator = qsimcirq.QSimSimulator()
    start = time.time()
    simulator.run(bell, repetitions=100)
    time.sleep(1)  # still on the device: unheld, the other script's app would run meanwhile
    if os.environ.get(DEVICE_HOLD):  # the local device (on SLURM the queue is slurmctld's)
        # Stay on the device until the other script queues for it (or has finished), so the order that
        # follows is the device's FIFO, not which script happened to start faster.
        deadline = time.time() + 120
        while time.time() < deadline and not os.path.exists(other_done) and not any(
                owner.get("workflow") != workflow for owner in LocalDevice().queue()[1:]):
            time.sleep(0.05)
    counts = simulator.run(bell, repetitions=100).histogram(key="m")
    return {"start": start, "end": time.time(), "counts": dict(counts)}


@python_app(executors=["qpu"])
def early(run_dir: str, other_dir: str) -> dict:
    import time
    from pathlib import Path

    import cirq

    from hcqw.qpu import open_qpu

    qubit = cirq.LineQubit(0)
    with open_qpu() as qpu:
        (Path(run_dir) / "opened").touch()
        qpu.run(cirq.Circuit(cirq.X(qubit), cirq.measure(qubit, key="m")), repetitions=10)
        closing = time.time()  # the lease closes right after
    late_started = Path(other_dir) / "late-started"
    deadline = time.time() + 300
    while not late_started.exists() and time.time() < deadline:
        time.sleep(0.05)
    return {"closing": closing, "saw_late": late_started.exists(), "end": time.time()}


@python_app(executors=["qpu"])
def late(run_dir: str) -> dict:
    import time
    from pathlib import Path

    started = time.time()
    (Path(run_dir) / "late-started").touch()
    import cirq
    import qsimcirq

    qubit = cirq.LineQubit(0)
    qsimcirq.QSimSimulator().run(cirq.Circuit(cirq.X(qubit), cirq.measure(qubit, key="m")), repetitions=10)
    return {"started": started, "end": time.time()}


def main() -> None:
    mode, run_dir, other = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    slurm = {}
    if sys.argv[4:6] == ["--backend", "slurm"]:
        from hcqw.hetjob.jobs import NodeJobSettings
        from hcqw.slurm import ComponentSpec

        pinned = ComponentSpec("qpu", gres="qpu:1", time_limit=10, extra=(f"--nodelist={sys.argv[6]}",))
        slurm = {"backend": "slurm", "settings": NodeJobSettings(qpu=pinned)}
    with hcqw_parsl(hcqw_config(run_dir=str(run_dir / "parsl"), workflow=run_dir.name, **slurm)):
        if mode == "direct":
            if not slurm:  # on SLURM each app is a fresh process of its own
                warm_up().result()
            (run_dir / "ready").touch()
            assert wait_for_file(other / "ready"), "the other script never became ready"
            apps, previous = [], None
            for _ in range(3):
                previous = direct(run_dir.name, str(other / "result.json"), previous)
                apps.append(previous)
            result = [app.result() for app in apps]
        elif mode == "early":
            result = early(str(run_dir), str(other)).result()
        else:
            assert wait_for_file(other / "opened"), "the early script's app never opened the device"
            result = late(str(run_dir)).result()
    (run_dir / "result.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
