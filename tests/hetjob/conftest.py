"""Shared helpers of the hetjob tests: a fast-polling sbatch backend and job environments
that find this checkout (job scripts import ``tests.support.loops``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from hcqw import environment
from hcqw.slurm import open_backend
from tests.support import ROOT
from tests.support.munge import PrivateMunged

POLL = 0.2


@pytest.fixture
def job_env(monkeypatch):
    """Jobs get PYTHONPATH (this checkout) and the per-test key/state paths from our environment."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


@pytest.fixture
def sbatch(slurm_lab, job_env):
    return open_backend("slurm", env=slurm_lab.env, poll_interval=POLL)


@pytest.fixture
def munged(monkeypatch):
    """The gateway authenticates its client with MUNGE: a private munged, for this test only (a lab's
    tests in the same session use the lab's)."""
    directory = Path(tempfile.mkdtemp(prefix="hcqw-munge-"))
    daemon = PrivateMunged(directory)
    monkeypatch.setenv(environment.MUNGE_SOCKET, str(daemon.socket))
    yield daemon
    daemon.stop()
    shutil.rmtree(directory, ignore_errors=True)
