"""Lab clusters of the lab's own tests, beyond the shared ``slurm_lab``/``slurm_lab_c2``.

Their port bases (which also name their networks) follow the main lab's:
``HCQW_TEST_LAB_PORT`` + 20 (a lab the tests start and stop themselves).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcqw.lab import LabCluster
from hcqw.lab.pytest_plugin import MAIN_PORT_BASE, MAIN_ROOT


def _skip_if_disabled() -> None:
    if os.environ.get("HCQW_TEST_SLURM") == "0":
        pytest.skip("SLURM lab tests disabled (HCQW_TEST_SLURM=0)")


@pytest.fixture
def small_lab() -> Iterator[LabCluster]:
    """A one-cpu, one-qpu lab that is NOT started: the test starts and stops it (and may break it)."""
    _skip_if_disabled()
    lab = LabCluster(Path(f"{MAIN_ROOT}-updown"), name="updown", port_base=MAIN_PORT_BASE + 20, cpu_nodes=1,
                     qpu_nodes=1)
    lab.down()  # a crashed earlier run may have left it running
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def acct_lab(slurm_lab_acct) -> LabCluster:
    """A running lab in accounting mode (slurmdbd, fair share, an account per user): the session's."""
    return slurm_lab_acct
