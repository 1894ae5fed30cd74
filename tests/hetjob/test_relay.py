"""The relay gateway: a quantum node's gateway forwarding to a resident QPU service on the qpu node.

Without SLURM first (the relay on its own, real sockets and a real service), then a quantum
node on the lab cluster whose qpu component relays to a resident service.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hcqw.device.work import WorkItem
from hcqw.errors import DeviceError
from hcqw.hetjob.records import qpu_timeline
from hcqw.environment import MUNGE_SOCKET
from hcqw.metrics import read_events
from hcqw.service import protocol as P
from tests.support.raw_zmq import dealer
from hcqw.service.client import ServiceClient
from hcqw.slurm import Phase

from hcqw.lab.pytest_plugin import wait_for
from tests.support.loops import _bell_json
from tests.hetjob.test_quantum_node import prepare, submit_q1
from tests.support.munge import PrivateMunged


@pytest.fixture(scope="module", autouse=True)
def munged():
    """Node opens carry MUNGE credentials the relay verifies (outside SLURM: a private munged).
    On the lab cluster, SLURM_CONF's AuthInfo names the lab's munged instead."""
    if os.environ.get("SLURM_CONF"):
        yield None
        return
    directory = Path(tempfile.mkdtemp(prefix="hcqw-munge-"))
    daemon = PrivateMunged(directory)
    os.environ[MUNGE_SOCKET] = str(daemon.socket)
    yield daemon
    os.environ.pop(MUNGE_SOCKET, None)
    daemon.stop()
    shutil.rmtree(directory, ignore_errors=True)


def start_relay(tmp_path: Path, upstream: str, metrics: Path) -> tuple[subprocess.Popen, Path]:
    address_file = tmp_path / "gateway.address"
    gateway = subprocess.Popen([sys.executable, "-m", "hcqw.hetjob.gateway", "--address-file", str(address_file),
                                "--upstream", upstream, "--heartbeat-timeout", "2", "--metrics", str(metrics),
                                "--connect-timeout", "30"], stderr=subprocess.PIPE, text=True)
    return gateway, address_file


def bell(shots: int = 50) -> WorkItem:
    return WorkItem(circuit=_bell_json(), repetitions=shots, params=({},))


def test_relay_forwards_a_session_refuses_control_and_logs_the_execs(resident, tmp_path):
    upstream, resident_log = resident
    metrics = tmp_path / "gateway.jsonl"
    gateway, address_file = start_relay(tmp_path, upstream, metrics)
    try:
        address = wait_for(lambda: address_file.exists() and address_file.read_text(), 30, "the relay address")
        client = ServiceClient(address)
        with client.session("wf-relay", "q0001") as session:
            samples = session.run_batch([bell(), bell(20)])
            assert [len(s[0]["m"]) for s in samples] == [50, 20]
            assert all(set(s[0]["m"].sum(axis=1).tolist()) <= {0, 2} for s in samples)  # a Bell pair: 00 or 11
            with pytest.raises(DeviceError, match="hcqw device shutdown. on the service node"):
                client.shutdown()
        client.close()
        gateway.wait(timeout=15)  # the session ended: the relay stops on its own
        err = gateway.stderr.read()
        assert "relaying" in err and "the node's session ended" in err
        assert "QPU service (" not in err  # no simulator of its own
    finally:
        if gateway.poll() is None:
            gateway.kill()
    relayed = [e for e in read_events(metrics, "exec")]
    served = [e for e in read_events(resident_log, "exec") if e["workflow"] == "wf-relay"]
    assert len(relayed) == len(served) == 1
    assert {k: relayed[0][k] for k in ("node", "start", "end", "shots", "items")} == \
        {k: served[0][k] for k in ("node", "start", "end", "shots", "items")}
    assert served[0]["shots"] == 70
    # The resident service is still up for the next node.
    with ServiceClient(upstream) as admin:
        assert admin.status()["status"] == "idle"


#: Control and unknown requests in every id form: none may pass the relay.
ID_FORMS = [{}, {"id": None}, {"id": 1.5}, {"id": [1]}, {"id": {"a": 1}}, {"id": True}, {"id": "x"}, {"id": 7}]


def test_relay_refuses_control_and_unlisted_requests_whatever_the_id(resident, tmp_path):
    upstream, _ = resident
    gateway, address_file = start_relay(tmp_path, upstream, tmp_path / "gateway.jsonl")
    try:
        address = wait_for(lambda: address_file.exists() and address_file.read_text(), 30, "the relay address")

        def ask(frame: bytes) -> dict:
            # A connection of its own each time: a stranger's connection gets a few messages only (relay.py).
            socket = dealer(address)
            try:
                socket.send(frame)
                assert socket.poll(10_000), f"no reply to {frame[:200]!r}"
                return json.loads(socket.recv())
            finally:
                socket.close(0)

        sent = 0
        for type_, extra in (("shutdown", {}), ("drain", {}), ("set_status", {"status": "offline"}),
                             ("set_policy", {"policy": "priority"}), ("launch", {}), ("open", {"node": "n"})):
            for form in ID_FORMS:
                header = {"v": 1, "type": type_, **form, **extra}
                if type_ == "open" and isinstance(form.get("id"), (str, int)) and not isinstance(form["id"], bool):
                    continue  # a well-formed open is forwarded (and judged upstream); tested elsewhere
                reply = ask(json.dumps(header).encode())
                assert reply["type"] == "error" and reply["code"] in (P.E_FORBIDDEN, P.E_BAD_MESSAGE), (header, reply)
                if type_ in P.CONTROL_TYPES:
                    assert reply["code"] == P.E_FORBIDDEN and "service control" in reply["message"], reply
                sent += 1
        assert ask(b"\xff not json")["code"] == P.E_BAD_MESSAGE
        assert sent >= 40
    finally:
        gateway.kill()
        gateway.wait()
    with ServiceClient(upstream) as admin:  # nothing reached the resident service
        status = admin.status()
    assert (status["status"], status["policy"], status["draining"]) == ("idle", "fifo", False)


def test_relay_closes_the_session_upstream_when_its_node_dies(resident, tmp_path):
    upstream, resident_log = resident
    gateway, address_file = start_relay(tmp_path, upstream, tmp_path / "gateway.jsonl")
    node = None
    try:
        address = wait_for(lambda: address_file.exists() and address_file.read_text(), 30, "the relay address")
        node = subprocess.Popen([sys.executable, "-c", (
            "import sys, time\nfrom hcqw.service.client import ServiceClient\n"
            "ServiceClient(sys.argv[1]).session('wf-dies', 'q0001')\nprint('open', flush=True)\ntime.sleep(300)\n"),
            address], stdout=subprocess.PIPE, text=True)
        assert node.stdout.readline().strip() == "open"
        node.kill()
        node.wait()
        gateway.wait(timeout=15)
        assert "silent for 2 s" in gateway.stderr.read()
    finally:
        for proc in (node, gateway):
            if proc is not None and proc.poll() is None:
                proc.kill()
    holds = [e for e in read_events(resident_log, "hold") if e["workflow"] == "wf-dies"]
    # Closed by the relay at once, not expired after the resident service's own 60 s timeout.
    assert [h["reason"] for h in holds] == ["closed"]


def test_relay_without_a_resident_service_says_what_to_start(tmp_path):
    gateway, address_file = start_relay(tmp_path, f"ipc://{tmp_path}/nobody.ipc", tmp_path / "g.jsonl")
    assert gateway.wait(timeout=40) == 1
    err = gateway.stderr.read()
    assert "did not answer within" in err and "hcqw device serve" in err
    assert not address_file.exists()


@pytest.mark.slurm
def test_quantum_node_relays_to_the_resident_service_of_its_qpu_host(sbatch, resident_per_host, tmp_path):
    upstream, residents = resident_per_host  # ipc://.../hosts/%n/qpu.ipc: %n expanded on the qpu node
    params = {"after_block": 3.0}
    ctx, nodes = prepare(tmp_path, "wf-resident", params)
    job = submit_q1(sbatch, ctx, nodes, params, device_service=upstream)
    state = sbatch.wait(job, timeout=90)
    assert state.phase is Phase.COMPLETED, sbatch.failure(state)
    resident_log = residents[state.component(1).nodelist].log
    gateway_log = next((ctx.run_dir / "jobs").glob("q0001.*/gateway.log")).read_text()
    assert "relaying" in gateway_log and "QPU service (" not in gateway_log
    served = [e for e in read_events(resident_log, "exec") if e["workflow"] == "wf-resident"]
    assert len(served) == 1 and served[0]["node"] == "q0001"
    timeline = qpu_timeline(ctx.metrics_path, ctx.workflow, "q0001", state)
    assert timeline.release_lag is not None and timeline.release_lag <= 2.0
    assert timeline.qpu_end < timeline.leader_end
    assert ctx.path(nodes[1].output).exists()
    # The run's own device log holds the exec as seen through the relay: the same interval.
    relayed = list(read_events(ctx.run_dir / "metrics" / "gateway.jsonl", "exec"))
    assert [(e["start"], e["end"]) for e in relayed] == [(served[0]["start"], served[0]["end"])]
