"""A resident QPU service for tests, as an operator keeps one running on the qpu node."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from hcqw.lab.pytest_plugin import wait_for


@pytest.fixture
def resident(tmp_path):
    """A resident QPU service on a node-local ipc address, as an operator runs it on the qpu node."""
    address_file, log = tmp_path / "resident.address", tmp_path / "resident.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "hcqw.service", "serve", "--address",
                             f"ipc://{tmp_path}/resident/qpu.ipc", "--backend", "cirq", "--threads", "1",
                             "--log", str(log), "--address-file", str(address_file)],
                            stderr=(tmp_path / "resident.err").open("w"), start_new_session=True)
    try:
        address = wait_for(lambda: address_file.exists() and address_file.read_text(), 60, "the resident service")
        yield address, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
