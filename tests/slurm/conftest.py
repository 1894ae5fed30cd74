"""Lab clusters of the SLURM-layer tests, beyond the shared ``slurm_lab``/``slurm_lab_c2``.

Ports come from the test suite's 6900-6999 range, outside those used by
hcqw.lab's own fixtures and tests (6900-6911, 6930-6940, 6950-6960, 6980-6990).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcqw.lab import LabCluster


def _lab(root: str, name: str, port_base: int, **kw) -> Iterator[LabCluster]:
    if os.environ.get("HCQW_TEST_SLURM") == "0":
        pytest.skip("SLURM lab tests disabled (HCQW_TEST_SLURM=0)")
    lab = LabCluster(Path(root), name=name, port_base=port_base, cpu_nodes=1, **kw)
    lab.down()  # a crashed earlier run may have left it with another configuration
    lab.up(timeout=300)
    try:
        yield lab
    finally:
        lab.down()


@pytest.fixture
def slurm_acct_lab(slurm_lab_acct) -> LabCluster:
    """A cluster with slurmdbd, so that sacct really works (status then comes from sacct): the session's."""
    return slurm_lab_acct


@pytest.fixture
def throwaway_lab() -> Iterator[LabCluster]:
    """A cluster the test may break (e.g. stop its slurmctld)."""
    yield from _lab("/tmp/hcqw-pytest-slurm-throwaway", "throwaway", 6961)
