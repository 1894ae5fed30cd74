"""Issue 24, finding 2 on the multi-host lab: a credential proves one request to one service, and the
client authenticates the service.

``hcqw-bob`` runs a fake QPU service and gets ``hcqw-alice`` to talk to it (an address he planted):
what he catches names his service and is restricted to his uid, so the real resident services refuse
it. A credential alice made for one resident service is refused at another and for another request,
and bob cannot even decode it (restricted to the service's account). A fake service that claims a
real service's key gets nothing: alice's client never completes the handshake, so nothing is sent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from hcqw.lab import LabCluster, users
from hcqw.lab.pytest_plugin import wait_for
from hcqw.lab.users import USERS
from hcqw.service import protocol as P
from hcqw.service import servicekey
from hcqw.service.client import ServiceClient

from tests.support.lab_user import as_user, site_script

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("lab_munge")]
ALICE, BOB = USERS




class FakeService:
    """``credential_thief.py serve`` as bob: his own fake QPU service on loopback."""

    def __init__(self, lab: LabCluster, workdir: Path, claimed_key: str | None = None):
        self.card_file, self.caught = workdir / "card", workdir / "caught.jsonl"
        argv = [str(lab.site.bin / "python"), site_script(lab, "credential_thief.py"), "serve", str(self.card_file),
                str(self.caught), *([claimed_key] if claimed_key else [])]
        self.proc = subprocess.Popen(users.as_user(BOB, argv), env=lab.user_env(BOB), cwd=workdir,
                                     umask=users.USER_UMASK, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.card = wait_for(lambda: self.card_file.exists() and self.card_file.read_text(), 30, "bob's fake service")

    def caught_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.caught.read_text().splitlines()] if self.caught.exists() else []

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)  # runuser and his server under it: their own process group
        self.proc.wait(10)


def alice_opens(lab: LabCluster, address: str, timeout: float = 30) -> dict:
    done = as_user(lab, ALICE, str(lab.site.bin / "python"), site_script(lab, "open_session.py"), address,
                   str(timeout), input="quit\n")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[0])


def bob_replays(lab: LabCluster, address: str, caught: Path, *changes: str) -> dict:
    done = as_user(lab, BOB, str(lab.site.bin / "python"), site_script(lab, "credential_thief.py"), "replay", address,
                   str(caught), *changes)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_credential_caught_by_a_fake_service_or_made_for_another_is_refused(slurm_lab, lab_user_dir):
    q1, q2 = slurm_lab.layout.qpu_node_names[:2]
    first, second = slurm_lab.qpu_service_address(q1), slurm_lab.qpu_service_address(q2)
    bob_dir = lab_user_dir(BOB)
    fake = FakeService(slurm_lab, bob_dir)
    try:
        # Alice is given bob's address (planted in a file she trusted, say): her open goes to him.
        got = alice_opens(slurm_lab, fake.card)
        assert got["code"] == P.E_INTERNAL, got  # his answer; but what did he get?
        (caught,) = wait_for(fake.caught_lines, 10, "bob's fake service to catch her open")
    finally:
        fake.stop()
    bob_uid = int(as_user(slurm_lab, BOB, "id", "-u").stdout)
    assert servicekey.split(fake.card)[1].uid == bob_uid
    # ... a credential of hers that names his service: every real one refuses it.
    # Alice's client made it for his service's key and restricted it to his uid: munged will not even open it
    # for a real service's account (and were it opened, it names his key).
    for address in (first, second):
        replayed = bob_replays(slurm_lab, address, bob_dir / "caught.jsonl")
        assert replayed["code"] == P.E_UNAUTHENTICATED, replayed
        assert "restricted to another decoder" in replayed["message"], replayed

    # A credential alice made for the first resident service (bob got hold of it: say, from her job's files).
    make = ("import json, sys; from hcqw.service import credential, servicekey; "
            "key = servicekey.for_address(sys.argv[1])[1]; f = {'workflow': 'alice-wf', 'node': 'n', 'priority': 0}; "
            "print(json.dumps({'v': 1, 'type': 'open', 'id': 1, **f, "
            "'cred': credential.seal('open', f, key.ident, key.uid)}))")

    def stolen(label: str) -> Path:
        # One credential per attempt: the lab's hosts share one munged, whose replay cache would refuse a
        # second use first (a site runs one munged per host, each with its own cache: the binding is what holds).
        made = as_user(slurm_lab, ALICE, str(slurm_lab.site.bin / "python"), "-c", make, first)
        assert made.returncode == 0, made.stderr
        path = bob_dir / f"stolen-{label}.jsonl"
        path.write_text(made.stdout)
        path.chmod(0o644)
        return path

    # Bob cannot decode it: munged restricts it to the service's account.
    cred = json.loads(stolen("decode").read_text())["cred"]
    unmunged = as_user(slurm_lab, BOB, "unmunge", "-S", str(slurm_lab.layout.munge_socket), input=cred)
    assert unmunged.returncode != 0 and "Unauthorized" in unmunged.stderr, (unmunged.stdout, unmunged.stderr)
    at_other = bob_replays(slurm_lab, second, stolen("other-service"))
    assert at_other["code"] == P.E_UNAUTHENTICATED and "made for another service" in at_other["message"], at_other
    other_request = bob_replays(slurm_lab, first, stolen("other-request"), "workflow=bob-wf")
    assert other_request["code"] == P.E_UNAUTHENTICATED and "made for another request" in other_request["message"], \
        other_request

    # The victim's side is intact: the services serve on, nothing opened in her name or his.
    for address in (first, second):
        with ServiceClient(address) as operator:
            status = operator.status()
        assert status["open_sessions"] == 0 and status["draining"] is False, status


def test_the_client_refuses_a_server_that_does_not_hold_the_key_it_names(slurm_lab, lab_user_dir):
    """Bob's server at an address whose card names a real service's key (he listens where she was told the
    service is): the CurveZMQ handshake fails, so her client sends nothing and he catches nothing."""
    q1 = slurm_lab.layout.qpu_node_names[0]
    real = servicekey.for_address(slurm_lab.qpu_service_address(q1))[1]
    fake = FakeService(slurm_lab, lab_user_dir(BOB), claimed_key=real.public.hex())
    try:
        got = alice_opens(slurm_lab, fake.card, timeout=3)
        assert got["code"] == "unreachable" and "no reply" in got["message"], got
        assert fake.caught_lines() == []
    finally:
        fake.stop()
