"""The lab: a real SLURM (22.05) site on one machine for tests, CI and users.

Hosts in network namespaces, two qpu nodes with resident QPU services, ordinary
users and a shared venv. ``LabCluster`` (in :mod:`hcqw.lab.cluster`) is the API;
``hcqw lab up|down|status|env|token|exec`` (``hcqw.cli.lab``) is the command line;
:mod:`hcqw.lab.pytest_plugin` gives tests the ``slurm_lab`` fixtures;
``hcqw/lab/site/`` holds the configuration fragments docs/site-guide.md shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hcqw.lab.cluster import LabCluster
    from hcqw.lab.errors import LabError

__all__ = ["LabCluster", "LabError"]


def __getattr__(name: str) -> Any:
    # Lazy, so `hcqw --help` (which imports hcqw.cli.lab) does not load the cluster code.
    if name == "LabCluster":
        from hcqw.lab.cluster import LabCluster

        return LabCluster
    if name == "LabError":
        from hcqw.lab.errors import LabError

        return LabError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
