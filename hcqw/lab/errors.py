"""Errors of the lab cluster."""

from __future__ import annotations

from hcqw.errors import HcqwError


class LabError(HcqwError):
    """The lab cluster cannot be installed, configured, started or stopped.

    The message always says what failed and what to do next (usually which
    log file to read). It never contains secrets (JWT key, tokens).
    """


class LabConfigChanged(LabError):
    """``up()`` found the cluster running with a different configuration (call ``down()`` first)."""
