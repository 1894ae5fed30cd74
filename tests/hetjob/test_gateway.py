"""The gateway on its own (no SLURM): it exits when its one client dies, even by SIGKILL."""

from __future__ import annotations

import subprocess
import sys
import time

from hcqw.lab.pytest_plugin import wait_for

CLIENT = """
import sys, time
from hcqw.service.client import ServiceClient
client = ServiceClient(sys.argv[1])
client.session("wf", "q0001")
print("open", flush=True)
time.sleep(300)
"""


def test_gateway_exits_after_its_client_is_killed(tmp_path, munged):
    address_file = tmp_path / "gateway.address"
    gateway = subprocess.Popen([sys.executable, "-m", "hcqw.hetjob.gateway", "--address-file", str(address_file),
                                "--heartbeat-timeout", "2", "--simulator", "cirq"],
                               stderr=subprocess.PIPE, text=True)
    try:
        address = wait_for(lambda: address_file.exists() and address_file.read_text(), 60, "the gateway address")
        client = subprocess.Popen([sys.executable, "-c", CLIENT, address], stdout=subprocess.PIPE, text=True)
        assert client.stdout.readline().strip() == "open"
        client.kill()
        client.wait()
        killed = time.monotonic()
        gateway.wait(timeout=15)
        assert time.monotonic() - killed < 2 + 5  # heartbeat timeout, then the sweep and exit (slow under load)
        err = gateway.stderr.read()
        assert "the node's session ended" in err and "expired" in err
        assert not address_file.exists()  # the service removes it on close
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()


def test_a_gateway_without_session_deadline_waits_for_its_command_however_long():
    from hcqw.hetjob.gateway import GatewayConfig, _lifetime

    patient = _lifetime(lambda: False, GatewayConfig(address="", address_file="-", connect_timeout=0), 0.0)
    impatient = _lifetime(lambda: False, GatewayConfig(address="", address_file="-", connect_timeout=1e-9), 0.0)
    assert patient() is None
    assert impatient() == "no session opened within 1e-09 s"
