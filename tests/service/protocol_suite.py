"""The protocol test suite, run unchanged against a live service over any transport.

pytest calls ``run_suite`` in-process for ZeroMQ; for MPI it runs this file under
``mpiexec -n 1 python tests/service/protocol_suite.py ADDRESS`` (the client needs its own
MPI_COMM_WORLD), which exits 0 when every check passes. The service under test must run
with ``--max-message 1048576``.
"""

from __future__ import annotations

import json
import sys
import traceback

import cirq
import numpy as np
import sympy

from hcqw.device.work import WorkItem
from hcqw.errors import CircuitError, DeviceError, DeviceOffline
from hcqw.service import protocol as P
from hcqw.service.client import ServiceClient, ServiceError

MAX_MESSAGE = 1024 * 1024


def _raw(client: ServiceClient, frames: list[bytes]) -> dict:
    """Send arbitrary frames and return the reply header (skipping stale replies)."""
    client._transport.send(frames)
    reply = client._transport.recv(10.0)
    assert reply is not None, "no reply to a malformed request: the service is wedged"
    header, _ = P.decode_reply(reply)
    return header


def _expect_error(client: ServiceClient, frames: list[bytes], code: str, words: str) -> None:
    header = _raw(client, frames)
    assert header["type"] == "error", header
    assert header["code"] == code, header
    assert words.lower() in header["message"].lower(), header


def check_ping_and_status(client: ServiceClient) -> None:
    assert client.ping() > 0
    status = client.status()
    assert status["status"] in ("idle", "executing") and status["device"] == "qsim"


def check_runs(client: ServiceClient) -> None:
    a, b = cirq.LineQubit.range(2)
    bell = cirq.Circuit(cirq.H(a), cirq.CNOT(a, b), cirq.measure(a, b, key="m"))
    with client.session("suite", "runs", user="tester") as qpu:
        assert qpu.is_open and qpu.limits.max_qubits >= 2
        [result] = qpu.run(bell, repetitions=50)
        bits = result.measurements["m"]
        assert bits.shape == (50, 2) and np.all(bits[:, 0] == bits[:, 1])
        theta = sympy.Symbol("t")
        flip = cirq.Circuit(cirq.X(a) ** theta, cirq.measure(a, key="z"))
        results = qpu.run(flip, repetitions=5, params=[{"t": 0.0}, {"t": 1.0}])
        assert [int(r.measurements["z"].sum()) for r in results] == [0, 5]
        batch = qpu.run_batch([WorkItem.build(flip, 3, {"t": 1}), WorkItem.build(bell, 4)])
        assert batch[0][0]["z"].tolist() == [[1], [1], [1]] and batch[1][0]["m"].shape == (4, 2)
        # A circuit sent as Cirq JSON text (a client without cirq).
        [[samples]] = qpu.run_batch([WorkItem(cirq.to_json(flip), 2, ({"t": 1.0},))])
        assert samples["z"].tolist() == [[1], [1]]
    assert not qpu.is_open
    try:
        qpu.run(bell, 1)
        raise AssertionError("a closed lease ran a circuit")
    except DeviceError:
        pass


def check_impossible_work(client: ServiceClient) -> None:
    q = cirq.LineQubit.range(40)
    with client.session("suite", "bad") as qpu:
        cases = [
            (cirq.Circuit(cirq.H(q[0])), 10, "no measurements"),
            (cirq.Circuit(cirq.measure(*q, key="m")), 1, "qubits"),
            (cirq.Circuit(cirq.measure(q[0], key="m")), 10**12, "repetitions"),
            (cirq.Circuit(cirq.X(q[0]) ** sympy.Symbol("s"), cirq.measure(q[0], key="m")), 1, "unresolved"),
        ]
        for circuit, reps, words in cases:
            try:
                qpu.run(circuit, reps)
                raise AssertionError(f"accepted an impossible work item ({words})")
            except CircuitError as err:
                assert words in str(err), err
        good = cirq.Circuit(cirq.X(q[0]), cirq.measure(q[0], key="m"))
        unknown_gate = cirq.to_json(good).replace('"cirq_type": "_PauliX"', '"cirq_type": "NoSuchGate"')
        assert "NoSuchGate" in unknown_gate
        for text, words in ((unknown_gate, "NoSuchGate"), ("{not json", "not valid json"), ('{"a": 1}', "circuit")):
            try:
                qpu.run_batch([WorkItem(text, 1)])
                raise AssertionError(f"accepted a bad circuit ({words})")
            except CircuitError as err:
                assert words.lower() in str(err).lower(), err
        assert qpu.run(good, 1)[0].measurements["m"].tolist() == [[1]]  # still serving


