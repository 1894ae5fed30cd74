"""Shared helpers of the hetjob tests: a fast-polling sbatch backend and job environments
that find this checkout (job scripts import ``tests.support.loops``)."""

from __future__ import annotations

import pytest

from hcqw.slurm import open_backend
from tests.support import ROOT

POLL = 0.2


@pytest.fixture
def job_env(monkeypatch):
    """Jobs get PYTHONPATH (this checkout) and the per-test key/state paths from our environment."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


@pytest.fixture
def sbatch(slurm_lab, job_env):
    return open_backend("slurm", env=slurm_lab.env, poll_interval=POLL)

