"""The attacker of the attack suite, run as another Unix user with the ordinary ``ServiceClient``
(and raw ZeroMQ where a hand-made message is the attack). Prints one JSON object: what each
attempt got (``"ok"`` or the refusal's error code) plus what the attacker could see.

    python attacker.py probe ADDRESS VICTIM_SESSION [sessions=N message_mb=M flood=F]
                                                        every attempt below, one after another (the flood
                                                        sizes must exceed the service's limits)
    python attacker.py gateway ADDRESS VICTIM_SESSION   what a gateway may be asked: status, the victim's
                                                        session, control, an open (someone else's gateway)
    python attacker.py long ADDRESS                     one long run: prints "submitted", then its result
    python attacker.py control ADDRESS                  control requests only, every id form (e.g. via a relay)
    python attacker.py open ADDRESS                     one session open (e.g. on someone else's gateway)
    python attacker.py keepalive ADDRESS VICTIM_SESSION SECONDS
                                                        pings and heartbeats of the victim's session, for so long
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import cirq
import zmq

from hcqw.device.work import WorkItem
from hcqw.errors import CircuitError, DeviceError
from hcqw.service import credential, servicekey
from hcqw.service import protocol as P
from hcqw.service.client import ServiceClient, ServiceError

CONTROL = {"shutdown": {}, "drain": {}, "set_status": {"status": "offline"}, "set_policy": {"policy": "priority"}}
ID_FORMS = {"missing": {}, "null": {"id": None}, "float": {"id": 1.5}, "list": {"id": [1]}, "object": {"id": {"a": 1}},
            "bool": {"id": True}, "string": {"id": "x"}, "int": {"id": 7}}


def outcome(action) -> str:
    try:
        action()
        return "ok"
    except ServiceError as err:
        return err.code
    except CircuitError:
        return P.E_CIRCUIT
    except DeviceError as err:
        return f"device error: {err}"


def own_cred(address: str, header: dict) -> str:
    """The attacker's own credential, made properly for this request to this service (as his client would)."""
    key = servicekey.for_address(address)[1]
    fields = {k: v for k, v in header.items() if k not in ("v", "type", "id")}
    return credential.seal(str(header.get("type")), fields, key.ident if key else credential.NO_KEY,
                           key.uid if key else None)


def raw(address: str, header: dict, frames: list[bytes] | None = None) -> dict:
    """One hand-made message (CurveZMQ with the service's published key, as any client may)."""
    endpoint, key = servicekey.for_address(address)
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    if key is not None:
        own = key.client and os.access(key.client, os.R_OK)  # his own relay's client key; never hers
        public, secret = servicekey.read_client_key(key.client) if own else zmq.curve_keypair()
        socket.setsockopt(zmq.CURVE_SERVERKEY, key.public)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
        socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
    socket.connect(endpoint)
    try:
        socket.send_multipart(frames or [json.dumps(header).encode()])
        if not socket.poll(20_000):
            return {"code": "no reply"}
        return json.loads(socket.recv_multipart()[0])
    finally:
        socket.close(0)


def control_attempts(address: str) -> dict:
    """Every control request in every id form, with the attacker's own credential, none, a forged
    one and a replayed one."""
    got = {}
    for type_, fields in CONTROL.items():
        for form, id_ in ID_FORMS.items():
            header = {"v": 1, "type": type_, **id_, **fields}
            got[f"{type_}/{form}/own-cred"] = raw(address, {**header, "cred": own_cred(address, header)}).get(
                "code", "ok")
        got[f"{type_}/no-cred"] = raw(address, {"v": 1, "type": type_, "id": 1, **fields}).get("code", "ok")
        got[f"{type_}/forged-cred"] = raw(address, {"v": 1, "type": type_, "id": 1, **fields,
                                                    "cred": "MUNGE:AwQFAAB" + "A" * 120 + ":"}).get("code", "ok")
        used = own_cred(address, {"v": 1, "type": "status", "id": 1})
        raw(address, {"v": 1, "type": "status", "id": 1, "cred": used})  # spends it
        got[f"{type_}/replayed-cred"] = raw(address, {"v": 1, "type": type_, "id": 1, **fields,
                                                      "cred": used}).get("code", "ok")
    return got


