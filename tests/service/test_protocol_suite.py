"""Both transports pass the same protocol suite against a live service."""

from __future__ import annotations

import subprocess

import pytest

from live import MPIEXEC, SUITE, VENV_BIN, LiveService
from protocol_suite import run_suite


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
        assert "6/6 checks passed" in suite.stdout
    finally:
        service.stop()
