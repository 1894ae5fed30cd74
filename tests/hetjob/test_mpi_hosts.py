"""The MPI DPM transport between two hosts: a quantum node's gateway on one, its client on the other.

The PyPI mpich (ch4:ucx) port string is a UCX worker address listing every transport of the
opening process. Two network namespaces of one machine share its boot id, so UCX would take
them for one host and pick shared memory, whose wire-up cannot cross namespaces: the client
then hangs in Connect. A quantum node's job script leaves shared memory out (``UCX_TLS``), so
the client connects over tcp on the other host's interface.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hcqw.hetjob.jobs import UCX_TLS_BETWEEN_HOSTS
from tests.support import ROOT
from tests.hetjob.hosts import two_hosts  # noqa: F401 - fixture

pytestmark = [pytest.mark.mpi, pytest.mark.slow]
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")

CLIENT = """
import sys
from hcqw.device.work import WorkItem
from hcqw.service.client import ServiceClient
from tests.support.loops import _bell_json
client = ServiceClient(sys.argv[1], timeout=30)
with client.session("wf-hosts", "q0001", seed=4) as qpu:
    (samples,) = qpu.run_batch([WorkItem(circuit=_bell_json(), repetitions=64, params=({},))])
client.close()
print("bell", sorted(set(samples[0]["m"].sum(axis=1).tolist())), len(samples[0]["m"]), flush=True)
"""


def test_node_on_one_host_reaches_its_mpi_gateway_on_another(two_hosts, tmp_path, munged):  # noqa: F811
    qpu_host, cpu_host = two_hosts
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env["UCX_TLS"] = UCX_TLS_BETWEEN_HOSTS  # as the job script sets it for both components
    address_file = tmp_path / "gateway.address"
    gateway_log = (tmp_path / "gateway.log").open("w")
    gateway = subprocess.Popen(qpu_host.command([
        MPIEXEC, "-launcher", "fork", "-n", "1", sys.executable, "-m", "hcqw.hetjob.gateway",
        "--address", f"mpi:file:{tmp_path}/gateway.port", "--address-file", str(address_file),
        "--simulator", "cirq", "--connect-timeout", "90"]), env=env, stdout=gateway_log, stderr=subprocess.STDOUT,
        start_new_session=True)
    client = None
    try:
        client = subprocess.Popen(cpu_host.command([MPIEXEC, "-launcher", "fork", "-n", "1", sys.executable, "-c",
                                                    CLIENT, f"mpi:file:{tmp_path}/gateway.port"]),
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        out, _ = client.communicate(timeout=90)  # hangs in Connect if UCX picks shared memory
        assert client.returncode == 0, out + (tmp_path / "gateway.log").read_text()
        assert "bell [0, 2] 64" in out  # both Bell outcomes, nothing else
        assert gateway.wait(timeout=30) == 0  # the session ended: the gateway stopped on its own
        assert "the node's session ended" in (tmp_path / "gateway.log").read_text()
    finally:
        for proc in (client, gateway):  # each its own process group: nsenter, mpiexec, proxy, rank
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        gateway_log.close()