def wide(qubits: int, layers: int) -> str:
    q = cirq.LineQubit.range(qubits)
    moments = [cirq.H.on_each(*q)]
    for layer in range(layers):
        moments += [cirq.CZ(q[i], q[i + 1]) for i in range(layer % 2, qubits - 1, 2)]
        moments.append(cirq.rx(0.1 * (layer + 1)).on_each(*q))
    return cirq.to_json(cirq.Circuit(moments, cirq.measure(*q, key="m")))


def seen_and_victim_attempts(client: ServiceClient, victim: str) -> dict:
    """What ``status`` shows him, and run/heartbeat/reseed/position/close of the victim's session, its id known."""
    try:
        status = client.status()
    except ServiceError as err:  # a job's own gateway answers its owner only
        status = {"refused": err.code}
    got = {"status_text": json.dumps(status), "status_operator_view": status.get("operator_view"),
           "status_open_sessions": status.get("open_sessions")}
    bit = json.dumps({"cirq_type": "Circuit", "moments": []})
    for type_, fields in (("run", {"items": [{"circuit": bit, "repetitions": 1}]}), ("heartbeat", {}),
                          ("reseed", {"seed": 1}), ("position", {}), ("close", {})):
        got[f"victim/{type_}"] = outcome(lambda: client.call(type_, session=victim, **fields))
    return got


def handshake(address: str, timeout: float = 10.0) -> str:
    """What a CurveZMQ handshake with a key of his own gets: "ok", or "refused" (the server admits only
    other client keys: a job's relay gateway admits its owner's alone)."""
    endpoint, key = servicekey.split(address)
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    public, secret = zmq.curve_keypair()
    socket.setsockopt(zmq.CURVE_SERVERKEY, key.public)
    socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
    socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
    failed = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    monitor = socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | failed)
    socket.connect(endpoint)
    try:
        if not monitor.poll(int(timeout * 1000)):
            return "no answer"
        event = int.from_bytes(monitor.recv_multipart()[0][:2], "little")
        return "ok" if event == zmq.EVENT_HANDSHAKE_SUCCEEDED else "refused"
    finally:
        socket.disable_monitor()
        monitor.close(0)
        socket.close(0)


def stranger(address: str) -> str:
    """The address as he can use it: a relay gateway's card names the client key it admits, in its owner's
    private directory; he cannot read it, so he tries keys of his own."""
    endpoint, key = servicekey.split(address)
    if key is None or not key.client or os.access(key.client, os.R_OK):
        return address
    return servicekey.card(endpoint, dataclasses.replace(key, client=None))


def gateway(address: str, victim: str) -> dict:
    if stranger(address) != address:  # a relay gateway admitting its owner's client key alone
        return {"handshake": handshake(address)}
    with ServiceClient(address, timeout=30) as client:
        got = seen_and_victim_attempts(client, victim)
    return {**got, "control": control_attempts(address), **open_once(address)}


