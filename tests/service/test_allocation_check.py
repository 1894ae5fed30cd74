"""Issue 24, finding 1 on the multi-host lab: only jobs holding the QPU reach it.

``hcqw-bob`` attacks the resident QPU service of a qpu host, whose socket every user can reach
(the lab's hosts share a file system, as a site's often do): with no allocation at all, and with
a plain job on the qpu partition, which SLURM now refuses at submission. ``hcqw-alice`` opens a
session from her job holding ``gres/qpu`` and gets her seeded samples; once her allocation ends,
her session is closed with an error that says why, and she cannot open another.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from hcqw.lab import LabCluster
from hcqw.lab.pytest_plugin import wait_for
from hcqw.lab import users
from hcqw.lab.users import USERS
from hcqw.service import protocol as P
from hcqw.service.grants import LIVE_ANSWER_KEPT_S, Grants
from tests.support.lab_user import as_user, site_script
from tests.support.lab_jobs import job_states, wait_done

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("lab_munge")]
ALICE, BOB = USERS




def open_once(lab: LabCluster, user: str, address: str, *srun: str) -> list[dict]:
    """``open_session.py`` as ``user`` (inside ``srun ...`` if given): the open, then one run."""
    argv = [*srun, str(lab.site.bin / "python"), site_script(lab, "open_session.py"), address]
    done = as_user(lab, user, *argv, input="run\nquit\n")
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_qpu_partition_refuses_jobs_that_do_not_hold_the_qpu(slurm_lab, lab_user_dir):
    workdir = lab_user_dir(BOB)
    for extra in ((), ("--gres=qpu:0",), ("-n", "1")):
        refused = as_user(slurm_lab, BOB, "sbatch", "--parsable", "-p", "qpu", *extra, "--wrap", "true", cwd=workdir)
        assert refused.returncode != 0, (extra, refused.stdout)
        assert "admits only jobs that hold the QPU" in refused.stderr and "--gres=qpu:1" in refused.stderr, refused.stderr
    # A hetjob whose qpu component forgets the gres is refused whole.
    script = "#!/bin/sh\n#SBATCH -p cpu -n 1\n#SBATCH hetjob\n#SBATCH -p qpu -n 1\ntrue\n"
    refused = as_user(slurm_lab, BOB, "sbatch", "--parsable", input=script, cwd=workdir)
    assert refused.returncode != 0 and "admits only jobs that hold the QPU" in refused.stderr, refused.stderr
    # Holding the QPU is admitted.
    held = as_user(slurm_lab, BOB, "sbatch", "--parsable", "-p", "qpu", "--gres=qpu:1", "-t", "1", "--wrap", "true",
                   cwd=workdir)
    assert held.returncode == 0, held.stderr
    assert wait_done(held.stdout.strip(), timeout=120)[held.stdout.strip()] == "COMPLETED"


def test_only_a_job_holding_the_qpu_opens_a_session_and_loses_it_when_the_allocation_ends(slurm_lab, lab_user_dir):
    node = slurm_lab.layout.qpu_node_names[0]
    resident = slurm_lab.qpu_service_address(node)
    grants = Grants(slurm_lab.layout.grants_dir(node), slurm_lab.layout.spool / node)

    # Bob, no allocation: refused by name (the socket is reachable; the device is not).
    (bob_open,) = open_once(slurm_lab, BOB, resident)
    assert bob_open["code"] == P.E_FORBIDDEN, bob_open
    assert "holds no running allocation of gres/qpu" in bob_open["message"], bob_open

    # Alice, from her job holding the QPU on that host: served.
    earlier = set(grants.jobs())  # other tests' jobs on the host, if any: not hers
    inside = open_once(slurm_lab, ALICE, resident, "srun", "-p", "qpu", "--gres=qpu:1", f"--nodelist={node}",
                       "-t", "2", "-n", "1")
    assert [r["code"] for r in inside] == ["ok", "ok"] and len(inside[1]["samples"]) == 16, inside
    wait_for(lambda: set(grants.jobs()) <= earlier, 30, "her allocation's grant to go with the job")

    # Alice's allocation held by a job; she opens from elsewhere meanwhile (any process of hers), runs, and
    # the session is closed the moment the allocation ends.
    workdir = lab_user_dir(ALICE)
    held = as_user(slurm_lab, ALICE, "sbatch", "--parsable", "-p", "qpu", "--gres=qpu:1", f"--nodelist={node}",
                   "-t", "5", "--wrap", "sleep 300", cwd=workdir)
    assert held.returncode == 0, held.stderr
    job = held.stdout.strip()
    uid = int(as_user(slurm_lab, ALICE, "id", "-u").stdout)
    session = None
    try:
        wait_for(lambda: grants.jobs().get(job) == uid, 60, "the Prolog's grant for her job")
        session = subprocess.Popen(
            users.as_user(ALICE, [str(slurm_lab.site.bin / "python"), site_script(slurm_lab, "open_session.py"),
                                  resident]),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=slurm_lab.user_env(ALICE),
            cwd=slurm_lab.home(ALICE), umask=users.USER_UMASK, start_new_session=True)
        assert json.loads(session.stdout.readline())["code"] == "ok"
        session.stdin.write("run\n")
        session.stdin.flush()
        first = json.loads(session.stdout.readline())
        assert first["code"] == "ok", first
        # Bob, with her allocation running: still refused (it is hers, not his).
        (bob_again,) = open_once(slurm_lab, BOB, resident)
        assert bob_again["code"] == P.E_FORBIDDEN, bob_again
        subprocess.run(["scancel", job], check=True)
        # The Epilog's removal of her record, not only her step's end (which the service believes for up to
        # LIVE_ANSWER_KEPT_S): from then on her session is closed at the service's next check (every 50 ms).
        wait_for(lambda: not (grants.directory / job).exists(), 60, "the Epilog to remove her grant")
        wait_for(lambda: job_states(job).get(job) not in ("RUNNING", "COMPLETING"), 60, "her job to end")
        session.stdin.write("run\nquit\n")
        session.stdin.flush()
        after = json.loads(session.stdout.readline())
        session.wait(60)
    finally:
        subprocess.run(["scancel", job], check=False)
        if session is not None and session.poll() is None:
            os.killpg(session.pid, signal.SIGKILL)
            session.wait(10)
    assert after["code"] == P.E_FORBIDDEN, (after, grants.jobs())  # with whatever still holds the host
    assert "no longer holds an allocation of gres/qpu" in after["message"], after
    (reopen,) = open_once(slurm_lab, ALICE, resident)
    assert reopen["code"] == P.E_FORBIDDEN, reopen
    # Operators (root here) still reach status and see the device idle, nothing of hers left.
    from hcqw.service.client import ServiceClient

    with ServiceClient(resident) as operator:
        status = operator.status()
    assert status["operator_view"] is True and status["open_sessions"] == 0, status


def _on_host(lab: LabCluster, node: str, matches) -> list[int]:
    """PIDs on ``node`` (its network namespace: another lab's job may share an id) for which ``matches(pid)``."""
    inode = next(h for h in lab.hosts if h.name == node).netns_path.stat().st_ino
    found = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and os.stat(f"/proc/{entry.name}/ns/net").st_ino == inode and matches(entry.name):
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile
    return found


def _steps_of(lab: LabCluster, node: str, job: str) -> list[int]:
    """``job``'s slurmstepds on ``node``."""
    return _on_host(lab, node, lambda pid: open(f"/proc/{pid}/cmdline", "rb").read().startswith(
        f"slurmstepd: [{job}.".encode()))


def test_a_grant_left_by_a_host_that_died_under_the_job_lets_nobody_in(slurm_lab, lab_user_dir):
    """The qpu host's slurmd and the job's slurmstepd die at once (a crash): no Epilog runs, so the Prolog's
    record of her job stays. It must not keep the device hers: the service asks the host whether the job
    still runs a step there."""
    node = slurm_lab.layout.qpu_node_names[-1]
    resident = slurm_lab.qpu_service_address(node)
    grants_dir = slurm_lab.layout.grants_dir(node)
    held = as_user(slurm_lab, ALICE, "sbatch", "--parsable", "-p", "qpu", "--gres=qpu:1", f"--nodelist={node}",
                   "-t", "5", "--wrap", "sleep 300", cwd=lab_user_dir(ALICE))
    assert held.returncode == 0, held.stderr
    job = held.stdout.strip()
    try:
        wait_for(lambda: (grants_dir / job).exists() and _steps_of(slurm_lab, node, job), 60, "her job's step")
        served = open_once(slurm_lab, ALICE, resident)[0]
        assert served["code"] == "ok", served  # from any process of hers while her job runs there

        os.kill(slurm_lab.daemon_pids()[f"slurmd-{node}"], signal.SIGKILL)
        uid = int(as_user(slurm_lab, ALICE, "id", "-u").stdout)
        hers = _on_host(slurm_lab, node, lambda pid: os.stat(f"/proc/{pid}").st_uid == uid)  # her only job there
        for pid in _steps_of(slurm_lab, node, job) + hers:
            os.kill(pid, signal.SIGKILL)  # the job's stepd, then its script
        slurm_lab.up()  # slurmd back: it knows nothing of her job, so no Epilog will run for it
        assert (grants_dir / job).exists()  # the record a crash leaves
        time.sleep(LIVE_ANSWER_KEPT_S)  # the step's last live answer has expired
        after = open_once(slurm_lab, ALICE, resident)[0]
        assert after["code"] == P.E_FORBIDDEN and "holds no running allocation" in after["message"], after
    finally:
        subprocess.run(["scancel", job], check=False)
