"""Fair per real user (issue 14): with ``round-robin-user`` the device alternates between the
authenticated users that have work queued, however many workflows (or claimed names) each runs."""

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


def test_a_user_with_four_workflows_gets_no_more_turns_than_a_user_with_one(fair_service, two_users):
    address = fair_service.address
    heavy = ["a1", "a2", "a3", "a4"]
    with ServiceClient(address) as operator:
        operator.set_status("calibrating", "filling the queue")  # nothing runs until both users queued
        users = [two_users.popen("hcqw-alice", [str(HERE / "queue_runs.py"), address, str(RUNS), *heavy],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE),
                 two_users.popen("hcqw-bob", [str(HERE / "queue_runs.py"), address, str(RUNS), "b1"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)]
        try:
            for proc in users:
                assert proc.stdout.readline().strip() == "queued", proc.stderr.read()
            total = RUNS * (len(heavy) + 1)
            wait_for(lambda: operator.status()["queued"] == total, 30, "every run in the queue")
            operator.set_status("idle")
            for proc in users:
                assert proc.wait(120) == 0, proc.stderr.read()
        finally:
            for proc in users:
                UnixUsers.stop(proc)
            operator.set_status("idle")
    order = [e["user"] for e in sorted(read_events(fair_service.log, "exec"), key=lambda e: e["start"])]
    assert len(order) == RUNS * 5
    # Alternating while both have work: bob's 3 runs are among the first 6, not behind alice's 12.
    assert order[:2 * RUNS] == ["hcqw-alice", "hcqw-bob"] * RUNS or order[:2 * RUNS] == ["hcqw-bob", "hcqw-alice"] * RUNS
    assert order[2 * RUNS:] == ["hcqw-alice"] * (3 * RUNS)
