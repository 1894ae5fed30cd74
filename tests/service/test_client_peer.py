"""A client whose service dies: a waiting run and an idle session both learn it within the peer bound,
``on_lost`` runs once (a quantum node frees its qpu component there), later requests fail at once."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from hcqw.device.work import WorkItem
from hcqw.service.client import ServiceClient, ServiceUnreachable
from tests.support.live import LiveService

BELL = ('{"cirq_type": "Circuit", "moments": [{"cirq_type": "Moment", "operations": [{"cirq_type": "GateOperation", '
        '"gate": {"cirq_type": "HPowGate", "exponent": 1.0, "global_shift": 0.0}, "qubits": [{"cirq_type": '
        '"LineQubit", "x": 0}]}]}, {"cirq_type": "Moment", "operations": [{"cirq_type": "GateOperation", "gate": '
        '{"cirq_type": "MeasurementGate", "num_qubits": 1, "key": "m", "invert_mask": []}, "qubits": '
        '[{"cirq_type": "LineQubit", "x": 0}]}]}]}')
PEER_TIMEOUT = 2.0


@pytest.fixture
def service(tmp_path):
    live = LiveService(tmp_path, "tcp://127.0.0.1:*", "--simulator", "cirq")
    yield live
    live.stop()


def kill(live: LiveService) -> None:
    """SIGKILL: no goodbye to the clients (a clean stop answers every request with an error)."""
    os.killpg(live.proc.pid, signal.SIGKILL)


def lost_client(address: str, losses: list) -> ServiceClient:
    return ServiceClient(address, timeout=5, heartbeat=0.3, peer="the test's QPU service", peer_timeout=PEER_TIMEOUT,
                         on_lost=losses.append)


def test_a_run_waiting_on_a_dead_service_fails_naming_it(service):
    losses: list = []
    client = lost_client(service.address, losses)
    with ServiceClient(service.address) as admin:
        admin.set_status("offline", "the run below must wait")
    session = client.session("wf-peer", "q0001")
    killer = threading.Timer(1.0, kill, (service,))
    killer.start()
    started = time.monotonic()
    with pytest.raises(ServiceUnreachable, match=r"lost the test's QPU service: the connection to it has been down"):
        session.run_batch([WorkItem(circuit=BELL, repetitions=10, params=({},))])
    waited = time.monotonic() - started
    killer.join()
    assert len(losses) == 1 and waited < 1.0 + PEER_TIMEOUT + 5  # not the queue's (unbounded) wait
    with pytest.raises(ServiceUnreachable, match="lost the test's QPU service"):
        session.position()  # at once: no second wait on a dead peer
    session.close()  # nothing to close on a dead service: returns, does not hang
    client.close()
    assert len(losses) == 1


def test_an_idle_session_learns_its_service_died_in_the_background(service):
    losses: list = []
    client = lost_client(service.address, losses)
    client.session("wf-peer", "q0002")
    kill(service)
    deadline = time.monotonic() + PEER_TIMEOUT + 10
    while not losses and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(losses) == 1 and "lost the test's QPU service" in str(losses[0])
    client.close()


def test_a_live_service_is_never_taken_for_lost_while_it_executes(service):
    """The ZeroMQ probes are answered below the protocol, also while the device runs a long job."""
    losses: list = []
    client = lost_client(service.address, losses)
    with client.session("wf-peer", "q0003") as session:
        (samples,) = session.run_batch([WorkItem(circuit=BELL, repetitions=400_000, params=({},))])
        time.sleep(PEER_TIMEOUT * 1.5)  # idle inside the block, kept alive in the background
        session.run_batch([WorkItem(circuit=BELL, repetitions=10, params=({},))])
    client.close()
    assert len(samples[0]["m"]) == 400_000 and losses == []
