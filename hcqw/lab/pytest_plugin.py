"""Pytest fixtures for the SLURM lab cluster (enable with ``pytest_plugins = ["hcqw.lab.pytest_plugin"]``).

- ``slurm_lab``: the main cluster (root /tmp/hcqw-pytest-lab, ports 6900..6911),
  started once per session; ``os.environ`` gets ``lab.env`` (SLURM_CONF) for the
  session so plain ``sbatch``/``squeue`` calls reach it.
- ``slurm_lab_c2``: an independent second cluster "qpuside" (the QPU-side
  cluster of a two-cluster federation; root /tmp/hcqw-pytest-lab-c2, ports
  6950..6960). It does NOT touch os.environ: pass ``slurm_lab_c2.env``.

``HCQW_TEST_SLURM=0`` skips tests that use them. Otherwise a cluster that does
not start is a test *error* (never a silent skip): CI must notice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hcqw.lab.cluster import LabCluster
from hcqw.lab.errors import LabConfigChanged

MAIN_ROOT = Path("/tmp/hcqw-pytest-lab")
MAIN_PORT_BASE = 6900
C2_ROOT = Path("/tmp/hcqw-pytest-lab-c2")
C2_PORT_BASE = 6950
C2_NAME = "qpuside"


def _skip_if_disabled() -> None:
    if os.environ.get("HCQW_TEST_SLURM") == "0":
        pytest.skip("SLURM lab tests disabled (HCQW_TEST_SLURM=0)")


def _start(lab: LabCluster) -> None:
    try:
        lab.up()
    except LabConfigChanged:
        # A crashed earlier session left the cluster running with another configuration
        # (e.g. older hcqw). These roots belong to the test suite: restart it.
        lab.down()
        lab.up()


@pytest.fixture(scope="session")
def slurm_lab() -> Iterator[LabCluster]:
    """The session's main lab cluster; SLURM_CONF in os.environ points at it."""
    _skip_if_disabled()
    lab = LabCluster(MAIN_ROOT, port_base=MAIN_PORT_BASE)
    _start(lab)
    saved = {key: os.environ.get(key) for key in lab.env}
    os.environ.update(lab.env)
    try:
        yield lab
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        lab.down()


@pytest.fixture(scope="session")
def slurm_lab_c2() -> Iterator[LabCluster]:
    """A second, independent cluster ("qpuside", 1 cpu node); use ``slurm_lab_c2.env`` explicitly."""
    _skip_if_disabled()
    lab = LabCluster(C2_ROOT, name=C2_NAME, port_base=C2_PORT_BASE, cpu_nodes=1)
    _start(lab)
    try:
        yield lab
    finally:
        lab.down()
