"""``hcqw.qpu.open_qpu`` finds the process's device: the machine-local one by default, a running
service when ``HCQW_DEVICE_ADDRESS`` names one, none at all in a classical job; the same seed
gives the same samples on either device."""

from __future__ import annotations

import cirq
import pytest

from hcqw.device.local import LocalDevice
from hcqw.errors import DeviceError
from hcqw.metrics import read_events
from hcqw.qpu import open_qpu

QUBITS = cirq.LineQubit.range(3)
GHZ = cirq.Circuit(cirq.H(QUBITS[0]), cirq.CNOT(QUBITS[0], QUBITS[1]), cirq.CNOT(QUBITS[1], QUBITS[2]),
                   cirq.measure(*QUBITS, key="m"))


def sample(**kwargs) -> list[int]:
    with open_qpu(seed=99, **kwargs) as qpu:
        return list(qpu.run(GHZ, 64)[0].measurements["m"].dot([4, 2, 1]))


@pytest.fixture
def no_device_env(monkeypatch):
    for name in ("HCQW_GATEWAY_ADDRESS_FILE", "HCQW_DEVICE_ADDRESS", "HCQW_DEVICE", "HCQW_WORKFLOW", "HCQW_NODE"):
        monkeypatch.delenv(name, raising=False)


def test_local_device_by_default_with_names_and_metrics_from_the_environment(no_device_env, monkeypatch, tmp_path):
    monkeypatch.setenv("HCQW_WORKFLOW", "wf-env")
    monkeypatch.setenv("HCQW_NODE", "rule-a")
    monkeypatch.setenv("HCQW_METRICS", str(tmp_path / "qpu.jsonl"))
    with open_qpu() as qpu:
        assert LocalDevice("qsim").queue()[0]["workflow"] == "wf-env"  # we hold the machine's device
        qpu.run(GHZ, 8)
    assert LocalDevice("qsim").queue() == []
    holds = list(read_events(tmp_path / "qpu.jsonl", "hold"))
    assert [(h["workflow"], h["node"]) for h in holds] == [("wf-env", "rule-a")]


def test_a_classical_job_has_no_device(no_device_env, monkeypatch):
    monkeypatch.setenv("HCQW_DEVICE", "none")
    monkeypatch.setenv("HCQW_NODE", "c0001")
    with pytest.raises(DeviceError, match="c0001 runs as a classical job.*qpu=1"):
        open_qpu()


def test_running_service_gives_the_same_samples_as_the_local_device(no_device_env, monkeypatch, tcp_service,
                                                                     tmp_path):
    local = sample()
    monkeypatch.setenv("HCQW_DEVICE_ADDRESS", tcp_service.address)
    monkeypatch.setenv("HCQW_METRICS", str(tmp_path / "qpu.jsonl"))
    assert sample(workflow="wf-svc", node="q1") == local
    assert set(local) <= {0, 7} and len(set(local)) == 2  # a GHZ state, both branches seen
    sessions = list(read_events(tmp_path / "qpu.jsonl", "session"))
    assert [(s["workflow"], s["node"]) for s in sessions] == [("wf-svc", "q1")]
    assert sessions[0]["start"] <= sessions[0]["end"]
