"""``HetjobSlurmProvider``: Parsl's ``ExecutionProvider`` contract on hcqw's SLURM layer.

A block is one SLURM job built by :func:`hcqw.hetjob.jobs.command_request`: a plain job on
the cpu partition, or with ``quantum=True`` a cpu+qpu hetjob whose component 0 runs the
block's command with the qpu component's gateway address exported
(``$HCQW_GATEWAY_ADDRESS_FILE``), and whose qpu component ends when the command closes its
device lease or exits. Submission, status and cancellation go through a core
:class:`hcqw.slurm.SlurmBackend` (``slurm`` or ``rest``); this module only translates.

Status is per leader id: SLURM tracks hetjob components as ``<id>+0`` and ``<id>+1``, and
:func:`hcqw.slurm.merge_components` folds them into one verdict (a qpu component cancelled
early while the leader completes is success). Records come from ``scontrol`` first and
``sacct`` only where accounting works (:class:`hcqw.slurm.status.CliStatusSource`), so the
provider works on clusters without slurmdbd.
"""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path
from typing import Any, Sequence

from parsl.jobs.states import JobState, JobStatus
from parsl.launchers import SimpleLauncher
from parsl.launchers.base import Launcher
from parsl.providers.base import ExecutionProvider
from parsl.providers.errors import SubmitException
from parsl.utils import RepresentationMixin

from hcqw.hetjob.jobs import NodeJobSettings, command_request, per_call_request
from hcqw.slurm import (
    ControllerUnreachable, NodeState, Phase, SlurmBackend, SlurmError, check_backend, open_backend, resolve_output,
)

log = logging.getLogger(__name__)

# SLURM states that end a job by the clock: Parsl expects TIMEOUT, not FAILED, for these
# (a pilot block reaching its walltime is normal and must not count as a broken provider).
_CLOCK_STATES = {"TIMEOUT", "DEADLINE", "PREEMPTED"}

_PHASES = {
    Phase.PENDING: JobState.PENDING,
    Phase.RUNNING: JobState.RUNNING,
    Phase.COMPLETED: JobState.COMPLETED,
    Phase.CANCELLED: JobState.CANCELLED,
    Phase.FAILED: JobState.FAILED,
    Phase.UNKNOWN: JobState.UNKNOWN,
}


def job_status(state: NodeState, stdout_path: str | None = None) -> JobStatus:
    """Parsl's view of one merged SLURM verdict."""
    job_state = _PHASES[state.phase]
    if state.phase is Phase.FAILED and state.state in _CLOCK_STATES:
        job_state = JobState.TIMEOUT
    message = None
    if state.phase in (Phase.FAILED, Phase.CANCELLED):
        message = f"SLURM job {state.failed_component or state.leader_id} ended {state.state}"
    elif state.released:
        message = f"qpu component released early ({state.leader_id}+{state.released[0]})"
    exit_code = state.exit_code if state.done else None
    return JobStatus(job_state, message=message, exit_code=exit_code, stdout_path=stdout_path, stderr_path=stdout_path)


