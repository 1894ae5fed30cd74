"""The session's accounting lab (``slurm_lab_acct``: MariaDB + slurmdbd, gres/qpu tracked) for the ``hcqw usage``
tests. Its accounting database outlives the cluster and other tests share it, so tests select their jobs by id
or by a period that starts with the test.
"""

from __future__ import annotations

import os

import pytest

from hcqw.lab import LabCluster
from tests.support import ROOT


@pytest.fixture
def acct_lab(slurm_lab_acct) -> LabCluster:
    return slurm_lab_acct  # 2 cpu nodes: 5 chains at once (fair share)


@pytest.fixture
def lab_env(acct_lab, monkeypatch) -> dict[str, str]:
    """SLURM clients (and ``hcqw usage``) in this process reach the accounting lab; jobs find this checkout."""
    for key, value in acct_lab.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    return {**os.environ}
