"""The attack suite: a victim and an attacker, two real Unix users, on one authenticated QPU service.

The service runs as root (its operator) with MUNGE authentication, over tcp and over a shared
ipc socket; the victim (``hcqw-alice``) holds a seeded session; the attacker (``hcqw-bob``) uses
the ordinary ``ServiceClient`` (and raw ZeroMQ where a hand-made message is the attack) and
is told the victim's session id. Every attempt must get a named refusal, and the victim's
seeded samples must be bit-identical to a run without the attacker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.live import LiveService
from tests.support.unix_users import UnixUsers

from tests.service.refusals import assert_control_refused, assert_status_hides

from hcqw.lab.pytest_plugin import wait_for
from hcqw.metrics import read_events
from hcqw.service import protocol as P
from hcqw.service.client import ServiceClient

HERE = Path(__file__).parent
LIMITS = ("--session-timeout", "1.5", "--max-sessions-per-user", "4", "--max-queued-items-per-user", "6",
          "--max-item-seconds", "5")


@pytest.fixture(scope="module", params=["tcp", "ipc"])
def shared_service(request, munged):
    """A root-run service every user can reach: tcp loopback, or an ipc socket in a searchable directory."""
    directory = Path(tempfile.mkdtemp(prefix="hcqw-attack-"))
    directory.chmod(0o755)
    address = "tcp://127.0.0.1:*" if request.param == "tcp" else f"ipc://{directory}/qpu/qpu.ipc"
    service = LiveService(directory, address, "--auth", "munge", *LIMITS)
    yield service
    service.stop()
    shutil.rmtree(directory, ignore_errors=True)


class Victim:
    """``victim.py`` as ``hcqw-alice``: a seeded session, one batch per ``run()``."""

    def __init__(self, users, address: str):
        self.proc = users.popen("hcqw-alice", [str(HERE / "victim.py"), address], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.session = self._read()["session"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"the victim died: {self.proc.stderr.read()}"
        return json.loads(line)

    def run(self) -> list:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._read()["samples"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        UnixUsers.stop(self.proc)


def attacker(users, *args: str, timeout: float = 300) -> dict:
    done = users.run("hcqw-bob", [str(HERE / "attacker.py"), *args], timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_attacker_gets_named_refusals_and_the_victim_is_untouched(shared_service, two_users):
    address = shared_service.address
    alone = Victim(two_users, address)
    reference = [alone.run() for _ in range(3)]
    alone.close()

    victim = Victim(two_users, address)
    try:
        samples = [victim.run()]
        got = attacker(two_users, "probe", address, victim.session)
        samples.append(victim.run())
        # A long run of the attacker's own: the loop serves the others meanwhile, nobody expires.
        long_run = two_users.popen("hcqw-bob", [str(HERE / "attacker.py"), "long", address], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        try:
            assert long_run.stdout.readline().strip() == "submitted"
            with ServiceClient(address) as operator:
                executing = wait_for(lambda: operator.status()["status"] == "executing", 30, "the long run to start")
                assert executing
                served = operator.status()["served"]
            samples.append(victim.run())  # answered while the attacker's run is on the device
            assert json.loads(long_run.stdout.readline())["long_run"] == "ok"
            long_run.wait(30)
        finally:
            UnixUsers.stop(long_run)
        with ServiceClient(address) as operator:
            status = operator.status()
            assert status["served"] >= served + 1
            assert victim.session in {s["session"] for s in status["sessions"]}  # never expired
    finally:
        victim.close()
    assert samples == reference, "the victim's seeded samples changed under attack"
    log = (shared_service.tmp / "service.err").read_text()
    assert "Traceback" not in log and "executor process died" not in log, log[-2000:]

    # What the attacker saw: counts and positions, never the victim's session, workflow or node.
    assert got["status_operator_view"] is False and got["status_open_sessions"] >= 1
    assert_status_hides(got, (victim.session, "victim-wf", "victim-node", "hcqw-alice"))
    # The victim's session, its id known: refused by name.
    for type_ in ("run", "heartbeat", "reseed", "position", "close"):
        assert got[f"victim/{type_}"] == P.E_FORBIDDEN, (type_, got[f"victim/{type_}"])
    # Control in every form: forbidden with his own credential, unauthenticated without a valid one.
    assert_control_refused(got["control"], through_relay=False)
    # Claiming to be the victim opens a session of his own; his work is accounted to him.
    assert got["open_claiming_victim"] == "ok" and got["own_run"] == "ok"
    execs = [e for e in read_events(shared_service.log, "exec") if e["workflow"] == "bob-wf"]
    assert execs and {(e["user"], e["uid"]) for e in execs} == {("hcqw-bob", two_users.uid("hcqw-bob"))}
    alice = [e for e in read_events(shared_service.log, "exec") if e["user"] == "hcqw-alice"]
    assert {e["workflow"] for e in alice} == {"victim-wf"}
    # Unbounded work: refused by name before it starts.
    assert got["huge_sweep"] == P.E_TOO_LARGE and got["many_big_items"] == P.E_TOO_LARGE
    assert got["long_item"] == P.E_TOO_LARGE and got["too_many_qubits"] == P.E_CIRCUIT
    assert got["huge_message"] == P.E_TOO_LARGE
    assert got["session_flood"] == P.E_QUOTA and got["sessions_before_refusal"] <= 4
    assert P.E_QUOTA in got["queue_flood"] and "ok" in got["queue_flood"]
    assert set(got["queue_flood"]) == {P.E_QUOTA, "ok"}
    # And the service is as the operator left it.
    with ServiceClient(address) as operator:
        status = operator.status()
    assert (status["status"], status["policy"], status["draining"]) == ("idle", "fifo", False)


def start_gateway(users, user: str, upstream: str, directory: Path) -> tuple[subprocess.Popen, str]:
    """A job's relay gateway run as ``user`` (the job owner), in front of the shared service."""
    home = directory / user
    home.mkdir(mode=0o700)
    shutil.chown(home, user)
    address_file = home / "gateway.address"
    gateway = users.popen(user, ["-m", "hcqw.hetjob.gateway", "--address-file", str(address_file), "--upstream",
                                 upstream, "--heartbeat-timeout", "5", "--connect-timeout", "60"],
                          stderr=subprocess.PIPE)
    address = wait_for(lambda: address_file.exists() and address_file.read_text(), 60, f"{user}'s gateway")
    return gateway, address