class HetjobSlurmProvider(ExecutionProvider, RepresentationMixin):
    """Blocks as SLURM jobs: plain cpu jobs, or cpu+qpu hetjobs with ``quantum=True``.

    Parameters
    ----------
    quantum: each block is a hetjob (component 0 ``settings.cpu`` runs the command,
        component 1 ``settings.qpu`` runs the hcqw device gateway).
    per_call: each block is a cpu job whose quantum calls each get a qpu job of their own, shaped by
        ``settings.qpu`` (per-call holding, :func:`hcqw.hetjob.jobs.per_call_request`); not with ``quantum``.
    settings: resources, interpreter and gateway options of every block
        (:class:`hcqw.hetjob.jobs.NodeJobSettings`; ``settings.cpu.nodes`` is ``nodes_per_block``).
    backend: ``"slurm"`` (sbatch and the other SLURM tools on this cluster), ``"rest"`` (slurmrestd)
        or a ready backend, checked at once (:func:`hcqw.slurm.check_backend`);
        ``backend_options`` go to :func:`hcqw.slurm.open_backend` (e.g. ``env={"SLURM_CONF": ...}``,
        ``url=``, ``token_file=``).
    workflow: the ``workflow_id`` written into every job's name and comment (``hcqw:<workflow>:<block>``).
    workdir: where job output, job directories and QPU metrics go; default the DFK's
        ``submit_scripts`` directory (``script_dir``), which must be on a shared file system.
    """

    def __init__(
        self,
        *,
        quantum: bool = False,
        per_call: bool = False,
        settings: NodeJobSettings | None = None,
        backend: str | SlurmBackend = "slurm",
        backend_options: dict[str, Any] | None = None,
        workflow: str = "parsl",
        workdir: str | None = None,
        init_blocks: int = 1,
        min_blocks: int = 0,
        max_blocks: int = 1,
        parallelism: float = 1.0,
        worker_init: str = "",
        launcher: Launcher | None = None,
        status_polling_interval: float = 2.0,
    ):
        if isinstance(backend, str):
            check_backend(backend, backend_options, local=False)
        if quantum and per_call:
            raise ValueError("HetjobSlurmProvider: quantum (the qpu held for the block) and per_call (a qpu job per "
                             "quantum call) exclude each other")
        self.quantum = quantum
        self.per_call = per_call
        self.settings = settings or NodeJobSettings()
        self.backend_options = dict(backend_options or {})
        self.backend = backend
        self.workflow = workflow
        self.workdir = workdir
        self.init_blocks = init_blocks
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.parallelism = parallelism
        self.nodes_per_block = self.settings.cpu.nodes
        self.worker_init = worker_init
        self.launcher = launcher or SimpleLauncher()
        self._polling_interval = status_polling_interval
        self.script_dir: str | None = None
        self.cores_per_node: int | None = None
        self.mem_per_node: float | None = None
        self.resources: dict[str, dict[str, Any]] = {}
        self._backend: SlurmBackend | None = None

    @property
    def label(self) -> str:
        return "hetjob-slurm" if self.quantum else "per-call-slurm" if self.per_call else "hcqw-slurm"

    @property
    def status_polling_interval(self) -> float:
        return self._polling_interval

    @property
    def slurm(self) -> SlurmBackend:
        """The core backend (opened on first use, so that a Config can be built without SLURM)."""
        if self._backend is None:
            if isinstance(self.backend, str):
                options = {"poll_interval": min(self._polling_interval, 2.0), **self.backend_options}
                self._backend = open_backend(self.backend, **options)
            else:
                self._backend = self.backend
        return self._backend

    def _workdir(self) -> Path:
        where = self.workdir or self.script_dir
        if not where:
            raise SlurmError("HetjobSlurmProvider has no workdir: pass workdir= or load it through a Parsl DFK "
                             "(which sets script_dir)")
        return Path(where).absolute()

    def submit(self, command: str, tasks_per_node: int, job_name: str = "parsl.hcqw") -> str:
        """Submit one block running ``command`` (``tasks_per_node`` copies, via the launcher); return its job id."""
        workdir = self._workdir()
        # Block names become file names and job names: make them unique and whitespace-free.
        name = "".join(c if c.isalnum() or c in "._-" else "_" for c in job_name) + f".{time.time_ns() // 1_000_000}"
        body = self.launcher(command, tasks_per_node, self.nodes_per_block)
        if self.worker_init:
            body = f"{self.worker_init}\n{body}"
        if "\n" in body.strip():
            # command_request takes one command line; launchers and worker_init give scripts.
            body = "bash -c " + shlex.quote(body)
        if self.per_call:
            request = per_call_request(body, workflow=self.workflow, name=name, workdir=workdir, settings=self.settings)
        else:
            request = command_request(body, workflow=self.workflow, name=name, workdir=workdir, settings=self.settings,
                                      quantum=self.quantum)
        request.workdir.mkdir(parents=True, exist_ok=True)  # --chdir and --output need it to exist
        try:
            job_id = self.slurm.submit(request)
        except SlurmError as err:
            raise SubmitException(name, str(err)) from err
        stdout = resolve_output(request.output_pattern, request.workdir, job_id, request.job_name)
        self.resources[job_id] = {"job_id": job_id, "name": name, "stdout_path": stdout,
                                  "status": JobStatus(JobState.PENDING, stdout_path=stdout, stderr_path=stdout)}
        log.debug("block %s is SLURM job %s (%s)", name, job_id,
                  "hetjob" if self.quantum else "per-call" if self.per_call else "plain")
        return job_id

    def status(self, job_ids: Sequence[object]) -> list[JobStatus]:
        """One ``JobStatus`` per id, hetjob components merged; one SLURM query for all of them."""
        ids = [str(j) for j in job_ids]
        active = [j for j in ids if j not in self.resources or not self.resources[j]["status"].terminal]
        if active:
            try:
                states = self.slurm.status(active)
            except ControllerUnreachable as err:
                # slurmctld restarting: the jobs run on; report what was last seen and ask again next poll.
                log.warning("SLURM status unavailable, keeping the last known states: %s", err)
                return [self.resources[j]["status"] if j in self.resources else JobStatus(JobState.UNKNOWN)
                        for j in ids]
            for job_id in active:
                record = self.resources.setdefault(job_id, {"job_id": job_id, "stdout_path": None})
                record["status"] = job_status(states[job_id], record["stdout_path"])
        return [self.resources[j]["status"] for j in ids]

    def cancel(self, job_ids: Sequence[object]) -> list[bool]:
        """Cancel whole jobs (every component); True per job SLURM accepted the cancel for."""
        results = []
        for job_id in map(str, job_ids):
            try:
                self.slurm.cancel(job_id)
            except SlurmError as err:
                log.warning("could not cancel SLURM job %s: %s", job_id, err)
                results.append(False)
                continue
            record = self.resources.setdefault(job_id, {"job_id": job_id, "stdout_path": None})
            record["status"] = JobStatus(JobState.CANCELLED, stdout_path=record["stdout_path"])
            results.append(True)
        return results
