"""Resident QPU services for tests, as an operator keeps one running on each qpu node."""

from __future__ import annotations

import pytest

from hcqw.slurm.commands import run_slurm
from tests.support.live import LiveService


@pytest.fixture
def resident(tmp_path):
    """A resident QPU service on a node-local ipc address: (address, its metrics log)."""
    home = tmp_path / "resident"
    home.mkdir()
    service = LiveService(home, f"ipc://{home}/qpu.ipc", "--simulator", "cirq")
    try:
        yield service.address, service.log
    finally:
        service.stop()


@pytest.fixture
def resident_per_host(slurm_lab, tmp_path):
    """One resident service per qpu node of the lab, at ``hosts/<node>/qpu.ipc``: (the address with ``%n``
    for the node's name, {node: its LiveService})."""
    nodes = run_slurm(["sinfo", "-h", "-N", "-p", "qpu", "-o", "%N"], env=slurm_lab.env).stdout.split()
    services = []
    try:
        for node in nodes:
            home = tmp_path / "hosts" / node
            home.mkdir(parents=True)
            services.append(LiveService(home, f"ipc://{home}/qpu.ipc", "--simulator", "cirq"))
        yield f"ipc://{tmp_path}/hosts/%n/qpu.ipc", dict(zip(nodes, services))
    finally:
        for service in services:
            service.stop()
