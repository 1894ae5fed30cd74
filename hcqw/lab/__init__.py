"""The local SLURM lab cluster: a real Slurm (22.05) on 127.0.0.1 for tests, CI and users.

``LabCluster`` (in :mod:`hcqw.lab.cluster`) is the API; ``hcqw lab up|down|status|env|token``
is the command line; :mod:`hcqw.lab.pytest_plugin` gives tests the ``slurm_lab`` fixtures.
"""

from hcqw.lab.cluster import LabCluster
from hcqw.lab.errors import LabError

__all__ = ["LabCluster", "LabError"]
