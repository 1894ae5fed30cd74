"""Render a :class:`JobRequest` as an sbatch batch script.

The script holds resource directives and the body, nothing else: the job's
environment travels through sbatch's ``--export`` (or the REST ``environment``
field), so no value of it, and never a credential, is written to disk.
"""

from __future__ import annotations

from hcqw.slurm.settings import ComponentSpec, JobRequest


def _directive(option: str, value: object) -> str:
    text = str(value)
    # sbatch's #SBATCH parser honours double quotes; validation refused '"' itself.
    if any(c.isspace() for c in text):
        text = f'"{text}"'
    return f"#SBATCH {option}={text}"


def job_directives(request: JobRequest) -> list[str]:
    """Job-wide options: identity, working directory, output, dependencies, nice.

    They are written in component 0 only; sbatch applies them to the whole
    hetjob from there (``--nice`` included: every component gets it).
    """
    lines = [
        _directive("--job-name", request.job_name),
        _directive("--comment", request.job_comment),
        _directive("--chdir", request.workdir),
        _directive("--output", request.output_pattern),
    ]
    if request.error:
        lines.append(_directive("--error", request.error))
    if request.dependency_spec:
        lines.append(_directive("--dependency", request.dependency_spec))
        lines.append(_directive("--kill-on-invalid-dep", "yes" if request.kill_on_invalid_dependency else "no"))
    if request.nice:
        lines.append(_directive("--nice", request.nice))
    return lines


def component_directives(spec: ComponentSpec) -> list[str]:
    """Resource options of one component, in a stable order (diff-friendly)."""
    lines = [_directive("--partition", spec.partition)]
    if spec.account:
        lines.append(_directive("--account", spec.account))
    if spec.qos:
        lines.append(_directive("--qos", spec.qos))
    if spec.time_limit is not None:
        lines.append(_directive("--time", spec.time_limit))
    lines.append(_directive("--nodes", spec.nodes))
    lines.append(_directive("--ntasks", spec.ntasks))
    lines.append(_directive("--cpus-per-task", spec.cpus_per_task))
    if spec.mem_mb is not None:
        lines.append(_directive("--mem", f"{spec.mem_mb}M"))
    if spec.gres:
        lines.append(_directive("--gres", spec.gres))
    lines.extend(f"#SBATCH {extra}" for extra in spec.extra)
    return lines


def render_script(request: JobRequest) -> str:
    """The complete batch script: shebang, directives per component, body."""
    lines = ["#!/bin/bash"]
    for index, spec in enumerate(request.components):
        if index:
            lines.append("#SBATCH hetjob")
        else:
            lines.extend(job_directives(request))
        lines.extend(component_directives(spec))
    lines.append("")
    lines.append(request.body.rstrip("\n"))
    return "\n".join(lines) + "\n"
