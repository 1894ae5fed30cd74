"""A Snakemake job's ``resources`` as SLURM components, the way Snakemake users expect them.

=====================  ===============================================================
resource               SLURM
=====================  ===============================================================
``qpu`` > 0            a cpu+qpu hetjob (qpu component: ``--hcqw-qpu-partition/-gres``)
``runtime`` (minutes)  ``--time`` (both components unless ``--hcqw-qpu-runtime``)
``mem_mb``             ``--mem`` (cpu component)
``cpus_per_task``      ``--cpus-per-task`` (default: the rule's threads)
``slurm_partition``    ``--partition`` (default ``--hcqw-cpu-partition``)
``slurm_account``      ``--account`` (both components)
``qos``                ``--qos`` (both components)
``constraint``         ``--constraint`` (cpu component)
``slurm_extra``        further sbatch options (sbatch backend; hcqw refuses the options above)
=====================  ===============================================================
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.slurm import ComponentSpec

from snakemake_executor_plugin_hcqw.settings import ExecutorSettings

_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+-]+")


def qpu_count(resources: Mapping[str, Any]) -> int:
    """How many QPUs a job asked for (``resources: qpu=1``); 0 for classical jobs."""
    value = resources.get("qpu") or 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"resource qpu must be a whole number, got {value!r}") from None


def _optional_int(resources: Mapping[str, Any], name: str) -> int | None:
    value = resources.get(name)
    if value in (None, "", 0):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"resource {name} must be a whole number, got {value!r}") from None


def _optional_text(resources: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = resources.get(name)
        if value not in (None, ""):
            return str(value)
    return None


def job_settings(resources: Mapping[str, Any], threads: int, settings: ExecutorSettings,
                 base: NodeJobSettings) -> NodeJobSettings:
    """``base`` with the cpu (and qpu) component built from one job's resources."""
    runtime = _optional_int(resources, "runtime")
    account = _optional_text(resources, "slurm_account", "account")
    qos = _optional_text(resources, "qos", "slurm_qos")
    extra = shlex.split(str(resources.get("slurm_extra") or ""))
    constraint = _optional_text(resources, "constraint")
    if constraint:
        extra.append(f"--constraint={constraint}")
    cpu = ComponentSpec(
        partition=_optional_text(resources, "slurm_partition") or settings.cpu_partition,
        account=account,
        qos=qos,
        time_limit=runtime,
        cpus_per_task=_optional_int(resources, "cpus_per_task") or max(1, int(threads)),
        mem_mb=_optional_int(resources, "mem_mb"),
        extra=tuple(extra),
    )
    qpu = ComponentSpec(
        partition=settings.qpu_partition,
        account=account,
        qos=qos,
        time_limit=settings.qpu_runtime or runtime,
        gres=settings.qpu_gres,
    )
    return replace(base, cpu=cpu, qpu=qpu)


def path_part(text: str) -> str:
    """``text`` usable as one path component and in a SLURM job name (no '/', spaces or quotes)."""
    return _UNSAFE.sub("_", text).strip("_") or "_"


def wildcards_part(wildcards: Mapping[str, Any]) -> str:
    """``it=0003,sample=a`` for a job's wildcards, ``all`` for none: the log directory of a job."""
    if not wildcards:
        return "all"
    return path_part(",".join(f"{key}={value}" for key, value in wildcards.items()))
