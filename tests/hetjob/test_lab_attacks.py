"""The attack suite on the multi-host lab: a victim's quantum node and an attacker's own jobs.

``hcqw-alice`` (the victim) runs a quantum node, a cpu+qpu hetjob pinned to the first qpu
host, whose gateway serves a simulator of its own or relays to the host's resident QPU
service; her node holds a seeded session (``tests/service/victim.py``, driven through a FIFO
in her private job directory). ``hcqw-bob`` (the attacker) knows her gateway's address and
her session id (he cannot read her job directory, but could scan the qpu host's ports or read
``ss`` there) and attacks with jobs of his own, as any user of the site may:

- a cpu job, on the cluster network: her gateway (status, her session, control, an open; a relay
  gateway admits her node's client key alone, so his handshake fails);
- a plain job on her qpu host, which SLURM refuses (the qpu partition admits only jobs holding
  gres/qpu), so a cpu job at the resident service's socket on the shared file system (status,
  her session, control in every id form, opens in his name and claiming hers: he holds no
  allocation of the device), and control through a relay gateway of his own.

Every attempt gets a named refusal, and her seeded samples are bit-identical to a run of hers
alone (``tests/service/attacker.py`` holds the attacks, the one-host suite uses the same).
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import time
from pathlib import Path

import pytest

from hcqw.hetjob.jobs import NodeJobSettings, command_request
from hcqw.lab import LabCluster
from hcqw.lab.pytest_plugin import wait_for
from hcqw.lab.resident import metrics_log
from hcqw.lab.users import USERS
from hcqw.metrics import read_events
from hcqw.service import protocol as P
from hcqw.service.client import ServiceClient
from hcqw.slurm import ComponentSpec, render_script
from tests.support.lab_user import as_user, site_script
from tests.support.lab_jobs import job_states, wait_done
from tests.service.refusals import assert_control_refused, assert_status_hides

pytestmark = pytest.mark.slurm
ALICE, BOB = USERS
RUNS = 3
SECRETS = ("victim-wf", "victim-node", ALICE)




@pytest.fixture(scope="module")
def reference(slurm_lab: LabCluster) -> list:
    """The victim's seeded samples with nobody else around: alone on the first qpu host's resident service."""
    node = slurm_lab.layout.qpu_node_names[0]
    # From a job of hers holding the device: a resident service serves no one else (issue 24).
    alone = as_user(slurm_lab, ALICE, "srun", "-p", "qpu", "--gres=qpu:1", f"--nodelist={node}", "-t", "5", "-n", "1",
                    "python", site_script(slurm_lab, "victim.py"), slurm_lab.qpu_service_address(node),
                    input="run\n" * RUNS + "quit\n")
    assert alone.returncode == 0, alone.stderr
    return [json.loads(line)["samples"] for line in alone.stdout.splitlines()[1:]]


class VictimNode:
    """``victim.py --gateway`` as the command of alice's quantum node, one batch per ``run()``."""

    def __init__(self, lab: LabCluster, workdir: Path, node: str, relay: bool):
        self.lab, self.workdir = lab, workdir
        self.commands, self.out = workdir / "commands", workdir / "victim.out"
        os.mkfifo(self.commands, 0o600)
        shutil.chown(self.commands, ALICE)
        python = str(lab.site.bin / "python")
        settings = NodeJobSettings(
            python=python, device_service=lab.layout.qpu_service_address_pattern if relay else None,
            qpu=ComponentSpec("qpu", gres="qpu:1", time_limit=10, extra=(f"--nodelist={node}",)))
        request = command_request(
            f"{python} {site_script(lab, 'victim.py')} --gateway <{self.commands} >{self.out} 2>{workdir}/victim.err",
            workflow="victim-wf", name="victim-node", workdir=workdir, settings=settings, quantum=True,
            env_base=lab.user_env(ALICE))
        as_user(lab, ALICE, "mkdir", "-p", str(workdir / "slurm"))
        submitted = as_user(lab, ALICE, "sbatch", "--parsable", "--export=ALL", input=render_script(request),
                            env=request.environment, cwd=workdir)
        assert submitted.returncode == 0, submitted.stderr
        self.job = submitted.stdout.strip()
        self.fd = wait_for(self._open_commands, 120, "alice's quantum node to start")
        self.session = self._line(0)["session"]
        (self.jobdir,) = workdir.glob(f"jobs/victim-node.{self.job}")
        self.gateway = (self.jobdir / "gateway.address").read_text().strip()
        self.lines = 1

    def _open_commands(self) -> int | None:
        try:
            return os.open(self.commands, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:  # ENXIO: the node has not opened its end yet
            if err.errno != errno.ENXIO:
                raise
            assert job_states(self.job).get(self.job) in ("PENDING", "RUNNING"), self.log()
            return None

    def _line(self, index: int) -> dict:
        line = wait_for(lambda: self.out.exists() and len(rows := self.out.read_text().splitlines()) > index
                        and rows[index], 120, f"line {index} of alice's node: {self.log()}")
        return json.loads(line)

    def log(self) -> str:
        err = self.workdir / "victim.err"
        return err.read_text()[-2000:] if err.exists() else ""

    def run(self) -> list:
        os.write(self.fd, b"run\n")
        self.lines += 1
        return self._line(self.lines - 1)["samples"]

    def close(self) -> dict[str, str]:
        os.write(self.fd, b"quit\n")
        os.close(self.fd)
        return wait_done(self.job, timeout=60)


class Attacker:
    """Bob's jobs: each runs one shell command in his private directory; results are JSON files there."""

    def __init__(self, lab: LabCluster, workdir: Path):
        self.lab, self.workdir = lab, workdir
        self.attacker = f"{lab.site.bin / 'python'} {site_script(lab, 'attacker.py')}"

    def submit(self, name: str, command: str, *where: str) -> str:
        submitted = as_user(self.lab, BOB, "sbatch", "--parsable", "-J", name, "-t", "10", "-n", "1", *where,
                            "-o", f"{self.workdir}/{name}.log", "--wrap", command, cwd=self.workdir)
        assert submitted.returncode == 0, submitted.stderr
        return submitted.stdout.strip()

    def result(self, job: str, name: str) -> dict:
        states = wait_done(job, timeout=300)
        assert states[job] == "COMPLETED", (self.workdir / f"{name}.log").read_text()[-3000:]
        return json.loads((self.workdir / f"{name}.json").read_text())


@pytest.mark.parametrize("gateway_kind", ["simulator", "relay"])
def test_attacker_with_jobs_on_the_site_gets_named_refusals(slurm_lab, lab_user_dir, reference, gateway_kind):
    relay = gateway_kind == "relay"
    node = slurm_lab.layout.qpu_node_names[0]
    resident = slurm_lab.qpu_service_address(node)
    started = time.time()  # the service's log is the lab session's: other tests' runs come before this one
    victim = VictimNode(slurm_lab, lab_user_dir(ALICE), node, relay)
    bob = Attacker(slurm_lab, lab_user_dir(BOB))
    try:
        samples = [victim.run()]
        denied = as_user(slurm_lab, BOB, "cat", str(victim.jobdir / "gateway.address"))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr  # he learns it elsewhere

        # On the cluster network: her gateway.
        on_cpu = bob.submit("on-cpu", f"{bob.attacker} gateway {shlex.quote(victim.gateway)} {victim.session} "
                                      ">on-cpu.json",
                            "-p", "cpu")
        # On her qpu host: the resident service (limits beyond its defaults), then his own relay.
        own_relay = (f"python -m hcqw.hetjob.gateway --address-file relay.address --upstream {resident} "
                     "--heartbeat-timeout 5 --connect-timeout 60 2>relay.log & relay=$!; "
                     "while [ ! -s relay.address ]; do sleep 0.1; done; "
                     f"{bob.attacker} control $(cat relay.address) >via-relay.json; kill $relay")
        # He cannot get onto her qpu host without the device (the qpu partition admits only jobs holding
        # gres/qpu, issue 24), so he goes at its resident service from a cpu host: its socket is on the
        # shared file system.
        refused = as_user(slurm_lab, BOB, "sbatch", "-p", "qpu", f"--nodelist={node}", "--wrap", "true",
                          cwd=bob.workdir)
        assert refused.returncode != 0 and "admits only jobs that hold the QPU" in refused.stderr, refused.stderr
        on_qpu_host = bob.submit(
            "on-qpu-host", f"set -e; {bob.attacker} probe {resident} {victim.session} sessions=70 message_mb=20 "
                           f"flood=0 >on-qpu-host.json; {own_relay}", "-p", "cpu")
        seen_from_cpu = bob.result(on_cpu, "on-cpu")
        probed = bob.result(on_qpu_host, "on-qpu-host")
        via_relay = json.loads((bob.workdir / "via-relay.json").read_text())
        samples.append(victim.run())

        samples.append(victim.run())
        if relay:
            with ServiceClient(resident) as operator:
                assert victim.session in {s["session"] for s in operator.status()["sessions"]}  # never expired
    finally:
        states = victim.close()
    assert samples == reference, "the victim's seeded samples changed under attack"
    assert states[victim.job] == "COMPLETED", victim.log()

    # Her gateway, from the cluster network: a relay gateway admits her node's client key alone, so his
    # handshake fails (issue 24); her own simulator's gateway refuses her session and control by name.
    if relay:
        assert seen_from_cpu == {"handshake": "refused"}, seen_from_cpu
    else:
        assert_status_hides(seen_from_cpu, (victim.session, *SECRETS))
        for type_ in ("run", "heartbeat", "reseed", "position", "close"):
            assert seen_from_cpu[f"victim/{type_}"] == P.E_FORBIDDEN, (type_, seen_from_cpu)
        assert seen_from_cpu["open"] == P.E_FORBIDDEN
        assert_control_refused(seen_from_cpu["control"], through_relay=False)

    # The resident service on her qpu host: her session (there in the relay case, unknown otherwise),
    # control in every form, claiming to be her, unbounded work.
    assert_status_hides(probed, (victim.session, *SECRETS))
    assert probed["status_operator_view"] is False
    for type_ in ("run", "heartbeat", "reseed", "position", "close"):
        assert probed[f"victim/{type_}"] == (P.E_FORBIDDEN if relay else P.E_NO_SESSION), (type_, probed)
    assert_control_refused(probed["control"], through_relay=False)
    assert_control_refused(via_relay, through_relay=True)
    # Without an allocation of the device he opens nothing, in his name or claiming hers (the work limits
    # behind the open are the one-host suite's, tests/service/test_attacks.py).
    assert probed["open_claiming_victim"] == P.E_FORBIDDEN and probed["own_open"] == P.E_FORBIDDEN, probed
    execs = [e for e in read_events(metrics_log(slurm_lab.layout, node), "exec") if e["end"] >= started]
    assert not [e for e in execs if e["workflow"] == "bob-wf" or e["user"] == BOB]
    assert {e["workflow"] for e in execs if e["user"] == ALICE} <= {"victim-wf"}
    with ServiceClient(resident) as operator:
        status = operator.status()
    assert (status["status"], status["policy"], status["draining"]) == ("idle", "fifo", False)
