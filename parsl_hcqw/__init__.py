"""Parsl adapter of hcqw: ``@python_app(executors=["qpu"])`` apps on a shared quantum device.

- :func:`hcqw_config`: a ``parsl.config.Config`` with executors ``cpu`` and ``qpu``, embedded
  (this machine) or on SLURM (each qpu app a hetjob holding the qpu node only while it runs);
- :func:`hcqw_parsl`: the context manager that loads it and always cleans up;
- :class:`HetjobSlurmProvider`: Parsl's ``ExecutionProvider`` for plain and cpu+qpu hetjob
  blocks over hcqw's SLURM backends, usable with any block executor (e.g. HTEX);
- :class:`QpuJobExecutor`, :class:`QpuSession`: the ``qpu`` executor and its session option.

Glue only: jobs, states, the device and checkpoints are core ``hcqw``.
"""

from parsl_hcqw.config import hcqw_config
from parsl_hcqw.executor import QpuAppLost, QpuJobExecutor, QpuSession
from parsl_hcqw.lifecycle import hcqw_parsl
from parsl_hcqw.provider import HetjobSlurmProvider

__all__ = ["HetjobSlurmProvider", "QpuAppLost", "QpuJobExecutor", "QpuSession", "hcqw_config", "hcqw_parsl"]
