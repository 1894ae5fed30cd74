"""Typed, validated descriptions of what to submit.

A :class:`JobRequest` holds one :class:`ComponentSpec` (a plain job) or two
(a heterogeneous job: the cpu part first, then the qpu part). Validation runs
in ``__post_init__`` so a bad request fails where it is built, with a message
naming the field to fix, long before SLURM sees it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hcqw import environment
from hcqw.slurm.errors import SlurmSettingsError

# Environment variables that hold SLURM credentials. They are never written to
# a script nor exported to a job: besides leaking the secret, an exported
# SLURM_JWT makes srun inside the job try JWT auth, which slurmd rejects.
SECRET_ENV_VARS = frozenset({"SLURM_JWT", environment.SLURM_JWT})

# Options the request fields own, mapped to the field a caller must use
# instead. Matching both the long and the short spelling keeps an extra
# directive from silently overriding a validated field.
_MANAGED_OPTIONS: dict[str, str] = {
    "--partition": "ComponentSpec.partition",
    "-p": "ComponentSpec.partition",
    "--account": "ComponentSpec.account",
    "-A": "ComponentSpec.account",
    "--qos": "ComponentSpec.qos",
    "-q": "ComponentSpec.qos",
    "--time": "ComponentSpec.time_limit",
    "-t": "ComponentSpec.time_limit",
    "--nodes": "ComponentSpec.nodes",
    "-N": "ComponentSpec.nodes",
    "--ntasks": "ComponentSpec.ntasks",
    "-n": "ComponentSpec.ntasks",
    "--cpus-per-task": "ComponentSpec.cpus_per_task",
    "-c": "ComponentSpec.cpus_per_task",
    "--mem": "ComponentSpec.mem_mb",
    "--gres": "ComponentSpec.gres",
    "--job-name": "JobRequest.name",
    "-J": "JobRequest.name",
    "--comment": "JobRequest.comment",
    "--chdir": "JobRequest.workdir",
    "-D": "JobRequest.workdir",
    "--output": "JobRequest.output",
    "-o": "JobRequest.output",
    "--error": "JobRequest.error",
    "-e": "JobRequest.error",
    "--dependency": "JobRequest.dependencies",
    "-d": "JobRequest.dependencies",
    "--kill-on-invalid-dep": "JobRequest.kill_on_invalid_dependency",
    "--nice": "JobRequest.nice",
    "--export": "JobRequest.environment",
    "--parsable": "(set by the sbatch backend)",
    "--wrap": "JobRequest.body",
    "hetjob": "JobRequest.components (one entry per component)",
}

_GRES_ITEM = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(:[A-Za-z0-9_.-]+)?(:\d+)?$")
_TIME_FORMATS = [
    re.compile(p)
    for p in (
        r"^(?P<m>\d+)$",
        r"^(?P<m>\d+):(?P<s>\d+)$",
        r"^(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)$",
        r"^(?P<d>\d+)-(?P<h>\d+)$",
        r"^(?P<d>\d+)-(?P<h>\d+):(?P<m>\d+)$",
        r"^(?P<d>\d+)-(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)$",
    )
]
MAX_NICE = 2147483645  # SLURM's NICE_OFFSET - 3
_JOB_ID = re.compile(r"^\d+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_time_limit(value: int | str) -> int:
    """Return a SLURM time limit in whole minutes (seconds round up, as SLURM does).

    Accepts an int (minutes) or any sbatch ``--time`` spelling: ``MM``,
    ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``. Minutes
    are the common unit because slurmrestd only takes minutes.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SlurmSettingsError(f"ComponentSpec.time_limit must be minutes or a SLURM time string, got {value!r}")
    if isinstance(value, int):
        minutes = value
    else:
        for pattern in _TIME_FORMATS:
            match = pattern.match(value.strip())
            if match:
                parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
                seconds = parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
                minutes = -(-seconds // 60)
                break
        else:
            raise SlurmSettingsError(
                f"ComponentSpec.time_limit {value!r} is not a SLURM time: use minutes, MM:SS, HH:MM:SS or D-HH:MM:SS"
            )
    if minutes <= 0:
        raise SlurmSettingsError(f"ComponentSpec.time_limit must be positive, got {value!r}")
    return minutes


def _check_text(field_name: str, value: str, *, allow_space: bool = True) -> None:
    """Refuse characters that would break out of an ``#SBATCH`` line or its quoting."""
    if not value:
        raise SlurmSettingsError(f"{field_name} must not be empty")
    if any(c in value for c in "\n\r\x00\""):
        raise SlurmSettingsError(f"{field_name} must not contain newlines, NUL or double quotes: {value!r}")
    if not allow_space and any(c.isspace() for c in value):
        raise SlurmSettingsError(f"{field_name} must not contain whitespace: {value!r}")


def _check_positive(field_name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SlurmSettingsError(f"{field_name} must be a positive integer, got {value!r}")


def _option_name(directive: str) -> str:
    """The option part of ``--foo=bar``, ``--foo bar``, ``-pcpu`` (-> ``-p``) or ``hetjob``."""
    head = directive.split("=", 1)[0].split(None, 1)[0]
    if head.startswith("--"):
        return head
    if head.startswith("-") and len(head) >= 2:
        return head[:2]  # short options may be glued to their value: -pcpu
    return head


@dataclass(frozen=True)
class ComponentSpec:
    """Resources of one job component (the whole job when there is only one).

    ``time_limit`` takes minutes or a SLURM time string and is stored as
    minutes. ``extra`` holds further sbatch options (``--constraint=x``,
    ``--exclusive``); options that have a field here are refused so that
    validation cannot be bypassed. ``extra`` is sbatch-only: slurmrestd takes
    JSON fields, not sbatch options.
    """

    partition: str
    account: str | None = None
    qos: str | None = None
    time_limit: int | str | None = None
    nodes: int = 1
    ntasks: int = 1
    cpus_per_task: int = 1
    mem_mb: int | None = None
    gres: str | None = None
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_text("ComponentSpec.partition", self.partition, allow_space=False)
        for name in ("account", "qos"):
            value = getattr(self, name)
            if value is not None:
                _check_text(f"ComponentSpec.{name}", value, allow_space=False)
        if self.time_limit is not None:
            object.__setattr__(self, "time_limit", parse_time_limit(self.time_limit))
        for name in ("nodes", "ntasks", "cpus_per_task", "mem_mb"):
            _check_positive(f"ComponentSpec.{name}", getattr(self, name))
        if self.gres is not None:
            _check_text("ComponentSpec.gres", self.gres, allow_space=False)
            bad = [item for item in self.gres.split(",") if not _GRES_ITEM.match(item)]
            if bad:
                raise SlurmSettingsError(
                    f"ComponentSpec.gres {self.gres!r} is not a GRES request: expected name[:type][:count] "
                    f"items separated by commas, e.g. 'qpu:1' (bad item: {bad[0]!r})"
                )
        if isinstance(self.extra, str):
            raise SlurmSettingsError("ComponentSpec.extra must be a sequence of directives, not one string")
        object.__setattr__(self, "extra", tuple(self.extra))
        for directive in self.extra:
            _check_text("ComponentSpec.extra item", directive)
            if not directive.startswith("-"):
                raise SlurmSettingsError(
                    f"ComponentSpec.extra item {directive!r} is not an sbatch option (must start with '-')"
                )
            option = _option_name(directive)
            if option in _MANAGED_OPTIONS:
                raise SlurmSettingsError(
                    f"{option} is not allowed in ComponentSpec.extra ({directive!r}): "
                    f"use {_MANAGED_OPTIONS[option]} instead"
                )

    @property
    def wants_qpu(self) -> bool:
        """True when this component requests the quantum device GRES."""
        return self.gres is not None and any(item.split(":")[0] == "qpu" for item in self.gres.split(","))


TAG_PREFIX = "hcqw:"


def parse_tag(text: str | None) -> tuple[str, str] | None:
    """``'hcqw:<workflow_id>:<node>'`` (:attr:`JobRequest.tag`) -> ``(workflow_id, node)``; None for other text.

    Node names hold no ':' (they are path components), so the last ':' splits."""
    if not text or not text.startswith(TAG_PREFIX):
        return None
    workflow, sep, node = text[len(TAG_PREFIX):].rpartition(":")
    return (workflow, node) if sep and workflow and node else None


@dataclass(frozen=True)
class JobRequest:
    """One workflow node as a SLURM job: a plain job or a cpu+qpu hetjob.

    ``workflow_id`` and ``node`` identify the node; they give the default job
    name and comment ``hcqw:<workflow_id>:<node>``, which is what lets a later
    ``squeue``/``sacct`` tie a SLURM job back to its workflow node.

    ``components``: one entry for a plain job; two for a hetjob, the cpu part
    first. Order matters: cancelling component 0 ends the whole hetjob, so the
    part we release early (the qpu part) must be component 1.

    ``dependencies`` are job ids; they become ``afterok:<id>:<id>``. With
    ``kill_on_invalid_dependency`` a job whose dependency failed is cancelled
    instead of pending forever.

    ``environment`` is exported to the job. Credentials are refused here.

    ``nice`` lowers the job's scheduling priority by that much (SLURM's ``--nice``; under
    priority/basic one unit is one place in submit order). Only operators may set it negative.
    """

    workflow_id: str
    node: str
    body: str
    components: tuple[ComponentSpec, ...]
    workdir: Path
    name: str | None = None
    comment: str | None = None
    output: str | None = None
    error: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    kill_on_invalid_dependency: bool = True
    nice: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.nice, bool) or not isinstance(self.nice, int) or abs(self.nice) > MAX_NICE:
            raise SlurmSettingsError(f"JobRequest.nice must be an integer within +-{MAX_NICE} (SLURM's range), "
                                     f"got {self.nice!r}")
        _check_text("JobRequest.workflow_id", self.workflow_id, allow_space=False)
        _check_text("JobRequest.node", self.node, allow_space=False)
        for name in ("name", "comment", "output", "error"):
            value = getattr(self, name)
            if value is not None:
                _check_text(f"JobRequest.{name}", value, allow_space=name in ("comment", "output", "error"))
        if not self.body.strip():
            raise SlurmSettingsError("JobRequest.body is empty: nothing to run")
        if self.body.startswith("#!"):
            raise SlurmSettingsError("JobRequest.body must not start with a shebang: the script header is rendered for you")
        object.__setattr__(self, "workdir", Path(self.workdir))
        if not self.workdir.is_absolute():
            raise SlurmSettingsError(f"JobRequest.workdir must be an absolute path, got {str(self.workdir)!r}")
        _check_text("JobRequest.workdir", str(self.workdir))
        comps = tuple(self.components)
        object.__setattr__(self, "components", comps)
        if len(comps) not in (1, 2) or not all(isinstance(c, ComponentSpec) for c in comps):
            raise SlurmSettingsError(
                "JobRequest.components must hold one ComponentSpec (plain job) or two (hetjob: cpu part, then qpu part)"
            )
        if len(comps) == 2 and comps[0].wants_qpu:
            raise SlurmSettingsError(
                "JobRequest.components[0] requests the qpu GRES: in a hetjob the cpu part must come first, "
                "because cancelling component 0 ends the whole job and the qpu part is released early"
            )
        env = dict(self.environment)
        for key, value in env.items():
            if not isinstance(key, str) or not _ENV_NAME.match(key):
                raise SlurmSettingsError(f"JobRequest.environment has an invalid variable name: {key!r}")
            if key in SECRET_ENV_VARS:
                raise SlurmSettingsError(
                    f"JobRequest.environment must not contain {key}: credentials are never exported to jobs "
                    "(an exported SLURM_JWT also breaks srun inside the job)"
                )
            if not isinstance(value, str):
                raise SlurmSettingsError(f"JobRequest.environment[{key!r}] must be a string, got {type(value).__name__}")
        object.__setattr__(self, "environment", env)
        deps = tuple(str(d) for d in self.dependencies)
        bad = [d for d in deps if not _JOB_ID.match(d)]
        if bad:
            raise SlurmSettingsError(f"JobRequest.dependencies must be leader job ids like '1234', got {bad[0]!r}")
        object.__setattr__(self, "dependencies", deps)

    @property
    def tag(self) -> str:
        """``hcqw:<workflow_id>:<node>``: the identity written into name and comment."""
        return f"{TAG_PREFIX}{self.workflow_id}:{self.node}"

    @property
    def job_name(self) -> str:
        return self.name or self.tag

    @property
    def job_comment(self) -> str:
        return self.comment or self.tag

    @property
    def is_hetjob(self) -> bool:
        return len(self.components) == 2

    @property
    def output_pattern(self) -> str:
        """Where SLURM writes stdout; relative paths are relative to ``workdir``."""
        return self.output or f"hcqw-{self.node}-%j.out"

    @property
    def dependency_spec(self) -> str | None:
        """The ``--dependency`` value, or None without dependencies."""
        return "afterok:" + ":".join(self.dependencies) if self.dependencies else None
