"""Snakemake's own test base for executor plugins (``snakemake.common.tests``), run through
``--executor hcqw`` on the real lab cluster: every job of its workflows is a SLURM job."""

from __future__ import annotations

import pytest
from snakemake.common.tests import TestWorkflowsLocalStorageBase

from snakemake_executor_plugin_hcqw import ExecutorSettings

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


class TestWorkflowsOnSlurm(TestWorkflowsLocalStorageBase):
    __test__ = True

    @pytest.fixture(autouse=True)
    def _cluster(self, slurm_lab):
        """SLURM_CONF points at the lab cluster while the workflows run."""

    def get_executor(self) -> str:
        return "hcqw"

    def get_executor_settings(self) -> ExecutorSettings:
        return ExecutorSettings(backend="slurm", poll_interval=0.5)