def check_malformed_messages(client: ServiceClient) -> None:
    _expect_error(client, [b"\xff\xfe not json"], P.E_BAD_MESSAGE, "json")
    _expect_error(client, [b"[1, 2]"], P.E_BAD_MESSAGE, "object")
    _expect_error(client, [b'{"v": 99, "type": "ping", "id": 1}'], P.E_VERSION, "version")
    _expect_error(client, [b'{"v": 1, "type": "launch", "id": 1}'], P.E_UNKNOWN_TYPE, "launch")
    _expect_error(client, [b'{"v": 1, "type": "open", "id": 1, "node": "n"}'], P.E_BAD_MESSAGE, "workflow")
    _expect_error(client, [b'{"v": 1, "type": "run", "id": 1, "session": "x", "items": 3}'], P.E_BAD_MESSAGE,
                  "items")
    _expect_error(client, [b'{"v": 1, "type": "ping", "id": 1}', b"extra"], P.E_BAD_MESSAGE, "frames")
    _expect_error(client, [b'{"v": 1, "type": "ping", "id": 1, "pad": "' + b"x" * (MAX_MESSAGE + 10) + b'"}'],
                  P.E_TOO_LARGE, "exceeds")
    _expect_error(client, [json.dumps({"v": 1, "type": "heartbeat", "id": 7, "session": "nope"}).encode()],
                  P.E_NO_SESSION, "no open session")
    try:
        client.call("run", session="nope", items=[{}])
        raise AssertionError("ran on an unknown session")
    except ServiceError as err:
        assert err.code == P.E_NO_SESSION
    client.ping()


def check_status_windows_and_position(client: ServiceClient) -> None:
    q = cirq.LineQubit(0)
    circuit = cirq.Circuit(cirq.X(q), cirq.measure(q, key="m"))
    try:
        assert client.set_status("calibrating", "suite") == "calibrating"
        assert client.status()["reason"] == "suite"
        with client.session("suite", "wait", timeout=0.3) as qpu:
            try:
                qpu.run(circuit, 1)
                raise AssertionError("ran while calibrating")
            except DeviceOffline as err:
                assert "calibrating" in str(err)
            # A queued run is visible with its position, and runs once the device is back.
            client._transport.send(P.request("run", "queued-run", session=qpu.session_id, timeout=30.0,
                                             items=[{"circuit": cirq.to_json(circuit), "repetitions": 1}]))
            assert qpu.position() == 0
            assert client.status()["queue"][0]["session"] == qpu.session_id
            client.set_status("idle")
            header = _await_reply(client, "queued-run")  # it may come before or after set_status's
            assert header["type"] == "ok" and header["points"] == [1]
            assert qpu.position() is None
    finally:
        client.set_status("idle")
    try:
        client.set_status("executing")
        raise AssertionError("'executing' must not be settable")
    except ServiceError as err:
        assert err.code == P.E_BAD_MESSAGE


def check_policy_switch(client: ServiceClient) -> None:
    before = client.status()["policy"]
    assert client.set_policy("round-robin") == "round-robin"
    assert client.set_policy("priority") == "priority"
    try:
        client.set_policy("lottery")
        raise AssertionError("accepted an unknown policy")
    except ServiceError as err:
        assert "lottery" in str(err)
    client.set_policy(before)