def test_attacker_can_neither_use_the_victims_gateway_nor_control_through_his_own(shared_service, two_users):
    directory = Path(tempfile.mkdtemp(prefix="hcqw-gateways-"))
    directory.chmod(0o755)
    gateways = []
    try:
        victims, victims_address = start_gateway(two_users, "hcqw-alice", shared_service.address, directory)
        gateways.append(victims)
        # Her relay admits her node's client key alone (issue 24): his handshake fails before any message.
        assert attacker(two_users, "open", victims_address) == {"open": "handshake refused"}
        own, own_address = start_gateway(two_users, "hcqw-bob", shared_service.address, directory)
        gateways.append(own)
        assert_control_refused(attacker(two_users, "control", own_address), through_relay=True)
    finally:
        for gateway in gateways:
            UnixUsers.stop(gateway)
        shutil.rmtree(directory, ignore_errors=True)
    with ServiceClient(shared_service.address) as operator:
        status = operator.status()
    assert (status["status"], status["policy"], status["draining"]) == ("idle", "fifo", False)


def test_attacker_cannot_keep_the_victims_relay_alive(shared_service, two_users):
    """The victim's node goes silent (stopped); the attacker keeps talking to her relay gateway: it
    still stops after its heartbeat timeout (else it would hold her qpu allocation for him)."""
    directory = Path(tempfile.mkdtemp(prefix="hcqw-gateways-"))
    directory.chmod(0o755)
    gateway, address = start_gateway(two_users, "hcqw-alice", shared_service.address, directory)
    victim = Victim(two_users, address)
    talker = None
    try:
        talker = two_users.popen("hcqw-bob", [str(HERE / "attacker.py"), "keepalive", address, victim.session, "30"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert talker.stdout.readline().strip() == "talking", talker.stderr.read()
        os.killpg(victim.proc.pid, signal.SIGSTOP)
        silent = time.monotonic()
        gateway.wait(timeout=20)  # heartbeat timeout 5 s, then closing upstream
        stopped = time.monotonic() - silent
        assert talker.poll() is None, "the attacker stopped talking before the gateway stopped"
        assert "the node was silent" in gateway.stderr.read(), stopped
    finally:
        for proc in (talker, victim.proc, gateway):
            if proc is not None:
                UnixUsers.stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


def test_a_jobs_relay_serves_its_owner_only(shared_service, two_users):
    """Bob, who cannot read her node's client key, gets nothing from her job's gateway: his CurveZMQ
    handshake is refused, so not even a ping reaches the relay (issue 24; the relay's own refusal of a
    connection that has not opened a session as her is tests/hetjob/test_relay_bounds.py's)."""
    directory = Path(tempfile.mkdtemp(prefix="hcqw-gateways-"))
    directory.chmod(0o755)
    gateway, address = start_gateway(two_users, "hcqw-alice", shared_service.address, directory)
    try:
        answers = attacker(two_users, "keepalive", address, "no-such-session", "1")
        assert answers and all(a.startswith("device error: no reply") for a in answers), answers
    finally:
        UnixUsers.stop(gateway)
        shutil.rmtree(directory, ignore_errors=True)
