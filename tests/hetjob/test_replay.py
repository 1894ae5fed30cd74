"""Replay of a per-call driver's finished calls (``hcqw.hetjob.replay``), on the real local device (qsim)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import cirq
import pytest

from hcqw.checkpoint import Place
from hcqw.device.local import LocalDevice
from hcqw.errors import CheckpointMismatch
from hcqw.hetjob.replay import CallRecords, RecordingLease, ReplayLease, check_seed, request_digest

Q = cirq.LineQubit.range(2)
BELL = cirq.Circuit(cirq.H(Q[0]), cirq.CNOT(*Q), cirq.measure(*Q, key="m"))
THETA = cirq.Circuit(cirq.rx(0.3)(Q[0]), cirq.measure(Q[0], key="m"))


def record_call(records: CallRecords, seed: int, circuits) -> list:
    call = records.next_call()
    with RecordingLease(LocalDevice("qsim").acquire("wf", "driver", seed=seed), records, call, seed) as lease:
        return [lease.run(circuit, 64) for circuit in circuits]


@pytest.fixture
def records(tmp_path):
    return CallRecords(tmp_path / "calls", Place("wf", "cmd-a"))


def test_a_finished_call_replays_its_results_without_the_device(records):
    live = record_call(records, 7, [BELL, THETA])
    record = records.load(1)
    check_seed(record, 7, records.path(1))
    with ReplayLease(record, records.path(1), "wf", "driver") as replay:
        replayed = [replay.run(BELL, 64), replay.run(THETA, 64)]
    assert [r[0].measurements["m"].tolist() for r in replayed] == [r[0].measurements["m"].tolist() for r in live]
    assert record_call(records, 7, [BELL]) and records.path(2).exists()  # calls are numbered in order


@pytest.mark.parametrize("change", ["circuit", "shots", "more runs", "fewer runs"])
def test_a_call_asking_otherwise_than_its_record_is_refused(records, change):
    record_call(records, 7, [BELL, THETA])
    replay = ReplayLease(records.load(1), records.path(1), "wf", "driver")
    replay.run(BELL, 64)
    with pytest.raises(CheckpointMismatch, match="call-00001.ckpt"):
        if change == "circuit":
            replay.run(BELL, 64)
        elif change == "shots":
            replay.run(THETA, 65)
        elif change == "more runs":
            replay.run(THETA, 64)
            replay.run(THETA, 64)
        else:
            replay.close()


def test_another_seed_command_line_or_a_copied_record_is_refused(records, tmp_path):
    record_call(records, 7, [BELL])
    record_call(records, 8, [THETA])
    with pytest.raises(CheckpointMismatch, match="seed 7, this call asks for seed 9"):
        check_seed(records.load(1), 9, records.path(1))
    with pytest.raises(CheckpointMismatch, match="other parameters"):
        CallRecords(records.directory, Place("wf", "cmd-b")).load(1)
    shutil.copy(records.path(1), records.path(2))
    with pytest.raises(CheckpointMismatch, match="was written as call-00001.ckpt"):
        records.load(2)


def test_a_call_whose_run_raised_leaves_no_record(records):
    call = records.next_call()
    with pytest.raises(Exception):
        with RecordingLease(LocalDevice("qsim").acquire("wf", "driver", seed=1), records, call, 1) as lease:
            lease.run(BELL, 64)
            lease.run("not a circuit", 64)
    assert not records.path(call).exists()


def test_recording_a_call_sent_as_cirq_json_does_not_import_cirq():
    # The digest is taken while the call holds the QPU: importing cirq there cost a per-call driver's first call
    # about 4 s of an idle device on the lab (bench/coschedule.py, K = 4).
    code = ("import sys; from hcqw.hetjob.replay import batch_digest, request_digest; "
            "from hcqw.device.work import WorkItem; "
            f"text = {cirq.to_json(THETA)!r}; "
            "request_digest('run', text, 64, [{'t': 0.5}]); batch_digest([WorkItem(text, 64, ({'t': 0.5},))]); "
            "print('cirq' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_call_sent_as_cirq_json_records_the_same_request_as_its_circuit():
    assert request_digest("run", cirq.to_json(THETA), 64, None) == request_digest("run", THETA, 64, None)