def probe(address: str, victim: str, sessions: int = 10, message_mb: int = 4, flood: int = 12) -> dict:
    with ServiceClient(address, timeout=30) as client:
        got = seen_and_victim_attempts(client, victim)
        got["control"] = control_attempts(address)
        # Account work to the victim: claim to be her when opening.
        claim = {"v": 1, "type": "open", "id": 1, "workflow": "bob-wf", "node": "claims-alice", "user": "hcqw-alice"}
        header = raw(address, {**claim, "cred": own_cred(address, claim)})
        got["open_claiming_victim"] = header.get("code", "ok")
        got["own_open"] = outcome(lambda: client.session("bob-wf", "work").close())
        if got["own_open"] != "ok":  # e.g. no allocation of the device (a resident service with --grants)
            return got
        with client.session("bob-wf", "work", user="hcqw-alice") as qpu:
            one = cirq.Circuit(cirq.X(cirq.LineQubit(0)), cirq.measure(cirq.LineQubit(0), key="m"))
            got["own_run"] = outcome(lambda: qpu.run(one, 1))
            # Unbounded work, each refused before it starts.
            flip = cirq.to_json(one)
            points = tuple({} for _ in range(4096))
            got["huge_sweep"] = outcome(lambda: qpu.run_batch([WorkItem(flip, 1_000_000, points)]))
            got["many_big_items"] = outcome(lambda: qpu.run_batch([WorkItem(flip, 1_000_000)] * 64))
            got["long_item"] = outcome(lambda: qpu.run_batch([WorkItem(wide(28, 10), 1)]))
            got["too_many_qubits"] = outcome(lambda: qpu.run_batch([WorkItem(wide(40, 1), 1)]))
        pad = b"x" * (message_mb << 20)
        got["huge_message"] = raw(address, {}, [b'{"v": 1, "type": "ping", "id": 1, "pad": "' + pad + b'"}']).get(
            "code", "ok")
        opened = []
        for index in range(sessions):
            try:
                opened.append(client.session("bob-wf", f"s{index}"))
            except ServiceError as err:
                got["session_flood"] = err.code
                got["sessions_before_refusal"] = len(opened)
                break
        for session in opened:
            session.close()
        with client.session("bob-wf", "queue-flood") as qpu:
            long_item = {"circuit": wide(16, 20), "repetitions": 1}
            ids = [f"flood-{i}" for i in range(flood)]
            for request_id in ids:
                client._transport.send(P.request("run", request_id, session=qpu.session_id, items=[long_item]))
            codes = {}
            while len(codes) < len(ids):
                header, _ = P.decode_reply(client._transport.recv(120.0))
                if header["id"] in ids:
                    codes[header["id"]] = header.get("code", "ok")
            got["queue_flood"] = sorted(codes.values())
    return got


def long_run(address: str) -> None:
    with ServiceClient(address, timeout=30) as client, client.session("bob-wf", "long") as qpu:
        item = WorkItem(wide(20, 36), 1)
        print("submitted", flush=True)
        result = outcome(lambda: qpu.run_batch([item, item]))
        print(json.dumps({"long_run": result}), flush=True)


def open_once(address: str) -> dict:
    if stranger(address) != address:
        return {"open": f"handshake {handshake(address)}"}
    with ServiceClient(address, timeout=30) as client:
        return {"open": outcome(lambda: client.session("bob-wf", "on-someone-elses-gateway").close())}


def keep_alive(address: str, victim: str, seconds: float) -> dict:
    """Talk to someone else's gateway all the time, as if to keep it (and its qpu allocation) alive."""
    answers: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    with ServiceClient(stranger(address), timeout=5, keepalive=False) as client:
        first = outcome(lambda: client.ping())  # a job's relay refuses him even this: he talks all the same
        answers[first] = 1
        print("talking", flush=True)
        while time.monotonic() < deadline:
            for attempt in (lambda: client.ping(), lambda: client.call("heartbeat", session=victim)):
                code = outcome(attempt)
                answers[code] = answers.get(code, 0) + 1
            time.sleep(0.3)
    return answers


if __name__ == "__main__":
    command, address = sys.argv[1], sys.argv[2]
    if command == "probe":
        sizes = {key: int(value) for key, value in (arg.split("=") for arg in sys.argv[4:])}
        print(json.dumps(probe(address, sys.argv[3], **sizes)))
    elif command == "gateway":
        print(json.dumps(gateway(address, sys.argv[3])))
    elif command == "long":
        long_run(address)
    elif command == "control":
        print(json.dumps(control_attempts(address)))
    elif command == "keepalive":
        print(json.dumps(keep_alive(address, sys.argv[3], float(sys.argv[4]))))
    elif command == "open":
        print(json.dumps(open_once(address)))
