"""A Snakemake job's ``resources`` as SLURM components, the way Snakemake users expect them.

The names and rules follow snakemake-executor-plugin-slurm, so a rule written for it
keeps its meaning here. They shape the cpu component of a quantum job (the qpu
component keeps its small fixed request) and the whole of a plain job.

=====================  ===============================================================
resource               SLURM
=====================  ===============================================================
``qpu`` > 0            a cpu+qpu hetjob (qpu component: ``--hcqw-qpu-partition/-gres``)
``qpu="per-call"``     a cpu job whose quantum calls (each ``open_qpu`` lease) each get a
                       qpu job of their own (``--hcqw-qpu-partition/-gres``), as
                       ``hcqw slurm submit`` runs a driver script
``runtime`` (minutes)  ``--time`` (both components unless ``--hcqw-qpu-runtime``)
``mem_mb``             ``--mem``
``mem_mb_per_cpu``     ``--mem-per-cpu``; wins over ``mem_mb`` (with a warning) when both
                       are set, as in the SLURM plugin: profiles often give every rule a
                       ``mem_mb`` through ``--default-resources``
``cpus_per_task``      ``--cpus-per-task`` (default: the rule's threads)
``nodes``              ``--nodes``
``tasks``              ``--ntasks`` (MPI ranks in all)
``tasks_per_node``     ``--ntasks-per-node`` (and ``--ntasks`` = nodes x tasks_per_node);
                       not together with ``tasks``
``gpu``/``gpu_model``  ``--gpus=[model:]N`` (GPUs in all, as the SLURM plugin asks)
``gres``               ``--gres`` (not with ``gpu``; the QPU is asked with ``qpu``)
``slurm_partition``    ``--partition`` (default ``--hcqw-cpu-partition``)
``slurm_account``      ``--account`` (both components)
``qos``                ``--qos`` (both components)
``constraint``         ``--constraint``
``slurm_extra``        further sbatch options (backend slurm; hcqw refuses the options above)
=====================  ===============================================================

``mem_mb_per_cpu``, ``tasks_per_node``, ``gpu``, ``constraint`` and ``slurm_extra`` become
sbatch options, which the slurmrestd backend cannot send: with ``--hcqw-backend rest`` they
are refused before submission.
"""

from __future__ import annotations

import functools
import logging
import re
import shlex
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hcqw.environment import PER_CALL
from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.slurm import ComponentSpec

from snakemake_executor_plugin_hcqw.settings import ExecutorSettings

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.,=+-]+")
_WORD = re.compile(r"^[A-Za-z0-9_.-]+$")

# sbatch options a resource owns: in slurm_extra they would fight the resource's value
# (sbatch takes the last one) or, for --ntasks-per-node, lose to the rendered --ntasks.
_ALWAYS_OWNED = {"--mem-per-cpu": "mem_mb_per_cpu", "--ntasks-per-node": "tasks_per_node"}
_OWNED_WHEN_SET = {"--gpus": "gpu", "-G": "gpu", "--constraint": "constraint", "-C": "constraint"}


def _whole(resources: Mapping[str, Any], name: str, *, minimum: int, zero_unsets: bool = False) -> int | None:
    """A whole-number resource, None when unset (or 0 with ``zero_unsets``); a named error otherwise."""
    value = resources.get(name)
    if value is None or value == "":
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        number = int(value)
    if number is None:
        raise ValueError(f"resource {name} must be a whole number, got {value!r}")
    if number == 0 and zero_unsets:
        return None
    if number < minimum:
        raise ValueError(f"resource {name} must be a whole number >= {minimum}, got {value!r}")
    return number


def per_call(resources: Mapping[str, Any]) -> bool:
    """Whether a job runs with per-call holding (``resources: qpu="per-call"``, the word of ``HCQW_DEVICE``)."""
    return resources.get("qpu") == PER_CALL


def qpu_count(resources: Mapping[str, Any]) -> int:
    """How many QPUs a job holds for its whole block (``resources: qpu=1``); 0 for classical and per-call jobs."""
    if per_call(resources):
        return 0
    value = resources.get("qpu")
    if isinstance(value, str) and not re.fullmatch(r"\s*[+-]?\d*\s*", value):
        raise ValueError(f"resource qpu must be a whole number (qpu=1: the QPU held for the job's block) or "
                         f"{PER_CALL!r} (each quantum call its own qpu job), got {value!r}")
    return _whole(resources, "qpu", minimum=0) or 0


