"""The modelled device: qsim's samples, a real QPU's busy time, no core burnt while 'executing'."""

from __future__ import annotations

import resource

import cirq
import numpy as np
import pytest
import sympy

from hcqw.device import LocalDevice, WorkItem, make_backend
from hcqw.device.modelled import ModelledBackend
from hcqw.errors import DeviceError
from hcqw.metrics import MetricsLog, read_events
from hcqw.service.client import ServiceClient
from tests.support.live import LiveService

Q = cirq.LineQubit.range(4)
THETA = sympy.Symbol("theta")
SWEPT = cirq.Circuit(cirq.H.on_each(*Q), cirq.ry(THETA).on_each(*Q), cirq.CNOT(Q[0], Q[2]), cirq.measure(*Q, key="m"))


def items() -> list[WorkItem]:
    return [WorkItem.build(SWEPT, 100, cirq.Points("theta", [0.1, 0.7, 1.3])), WorkItem.build(SWEPT, 40, {"theta": 2.0})]


def flatten(results) -> list[np.ndarray]:
    return [point["m"] for item in results for point in item]


def test_samples_equal_qsims_for_the_same_seed():
    modelled = make_backend("modelled", seed=11, circuit_overhead=0, shot_time=0)
    assert isinstance(modelled, ModelledBackend) and modelled.name == "modelled"
    qsim = make_backend("qsim", seed=11)
    for want, have in zip(flatten(qsim.execute(items())), flatten(modelled.execute(items()))):
        np.testing.assert_array_equal(want, have)
    modelled.reseed(12)
    assert not all(np.array_equal(a, b) for a, b in zip(flatten(qsim.execute(items())), flatten(modelled.execute(items()))))


def test_the_model_counts_circuits_per_sweep_point_and_every_shot():
    backend = ModelledBackend(circuit_overhead=0.05, shot_time=2e-4)
    assert backend.duration(items()) == pytest.approx(4 * 0.05 + (3 * 100 + 40) * 2e-4)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process, qsim's included
    return usage.ru_utime + usage.ru_stime


def test_a_lease_is_busy_for_the_modelled_time_and_sleeps_through_it(tmp_path):
    backend = ModelledBackend(circuit_overhead=0.25, shot_time=1e-3)
    device, log = LocalDevice(backend, directory=tmp_path / "dev"), MetricsLog(tmp_path / "qpu.jsonl")
    modelled = backend.duration(items())  # 4 circuits x 0.25 s + 340 shots x 1 ms = 1.34 s
    with device.acquire("wf", "q0001", metrics=log, seed=5) as qpu:
        qpu.run_batch(items())  # qsim's first run pays its set-up: keep it out of the CPU measurement
        cpu_before = cpu_seconds()
        qpu.run_batch(items())
        cpu_used = cpu_seconds() - cpu_before
    first, second = log.events("exec")
    for event in (first, second):
        assert event["device"] == "modelled"
        assert modelled <= event["end"] - event["start"] < modelled + 0.5  # the recorded busy interval is the model's
    assert cpu_used < 0.2 * modelled, f"{cpu_used:.2f} s of CPU in a {modelled:.2f} s execution: spinning?"


def test_settings_from_the_environment_and_bad_values(monkeypatch):
    monkeypatch.setenv("HCQW_MODELLED_CIRCUIT_OVERHEAD", "0.5")
    monkeypatch.setenv("HCQW_MODELLED_SHOT_TIME", "1e-5")
    backend = make_backend("modelled")
    assert (backend.circuit_overhead, backend.shot_time, backend.threads) == (0.5, 1e-5, 1)
    assert make_backend("modelled", circuit_overhead=0.1).circuit_overhead == 0.1  # an option beats the environment
    monkeypatch.setenv("HCQW_MODELLED_SHOT_TIME", "fast")
    with pytest.raises(DeviceError, match=r"shot_time must be a number of seconds, got 'fast' \(set it with HCQW_MODELLED_SHOT_TIME\)"):
        make_backend("modelled")
    with pytest.raises(DeviceError, match="circuit_overhead must be >= 0 seconds"):
        make_backend("modelled", circuit_overhead=-1, shot_time=0)


def test_device_serve_runs_the_modelled_device(tmp_path, monkeypatch):
    """``hcqw device serve --simulator modelled``, configured through its environment, as a site would."""
    monkeypatch.setenv("HCQW_MODELLED_CIRCUIT_OVERHEAD", "0.3")
    monkeypatch.setenv("HCQW_MODELLED_SHOT_TIME", "0")
    service = LiveService(tmp_path, f"ipc://{tmp_path}/sock/qpu.ipc", "--simulator", "modelled")
    try:
        with ServiceClient(service.address) as client, client.session("wf", "q0001", seed=77) as session:
            served = [r.measurements["m"] for r in session.run(SWEPT, 64, cirq.Points("theta", [0.2, 0.9]))]
    finally:
        service.stop()
    with LocalDevice("qsim", directory=tmp_path / "dev").acquire("wf", "q0001", seed=77) as lease:
        local = [r.measurements["m"] for r in lease.run(SWEPT, 64, cirq.Points("theta", [0.2, 0.9]))]
    for want, have in zip(local, served):
        np.testing.assert_array_equal(want, have)
    (executed,) = read_events(service.log, "exec")
    assert executed["device"] == "modelled" and executed["end"] - executed["start"] >= 2 * 0.3
