"""Any command as a SLURM job (``command_request``): a quantum command opens the device with
``hcqw.qpu.open_qpu`` and frees the qpu component when it closes its lease; a classical
command cannot open a device at all."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from hcqw.hetjob.jobs import STEP_WAIT_S, NodeJobSettings, command_request
from hcqw.hetjob.records import qpu_timeline
from hcqw.lab.pytest_plugin import controller_down, wait_for
from hcqw.slurm import Phase

pytestmark = pytest.mark.slurm

# Bell pair, then 4 s of "classical" work after the block; the counts prove the circuit ran.
SCRIPT = """
import json, sys, time, cirq
from hcqw.qpu import open_qpu
a, b = cirq.LineQubit.range(2)
bell = cirq.Circuit(cirq.H(a), cirq.CNOT(a, b), cirq.measure(a, b, key="m"))
with open_qpu(seed=5) as qpu:
    result = qpu.run(bell, 200)[0]
time.sleep(4)
counts = result.histogram(key="m")
json.dump({str(k): v for k, v in counts.items()}, open(sys.argv[1], "w"))
"""


def submit(sbatch, tmp_path: Path, name: str, quantum: bool, before: str = "") -> tuple[str, Path]:
    """``before``: shell lines the batch script runs first."""
    script, out = tmp_path / f"{name}.py", tmp_path / f"{name}.json"
    script.write_text(SCRIPT)
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {shlex.quote(str(out))}"
    request = command_request(command, workflow="wf-cmd", name=name, workdir=tmp_path, settings=NodeJobSettings(),
                              quantum=quantum)
    (tmp_path / "slurm").mkdir(exist_ok=True)
    return sbatch.submit(dataclasses.replace(request, body=before + request.body)), out


def bell_counts(out: Path) -> dict[int, int]:
    return {int(k): v for k, v in json.loads(out.read_text()).items()}


def test_quantum_command_releases_the_qpu_when_its_lease_closes(sbatch, tmp_path):
    job, out = submit(sbatch, tmp_path, "bell", quantum=True)
    state = sbatch.wait(job, timeout=90)
    assert state.phase is Phase.COMPLETED, sbatch.failure(state)
    counts = bell_counts(out)
    assert set(counts) <= {0, 3} and sum(counts.values()) == 200  # only |00> and |11>: entangled
    timeline = qpu_timeline(tmp_path / "metrics" / "qpu.jsonl", "wf-cmd", "bell", state)
    assert timeline.release_lag is not None and timeline.release_lag <= 2.0
    assert timeline.qpu_end < timeline.leader_end  # the qpu node was free while the command went on


def test_classical_command_cannot_open_a_device(sbatch, tmp_path):
    job, out = submit(sbatch, tmp_path, "nodevice", quantum=False)
    state = sbatch.wait(job, timeout=90)
    assert state.phase is Phase.FAILED
    log = next((tmp_path / "slurm").glob("nodevice-*.out")).read_text()
    assert "runs as a classical job, without a qpu component" in log
    assert not out.exists()


@pytest.mark.slow
def test_a_gateway_waiting_for_a_busy_qpu_host_starts_once_the_host_is_free_across_a_controller_restart(
        sbatch, slurm_lab, tmp_path):
    """The gateway's step waits while the qpu host is busy (here another step of the job holds the qpu
    component's cpu, as the host does while it finishes its last job) and slurmctld restarts meanwhile.
    srun's own wait outlasted such a restart by up to two minutes (100 s measured; seen in CI), the qpu node
    allocated and idle all along; the job script asks again every STEP_WAIT_S s instead."""
    freed = tmp_path / "host-freed"
    busy = f"srun --het-group=1 -n1 sleep 20 && date +%s.%N > {shlex.quote(str(freed))} &\nsleep 2\n"
    job, out = submit(sbatch, tmp_path, "busyhost", quantum=True, before=busy)
    wait_for(lambda: sbatch.status([job], force=True)[job].phase is Phase.RUNNING, 60, "the job to start")
    time.sleep(4)  # the gateway's step is waiting for the host now
    with controller_down(slurm_lab):
        time.sleep(8)
    state = sbatch.wait(job, timeout=150)
    assert state.phase is Phase.COMPLETED, sbatch.failure(state)
    assert sum(bell_counts(out).values()) == 200
    gateway_log = next((tmp_path / "jobs").glob("busyhost.*/gateway.log")).read_text().splitlines()
    started = next(line for line in gateway_log if "cluster address" in line)
    waited = datetime.strptime(started[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() - float(freed.read_text())
    assert waited < STEP_WAIT_S + 5, f"the gateway started {waited:.1f} s after the qpu host was free"
