"""Two-cluster federation: run a quantum node on the QPU-side cluster (C2) from C1.

C1 holds the workflow's run directory; C2 is reached only through its slurmrestd with
the submitting user's JWT (``RestBackend``: the token stays in this process, sent only
as a header, so C2 runs and accounts the job as that user). The node's input checkpoint
is staged into a run directory on C2, the quantum node runs there as a cpu+qpu hetjob
exactly as on C1, and its output checkpoint is staged back and verified.

Staging is a ``Stager``; ``SharedFsStager`` copies between two paths both clusters can
see (a shared or mounted file system, as in the lab). A site without one plugs in a
transfer (scp, Globus...) with the same two methods.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from hcqw.checkpoint import copy_private, read_header
from hcqw.errors import WorkflowError
from hcqw.paths import slurm_output
from hcqw.slurm import NodeState, Phase, SlurmBackend
from hcqw.workflow import NodeKind, RunContext, load_loop, node_named

from hcqw.hetjob.chain import ChainFailed
from hcqw.hetjob.jobs import NodeJobSettings, node_request

log = logging.getLogger(__name__)


class Stager(Protocol):
    def stage_in(self, local: Path, remote: Path) -> None: ...
    def stage_out(self, remote: Path, local: Path) -> None: ...


class SharedFsStager:
    """Copy files between paths both clusters mount; each copy lands atomically and private (0600) like the original."""

    def stage_in(self, local: Path, remote: Path) -> None:
        copy_private(local, remote)

    def stage_out(self, remote: Path, local: Path) -> None:
        copy_private(remote, local)


@dataclass
class RemoteSite:
    """The QPU-side cluster: its REST backend, where runs live there, and the job environment there
    (e.g. its ``SLURM_CONF`` for the in-job ``scancel``; never a token)."""

    backend: SlurmBackend
    runs_dir: Path
    environment: Mapping[str, str]
    stager: Stager = field(default_factory=SharedFsStager)


def run_quantum_node_remote(site: RemoteSite, loop_ref: str, params: Mapping | None, ctx: RunContext, node_name: str,
                            settings: NodeJobSettings | None = None, timeout: float | None = None) -> NodeState:
    """Stage in, submit to C2, follow, stage the result back; return C2's record of the job.

    Raises ``ChainFailed`` (node, C2 job id, state, exit code, log path) if the job fails.
    """
    params = dict(params or {})
    loop = load_loop(loop_ref, params)
    node = node_named(loop, node_name)
    if node.kind is not NodeKind.QUANTUM:
        raise WorkflowError(f"{node_name!r} is not a quantum node of {loop_ref}")
    remote = RunContext(ctx.workflow, (Path(site.runs_dir) / ctx.workflow).absolute())
    for name in node.inputs:
        site.stager.stage_in(ctx.path(name), remote.path(name))
    slurm_output(remote.run_dir).mkdir(parents=True, exist_ok=True)
    settings = settings or NodeJobSettings()
    settings = replace(settings, environment={**settings.environment, **site.environment})
    request = node_request(node, loop_ref=loop_ref, params=params, workflow=ctx.workflow, run_dir=remote.run_dir,
                           settings=settings)
    job_id = site.backend.submit(request)
    log.info("%s/%s submitted to the QPU-side cluster as job %s", ctx.workflow, node.name, job_id)
    state = site.backend.wait(job_id, timeout=timeout)
    if state.phase is not Phase.COMPLETED:
        failure = site.backend.failure(state) if state.phase in (Phase.FAILED, Phase.CANCELLED) else None
        raise ChainFailed(ctx.workflow, node.name, job_id, state.state, state.exit_code,
                          failure.output_path if failure else None, node.inputs[0],
                          failure.output_tail if failure else "")
    site.stager.stage_out(remote.path(node.output), ctx.path(node.output))
    read_header(ctx.path(node.output), workflow=ctx.workflow)  # signed by us, for this workflow
    log.info("%s/%s: result checkpoint back in %s", ctx.workflow, node.name, ctx.path(node.output))
    return state
