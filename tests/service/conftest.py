"""Live QPU services for the tests (see ``live.py``)."""

from __future__ import annotations

import pytest
from live import LiveService


@pytest.fixture(scope="module")
def tcp_service(tmp_path_factory):
    service = LiveService(tmp_path_factory.mktemp("tcp"), "tcp://127.0.0.1:*", "--session-timeout", "1.5")
    yield service
    service.stop()


@pytest.fixture
def ipc_service(tmp_path):
    service = LiveService(tmp_path, f"ipc://{tmp_path}/sock/qpu.ipc")
    yield service
    service.stop()
