"""A client chooses its session's priority, so the service caps it per user (issue 24, finding 8):
``hcqw-bob`` asks for the highest priority the protocol allows; ``hcqw-alice``, whom the operator
granted priority up to 5 (``--priority-grant``), asks for 5. With both queued while the device
calibrates, every one of alice's runs is served before bob's: his request counted as 0."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hcqw.lab.pytest_plugin import wait_for
from hcqw.metrics import read_events
from hcqw.service.client import ServiceClient
from tests.support.live import LiveService
from tests.support.unix_users import UnixUsers

HERE = Path(__file__).parent
RUNS = 3


@pytest.fixture
def priority_service(munged):
    directory = Path(tempfile.mkdtemp(prefix="hcqw-priority-"))
    directory.chmod(0o755)
    service = LiveService(directory, "tcp://127.0.0.1:*", "--auth", "munge", "--policy", "priority",
                          "--priority-grant", "hcqw-alice=5")
    yield service
    service.stop()
    shutil.rmtree(directory, ignore_errors=True)


def test_bobs_top_priority_is_capped_and_alices_granted_priority_goes_first(priority_service, two_users):
    address = priority_service.address
    with ServiceClient(address) as operator:
        operator.set_status("calibrating", "filling the queue")
        # bob first: in arrival order he would be served first, and he asks for the protocol's maximum.
        bob = two_users.popen("hcqw-bob", [str(HERE / "queue_runs.py"), "--priority", "1000000", address, str(RUNS),
                                           "b"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert bob.stdout.readline().strip() == "queued", bob.stderr.read()
            wait_for(lambda: operator.status()["queued"] == RUNS, 30, "bob's runs in the queue")
            alice = two_users.popen("hcqw-alice", [str(HERE / "queue_runs.py"), "--priority", "5", address,
                                                   str(RUNS), "a"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                assert alice.stdout.readline().strip() == "queued", alice.stderr.read()
                wait_for(lambda: operator.status()["queued"] == 2 * RUNS, 30, "every run in the queue")
                operator.set_status("idle")
                assert alice.wait(120) == 0 and bob.wait(120) == 0
            finally:
                UnixUsers.stop(alice)
        finally:
            UnixUsers.stop(bob)
            operator.set_status("idle")
    order = [e["user"] for e in sorted(read_events(priority_service.log, "exec"), key=lambda e: e["start"])]
    assert order == ["hcqw-alice"] * RUNS + ["hcqw-bob"] * RUNS
