"""Fuzzing a live service, and killed clients: the service keeps serving and cleans up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import cirq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcqw.service import protocol as P
from hcqw.service.client import ServiceClient, ServiceError
from tests.support.raw_zmq import dealer

# Control requests included: the fuzzer cannot make a valid MUNGE credential, so even as root
# (an operator) it must never get one through.
SAFE_TYPES = sorted(P.REQUEST_TYPES)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=12)
headers = st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 1, 0, 2, "1", None]), "type": st.sampled_from(SAFE_TYPES + ["x", ""]),
     "id": st.integers() | st.text(max_size=10)},
    optional={"session": json_values, "items": st.lists(json_values | st.fixed_dictionaries(
        {"circuit": st.text(max_size=50) | st.just('{"cirq_type": "Circuit", "moments": []}'),
         "repetitions": st.integers(-5, 10**9) | st.booleans(), "params": json_values}), max_size=3),
              "workflow": json_values, "node": json_values, "timeout": json_values, "priority": json_values,
              "seed": json_values | st.integers(-5, 2**65), "junk": json_values,
              "cred": json_values | st.text(max_size=300) | st.text(max_size=200).map(lambda t: f"MUNGE:{t}:"),
              "status": json_values, "policy": json_values})
messages = st.one_of(
    st.lists(st.binary(max_size=200), min_size=1, max_size=3),
    headers.map(lambda h: [json.dumps(h).encode()]),
    headers.map(lambda h: [json.dumps(h).encode(), b"\x00" * 8]),
)


@pytest.mark.slow
def test_fuzz_keeps_serving_well_formed_clients(tcp_service):
    socket = dealer(tcp_service.address)  # CurveZMQ with the service's key: the fuzz reaches the service's parser
    good = ServiceClient(tcp_service.address, timeout=20)
    q = cirq.LineQubit(0)
    circuit = cirq.Circuit(cirq.X(q), cirq.measure(q, key="m"))
    count = [0]

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(messages)
    def fuzz(frames):
        socket.send_multipart([b"", *frames])
        assert socket.poll(10_000), "no reply to a fuzzed message: the service is wedged"
        reply = socket.recv_multipart()
        header = json.loads(reply[1])
        assert header["type"] in ("ok", "error")
        if header["type"] == "error":
            assert header["code"] and header["message"]
        count[0] += 1
        if count[0] % 20 == 0:  # a well-formed client is served throughout
            # (a fresh session each time: between calls a session lives session_timeout = 1.5 s here)
            with good.session("fuzz", "good") as qpu:
                assert qpu.run(circuit, 2)[0].measurements["m"].tolist() == [[1], [1]]

    try:
        fuzz()
        with good.session("fuzz", "good") as qpu:
            assert qpu.run(circuit, 1)[0].measurements["m"].tolist() == [[1]]
        status = good.status()
        assert status["status"] in ("idle", "executing") and status["policy"] == "fifo" and not status["draining"]
        assert count[0] >= 100
    finally:
        good.close()
        socket.close(0)


CLIENT = """
import sys, cirq
from hcqw.service.client import ServiceClient, ServiceError
client = ServiceClient(sys.argv[1], heartbeat=0.2)
qpu = client.session("doomed", "q0", timeout=600)
q = cirq.LineQubit(0)
print(qpu.session_id, flush=True)
qpu.run(cirq.Circuit(cirq.X(q), cirq.measure(q, key="m")), 1)  # waits: the device is calibrating
"""


def _wait_for(predicate, limit: float):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def test_killed_client_frees_queue_entries_and_session(tcp_service):
    control = ServiceClient(tcp_service.address)
    control.set_status("calibrating", "kill test")
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, tcp_service.address], stdout=subprocess.PIPE, text=True,
                            env=tcp_service.env)
    try:
        session = proc.stdout.readline().strip()
        assert session
        queued = lambda: any(e["session"] == session for e in control.status()["queue"])  # noqa: E731
        assert _wait_for(queued, 60), "the client's run never reached the queue"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        timeout = control.status()["session_timeout"]
        gone = lambda: not any(s["session"] == session for s in control.status()["sessions"])  # noqa: E731
        # Within the configured timeout (plus the sweep period and polling slack).
        assert _wait_for(gone, timeout + 2.0), "the dead client's session was never dropped"
        assert not queued()
        holds = [e for e in tcp_service_events(tcp_service, "hold") if e["session"] == session]
        assert holds and holds[0]["reason"] == "expired"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        control.set_status("idle")
        control.close()


def tcp_service_events(service, kind):
    from hcqw.metrics import read_events

    return list(read_events(service.log, kind))


def test_session_outlives_classical_work_longer_than_the_session_timeout(tcp_service):
    """The client's keep-alive thread heartbeats an idle session; without it the service drops it."""
    q = cirq.LineQubit(0)
    circuit = cirq.Circuit(cirq.X(q), cirq.measure(q, key="m"))
    with ServiceClient(tcp_service.address) as client, client.session("keepalive", "kept") as qpu:
        timeout = client.status()["session_timeout"]
        time.sleep(2 * timeout)  # "classical work" inside the quantum block: no requests of its own
        assert qpu.run(circuit, 1)[0].measurements["m"].tolist() == [[1]]
    with ServiceClient(tcp_service.address, keepalive=False) as client:
        qpu = client.session("keepalive", "dropped")
        time.sleep(2 * timeout)
        with pytest.raises(ServiceError) as failed:
            qpu.run(circuit, 1)
        assert failed.value.code == P.E_NO_SESSION
