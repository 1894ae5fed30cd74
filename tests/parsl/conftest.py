"""Fixtures of the Parsl adapter tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support import ROOT


@pytest.fixture
def job_env(monkeypatch):
    """Jobs and worker pools find this checkout (apps import ``examples.parsl.apps``)."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
