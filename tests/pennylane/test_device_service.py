"""``hcqw.qpu`` on a running QPU service (``HCQW_DEVICE_ADDRESS``): the device's circuits -- symbols and
sweeps -- cross the wire codec and back, and each ``execute`` batch is one session on the service."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pennylane as qml
import pytest
from pennylane import numpy as pnp

from hcqw.environment import DEVICE_ADDRESS, MUNGE_SOCKET
from hcqw.metrics import read_events
from tests.support.live import LiveService
from tests.support.munge import PrivateMunged

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def munged(monkeypatch):
    """A private munged: the service authenticates its clients with MUNGE. Not under pytest's tmp dir,
    whose 0700 parent munged refuses for its socket."""
    directory = Path(tempfile.mkdtemp(prefix="hcqw-munge-"))
    daemon = PrivateMunged(directory)
    monkeypatch.setenv(MUNGE_SOCKET, str(daemon.socket))
    yield daemon
    daemon.stop()
    shutil.rmtree(directory, ignore_errors=True)


def test_a_qnode_and_its_gradient_run_on_a_qpu_service(tmp_path, monkeypatch, munged):
    service = LiveService(tmp_path, "tcp://127.0.0.1:*", "--simulator", "qsim")
    try:
        monkeypatch.setenv(DEVICE_ADDRESS, service.address)

        def circuit(theta):
            qml.RX(theta[0], 0)
            qml.IsingXX(theta[1], [0, 1])
            qml.CRY(theta[0], [1, 0])
            return qml.expval(qml.Hamiltonian([0.7, -0.4], [qml.Z(0) @ qml.Z(1), qml.Y(1)]))

        sampled = qml.set_shots(qml.QNode(circuit, qml.device("hcqw.qpu", wires=2, seed=9)), shots=20_000)
        exact = qml.QNode(circuit, qml.device("default.qubit", wires=2))
        theta = pnp.array([0.8, 0.5], requires_grad=True)
        assert float(sampled(theta)) == pytest.approx(float(exact(theta)), abs=0.03)
        assert qml.grad(sampled)(theta) == pytest.approx(qml.grad(exact)(theta), abs=0.05)
        kinds = {}
        for event in read_events(service.log):
            kinds.setdefault(event.get("kind"), []).append(event)
        assert len(kinds["hold"]) == 3  # the energy; then the grad call's two batches (energy, shifted tapes)
    finally:
        service.stop()
