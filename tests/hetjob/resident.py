"""A resident QPU service for tests, as an operator keeps one running on the qpu node."""

from __future__ import annotations

import pytest

from tests.service.live import LiveService


@pytest.fixture
def resident(tmp_path):
    """A resident QPU service on a node-local ipc address: (address, its metrics log)."""
    home = tmp_path / "resident"
    home.mkdir()
    service = LiveService(home, f"ipc://{home}/qpu.ipc", "--backend", "cirq")
    try:
        yield service.address, service.log
    finally:
        service.stop()