def check_reseed(client: ServiceClient) -> None:
    q = cirq.LineQubit.range(3)
    noisy = cirq.Circuit(cirq.H.on_each(*q), cirq.measure(*q, key="m"))  # every sample is random
    draw = lambda qpu: qpu.run(noisy, 32)[0].measurements["m"]  # noqa: E731
    with client.session("suite", "reseed", seed=11) as qpu:
        first, second = draw(qpu), draw(qpu)
        qpu.reseed(11)  # as a new session with seed 11: the batch count starts over
        np.testing.assert_array_equal(draw(qpu), first)
        np.testing.assert_array_equal(draw(qpu), second)
        qpu.reseed(12)
        assert not np.array_equal(draw(qpu), first)
        for seed, words in ((-1, "seed must be within"), (2**64, "seed must be within"), ("7", "'seed' must be int"),
                            (True, "'seed' must be int")):
            try:
                client.call("reseed", session=qpu.session_id, seed=seed)
                raise AssertionError(f"accepted seed {seed!r}")
            except ServiceError as err:
                assert err.code == P.E_BAD_MESSAGE and words in str(err), err
        try:  # a run still queued (device calibrating) would get a timing-dependent seed: refused
            client.set_status("calibrating", "suite reseed")
            client._transport.send(P.request("run", "queued-run", session=qpu.session_id, timeout=30.0,
                                             items=[{"circuit": cirq.to_json(noisy), "repetitions": 1}]))
            assert qpu.position() == 0
            try:
                qpu.reseed(11)
                raise AssertionError("reseeded a session with a queued run")
            except ServiceError as err:
                assert err.code == P.E_BAD_MESSAGE and "queued" in str(err), err
        finally:
            client.set_status("idle")
        _await_reply(client, "queued-run")  # the device ran it once idle again
        assert qpu.position() is None
        qpu.reseed(None)  # unseeded from now on
        assert draw(qpu).shape == (32, 3)
    try:
        client.call("reseed", session=qpu_id_gone(client), seed=1)
        raise AssertionError("reseeded an unknown session")
    except ServiceError as err:
        assert err.code == P.E_NO_SESSION and "no open session" in str(err), err
    try:
        qpu.reseed(1)
        raise AssertionError("a closed lease was reseeded")
    except DeviceError as err:
        assert "closed" in str(err)


def _await_reply(client: ServiceClient, request_id: str) -> dict:
    """The reply to a request sent raw (``client._transport``), skipping any other."""
    for _ in range(10):
        header, _ = P.decode_reply(client._transport.recv(10.0))
        if header["id"] == request_id:
            return header
    raise AssertionError(f"no reply to {request_id}")


def qpu_id_gone(client: ServiceClient) -> str:
    """The id of a session that existed and was closed."""
    with client.session("suite", "gone") as qpu:
        session = qpu.session_id
    return session


CHECKS = [check_ping_and_status, check_runs, check_impossible_work, check_malformed_messages,
          check_status_windows_and_position, check_policy_switch, check_reseed]


def run_suite(address: str) -> list[str]:
    """Run every check on fresh clients; return the failures (empty when all pass)."""
    failures = []
    for check in CHECKS:
        with ServiceClient(address, timeout=20.0) as client:
            try:
                check(client)
            except Exception:  # noqa: BLE001 - collect every failure, not just the first
                failures.append(f"{check.__name__}: {traceback.format_exc()}")
    return failures


if __name__ == "__main__":
    try:
        problems = run_suite(sys.argv[1])
        for problem in problems:
            print("FAIL", problem, file=sys.stderr)
        print(f"protocol suite: {len(CHECKS) - len(problems)}/{len(CHECKS)} checks passed")
    except BaseException:
        traceback.print_exc()
        if sys.argv[1].startswith("mpi:"):
            from mpi4py import MPI

            MPI.COMM_WORLD.Abort(1)  # never leave the service hanging in a collective
        raise
    sys.exit(1 if problems else 0)
