"""The engine-neutral SLURM layer: describe, submit, follow and release jobs.

Both engine adapters (Snakemake, Parsl) use only what is exported here::

    from hcqw.slurm import ComponentSpec, JobRequest, open_backend

    backend = open_backend("slurm")                    # or "rest", url=..., token_file=...
    job_id = backend.submit(JobRequest(
        workflow_id="wf1", node="vqe-step-3", body="srun --het-group=1 -n1 ...",
        components=(ComponentSpec("cpu"), ComponentSpec("qpu", gres="qpu:1")),
        workdir=Path("/scratch/wf1"),
    ))
    backend.cancel_component(job_id, 1)                # early release of the qpu part
    state = backend.status([job_id])[job_id]           # NodeState, merged over components

Modules: ``settings`` (typed requests), ``script`` (batch script), ``states``
(merge rules), ``parsing`` (scontrol/sacct/REST records), ``status``
(rate-limited poller), ``sbatch`` and ``rest`` (backends), ``backend``
(where jobs run: ``BACKENDS``, ``check_backend``; the facade, and ``tail``/``resolve_output`` for job
logs), ``commands`` (``command_env``: a job environment without SLURM credentials), ``errors``.
"""

from hcqw.slurm.backend import BACKENDS, SlurmBackend, check_backend, open_backend, resolve_output, tail
from hcqw.slurm.commands import command_env
from hcqw.slurm.errors import (
    ControllerUnreachable,
    InvalidGres,
    JobFailed,
    JobNotFound,
    RestAuthError,
    RestServerError,
    SlurmError,
    SlurmSettingsError,
    SubmitError,
    UnknownPartition,
)
from hcqw.slurm.script import render_script
from hcqw.slurm.settings import ComponentSpec, JobRequest
from hcqw.slurm.states import ComponentInfo, NodeState, Phase, merge_components

__all__ = [
    "BACKENDS",
    "ComponentInfo",
    "ComponentSpec",
    "ControllerUnreachable",
    "InvalidGres",
    "JobFailed",
    "JobNotFound",
    "JobRequest",
    "NodeState",
    "Phase",
    "RestAuthError",
    "RestServerError",
    "SlurmBackend",
    "SlurmError",
    "SlurmSettingsError",
    "SubmitError",
    "UnknownPartition",
    "check_backend",
    "command_env",
    "merge_components",
    "open_backend",
    "render_script",
    "resolve_output",
    "tail",
]