def _optional_text(resources: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = resources.get(name)
        if value not in (None, ""):
            return str(value)
    return None


@functools.lru_cache(maxsize=64)
def _warn_memory_rule(per_cpu: int, mem_mb: int) -> None:
    """Once per pair of values: a profile's default mem_mb would otherwise warn for every job of a rule."""
    log.warning("resources mem_mb_per_cpu=%d and mem_mb=%d: mem_mb_per_cpu wins (--mem-per-cpu=%dM, no --mem), "
                "as in snakemake-executor-plugin-slurm; SLURM takes only one of them", per_cpu, mem_mb, per_cpu)


def _gpus(resources: Mapping[str, Any]) -> str | None:
    """The ``--gpus`` value of ``gpu``/``gpu_model``, None without GPUs."""
    count = _whole(resources, "gpu", minimum=0)
    model = _optional_text(resources, "gpu_model")
    if model is not None and not _WORD.match(model):
        raise ValueError(f"resource gpu_model must be a GPU type name like 'a100', got {model!r}")
    if not count:
        if model is not None:
            raise ValueError(f"resource gpu_model={model!r} needs gpu (how many GPUs), e.g. gpu=1")
        return None
    return f"{model}:{count}" if model else str(count)


def _tasks(resources: Mapping[str, Any], nodes: int | None) -> tuple[int, int | None]:
    """``--ntasks`` and ``--ntasks-per-node`` (or None) of the tasks/tasks_per_node resources."""
    tasks = _whole(resources, "tasks", minimum=1)
    per_node = _whole(resources, "tasks_per_node", minimum=1)
    if tasks is not None and per_node is not None:
        raise ValueError(f"resources tasks={tasks} and tasks_per_node={per_node} are both set: give tasks "
                         "(ranks in all) or tasks_per_node (ranks on each node), not both, as in "
                         "snakemake-executor-plugin-slurm")
    if per_node is not None:
        # hcqw always writes --ntasks; the product keeps SLURM's per-node layout exact.
        return (nodes or 1) * per_node, per_node
    return tasks or 1, None


def job_settings(resources: Mapping[str, Any], threads: int, settings: ExecutorSettings,
                 base: NodeJobSettings) -> NodeJobSettings:
    """``base`` with the cpu (and qpu) component built from one job's resources."""
    runtime = _whole(resources, "runtime", minimum=1, zero_unsets=True)
    account = _optional_text(resources, "slurm_account", "account")
    qos = _optional_text(resources, "qos", "slurm_qos")
    nodes = _whole(resources, "nodes", minimum=1)
    ntasks, per_node = _tasks(resources, nodes)
    mem_mb = _whole(resources, "mem_mb", minimum=1, zero_unsets=True)
    per_cpu = _whole(resources, "mem_mb_per_cpu", minimum=1, zero_unsets=True)
    if per_cpu is not None and mem_mb is not None:
        _warn_memory_rule(per_cpu, mem_mb)
        mem_mb = None
    gpus = _gpus(resources)
    gres = _optional_text(resources, "gres")
    if gres is not None and gpus is not None:
        raise ValueError(f"resources gres={gres!r} and gpu are both set: ask GPUs with gpu/gpu_model or with gres, "
                         "not both")
    if gres is not None and "qpu" in {item.split(":")[0] for item in gres.split(",")}:
        raise ValueError(f"resource gres={gres!r} asks for the QPU: use resources qpu=1, which adds the qpu "
                         "component and its gateway")
    constraint = _optional_text(resources, "constraint")

    slurm_extra = shlex.split(str(resources.get("slurm_extra") or ""))
    owned = dict(_ALWAYS_OWNED)
    owned.update({opt: res for opt, res in _OWNED_WHEN_SET.items() if resources.get(res) not in (None, "", 0)})
    for item in slurm_extra:
        option = item.split("=", 1)[0]
        option = option if option.startswith("--") else option[:2]
        if option in owned:
            raise ValueError(f"{option} is not allowed in resource slurm_extra ({item!r}): use the "
                             f"{owned[option]} resource instead")
    # (sbatch option, the resource it comes from) for what ComponentSpec has no field for.
    generated = [(option, name) for option, name, value in (
        (f"--mem-per-cpu={per_cpu}M", "mem_mb_per_cpu", per_cpu),
        (f"--ntasks-per-node={per_node}", "tasks_per_node", per_node),
        (f"--gpus={gpus}", "gpu", gpus),
        (f"--constraint={constraint}", "constraint", constraint),
    ) if value]
    if settings.backend == "rest" and (generated or slurm_extra):
        names = [name for _, name in generated] + (["slurm_extra"] if slurm_extra else [])
        raise ValueError(f"resource(s) {', '.join(names)} become sbatch options, which slurmrestd does not take: "
                         "use --hcqw-backend slurm, or drop them from the rule")
    cpu = ComponentSpec(
        partition=_optional_text(resources, "slurm_partition") or settings.cpu_partition,
        account=account,
        qos=qos,
        time_limit=runtime,
        nodes=nodes or 1,
        ntasks=ntasks,
        cpus_per_task=_whole(resources, "cpus_per_task", minimum=1, zero_unsets=True) or max(1, int(threads)),
        mem_mb=mem_mb,
        gres=gres,
        extra=tuple(slurm_extra + [option for option, _ in generated]),
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
