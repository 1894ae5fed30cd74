"""Any command as a SLURM job (``command_request``): a quantum command opens the device with
``hcqw.qpu.open_qpu`` and frees the qpu component when it closes its lease; a classical
command cannot open a device at all."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from hcqw.hetjob.jobs import NodeJobSettings, command_request
from hcqw.hetjob.records import qpu_timeline
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


def submit(sbatch, tmp_path: Path, name: str, quantum: bool) -> tuple[str, Path]:
    script, out = tmp_path / f"{name}.py", tmp_path / f"{name}.json"
    script.write_text(SCRIPT)
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} {shlex.quote(str(out))}"
    request = command_request(command, workflow="wf-cmd", name=name, workdir=tmp_path, settings=NodeJobSettings(),
                              quantum=quantum)
    (tmp_path / "slurm").mkdir(exist_ok=True)
    return sbatch.submit(request), out


def test_quantum_command_releases_the_qpu_when_its_lease_closes(sbatch, tmp_path):
    job, out = submit(sbatch, tmp_path, "bell", quantum=True)
    state = sbatch.wait(job, timeout=90)
    assert state.phase is Phase.COMPLETED, sbatch.failure(state)
    counts = {int(k): v for k, v in __import__("json").loads(out.read_text()).items()}
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
