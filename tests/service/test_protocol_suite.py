"""Both transports pass the same protocol suite against a live service."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.service.protocol_suite import CHECKS, run_suite
from tests.support import ROOT
from tests.support.live import MPIEXEC, SUITE, VENV_BIN, LiveService


def test_suite_over_zmq_tcp(tcp_service):
    assert run_suite(tcp_service.address) == []


def test_suite_over_zmq_ipc(ipc_service):
    assert run_suite(ipc_service.address) == []


@pytest.mark.mpi
@pytest.mark.slow
def test_suite_over_mpi_port_file(tmp_path):
    service = LiveService(tmp_path, f"mpi:file:{tmp_path}/qpu.port", mpi=True)
    try:
        suite = subprocess.run([str(MPIEXEC), "-n", "1", str(VENV_BIN / "python"), str(SUITE),
                                service.address], env=service.env, capture_output=True, text=True, timeout=120)
        assert suite.returncode == 0, suite.stdout + suite.stderr
        assert f"{len(CHECKS)}/{len(CHECKS)} checks passed" in suite.stdout
    finally:
        service.stop()


def _private_network_namespace() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0


@pytest.mark.mpi
@pytest.mark.slow
def test_suite_over_mpi_name_server(tmp_path):
    if not _private_network_namespace():
        pytest.skip("needs root, unshare and ip: hydra_nameserver binds every interface, so the test gives it "
                    "a private loopback-only network namespace")
    run = subprocess.run(["unshare", "--net", sys.executable, "-m", "tests.service.in_private_net", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(CHECKS)}/{len(CHECKS)} checks passed" in run.stdout
