"""A lab cluster with accounting (MariaDB + slurmdbd, gres/qpu tracked) for the ``hcqw usage`` tests.

``HCQW_TEST_LAB_ACCT_DIR``/``HCQW_TEST_LAB_ACCT_PORT`` move it (default /tmp/hcqw-pytest-lab-usage,
ports 7000..7010: the 6900-6999 range of the other lab fixtures has no 11 free ports left).
The accounting database outlives the cluster, so tests select their jobs by id or by a period
that starts with the test.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcqw import environment
from hcqw.lab import LabCluster
from hcqw.lab.pytest_plugin import own_lab
from tests.support import ROOT

LAB_ROOT = Path(os.environ.get(environment.TEST_LAB_ACCT_DIR, "/tmp/hcqw-pytest-lab-usage"))
PORT_BASE = int(os.environ.get(environment.TEST_LAB_ACCT_PORT, "7000"))


@pytest.fixture(scope="module")
def acct_lab() -> Iterator[LabCluster]:
    # 2 cpu nodes: 5 chains at once (fair share)
    yield from own_lab(LabCluster(LAB_ROOT, name="usageacct", port_base=PORT_BASE, cpu_nodes=2, accounting=True))


@pytest.fixture
def lab_env(acct_lab, monkeypatch) -> dict[str, str]:
    """SLURM clients (and ``hcqw usage``) in this process reach the accounting lab; jobs find this checkout."""
    for key, value in acct_lab.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return {**os.environ}
