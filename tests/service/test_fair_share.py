"""Fair per real user (issue 14): with ``round-robin-user`` the device alternates between the
authenticated users that have work queued, however many workflows (or claimed names) each runs --
whether a user's sessions come to the service directly or through a job's relay gateway."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.live import LiveService
from tests.support.unix_users import UnixUsers

from hcqw.lab.pytest_plugin import wait_for
from hcqw.metrics import read_events
from hcqw.service.client import ServiceClient

HERE = Path(__file__).parent
RUNS = 3


@pytest.fixture
def fair_service(munged):
    directory = Path(tempfile.mkdtemp(prefix="hcqw-fair-"))
    directory.chmod(0o755)
    service = LiveService(directory, "tcp://127.0.0.1:*", "--auth", "munge", "--policy", "round-robin-user")
    yield service
    service.stop()
    shutil.rmtree(directory, ignore_errors=True)


HEAVY = ["a1", "a2", "a3", "a4"]  # hcqw-alice's workflows; hcqw-bob runs one


def test_a_user_with_four_workflows_gets_no_more_turns_than_a_user_with_one(fair_service, two_users):
    queue_and_run(fair_service.address, fair_service.address, two_users)
    assert_users_alternate(fair_service.log)


def test_a_relay_path_and_a_direct_path_share_the_device_by_the_same_rule(fair_service, two_users):
    # hcqw-alice's four workflows come through a relay gateway (hcqw.hetjob.relay, the qpu component's
    # path to a resident service) run as herself, hcqw-bob's one workflow straight to the service.
    relay_dir = Path(tempfile.mkdtemp(prefix="hcqw-fair-relay-"))
    shutil.chown(relay_dir, "hcqw-alice")
    address_file = relay_dir / "gateway.address"
    relay = two_users.popen("hcqw-alice", ["-m", "hcqw.hetjob.gateway", "--address-file", str(address_file),
                                           "--upstream", fair_service.address, "--heartbeat-timeout", "120",
                                           "--connect-timeout", "60"], stderr=subprocess.PIPE)
    try:
        relayed = wait_for(lambda: address_file.exists() and address_file.read_text(), 60, "the relay's address")
        queue_and_run(relayed, fair_service.address, two_users)
    finally:
        UnixUsers.stop(relay)
        shutil.rmtree(relay_dir, ignore_errors=True)
    assert_users_alternate(fair_service.log)


def queue_and_run(alice_address: str, bob_address: str, two_users: UnixUsers) -> None:
    """hcqw-alice queues ``RUNS`` runs per workflow of ``HEAVY`` at ``alice_address``, hcqw-bob ``RUNS`` of one
    workflow at ``bob_address``, while the service (``bob_address``) runs nothing; then it runs them all."""
    with ServiceClient(bob_address) as operator:
        operator.set_status("calibrating", "filling the queue")  # nothing runs until both users queued
        users = [two_users.popen("hcqw-alice", [str(HERE / "queue_runs.py"), alice_address, str(RUNS), *HEAVY],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE),
                 two_users.popen("hcqw-bob", [str(HERE / "queue_runs.py"), bob_address, str(RUNS), "b1"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)]
        try:
            for proc in users:
                assert proc.stdout.readline().strip() == "queued", proc.stderr.read()
            total = RUNS * (len(HEAVY) + 1)
            wait_for(lambda: operator.status()["queued"] == total, 30, "every run in the queue")
            operator.set_status("idle")
            for proc in users:
                assert proc.wait(120) == 0, proc.stderr.read()
        finally:
            for proc in users:
                UnixUsers.stop(proc)
            operator.set_status("idle")


def assert_users_alternate(log: Path) -> None:
    """hcqw-alice queued ``len(HEAVY) x RUNS`` runs, hcqw-bob ``RUNS``: they alternate while both have work."""
    order = [e["user"] for e in sorted(read_events(log, "exec"), key=lambda e: e["start"])]
    assert len(order) == RUNS * (len(HEAVY) + 1)
    # Alternating while both have work: bob's 3 runs are among the first 6, not behind alice's 12.
    assert order[:2 * RUNS] == ["hcqw-alice", "hcqw-bob"] * RUNS or order[:2 * RUNS] == ["hcqw-bob", "hcqw-alice"] * RUNS
    assert order[2 * RUNS:] == ["hcqw-alice"] * ((len(HEAVY) - 1) * RUNS), order
