"""Lab clusters of the SLURM-layer tests, beyond the shared ``slurm_lab``/``slurm_lab_c2``.

The throwaway lab's ports start at ``MAIN_PORT_BASE + 61`` (6961 for the first xdist worker), clear of the
session labs' (hcqw.lab.pytest_plugin), and its root sits beside the main lab's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcqw.lab import LabCluster
from hcqw.lab.pytest_plugin import MAIN_PORT_BASE, MAIN_ROOT


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
    yield from _lab(f"{MAIN_ROOT}-throwaway", "throwaway", MAIN_PORT_BASE + 61)
