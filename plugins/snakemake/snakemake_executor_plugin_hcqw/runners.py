"""Where the executor's jobs run: this machine (``local``) or SLURM (``slurm``, ``rest``).

A runner starts Snakemake's job command, reports which jobs have ended (and how) and
cancels jobs; the executor does the rest. All SLURM work is core ``hcqw``: the job
(a plain cpu job, or a cpu+qpu hetjob that frees the qpu node when the quantum block
ends) comes from ``hcqw.hetjob.jobs.command_request``, submission, rate-limited status
(scontrol, sacct for purged jobs) and cancellation from the ``hcqw.slurm`` backends.
"""

from __future__ import annotations

import itertools
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hcqw.device import hold_command
from hcqw.environment import METRICS, step_environment
from hcqw.hetjob.jobs import NodeJobSettings, command_request, per_call_request
from hcqw.paths import run_metrics, slurm_output
from hcqw.qpu import local_simulator
from hcqw.slurm import Phase, SlurmBackend, command_env, tail

log = logging.getLogger(__name__)

#: Seconds a cancelled local job gets to exit after SIGTERM before SIGKILL.
LOCAL_KILL_GRACE_S = 5.0
#: A SLURM job still unknown to the controller this long after submission is reported lost.
LOST_AFTER_S = 60.0


@dataclass(frozen=True)
class Outcome:
    """Status of one job: ``done`` once it ended; ``error`` says why it failed (None on success)."""

    done: bool
    error: str | None = None


@dataclass(frozen=True)
class JobSpec:
    """One Snakemake job as the runner sees it."""

    node: str  # name in SLURM job names and QPU metrics: <rule>.<wildcards>
    command: str  # Snakemake's job command, run in the workflow directory
    quantum: bool  # needs the QPU (resources qpu > 0)
    settings: NodeJobSettings  # components from the job's resources, environment
    log_dir: Path  # the job's log goes here, named after its job id
    per_call: bool = False  # resources qpu="per-call": a cpu job whose quantum calls each get a qpu job


class Runner(Protocol):
    name: str

    def submit(self, spec: JobSpec) -> tuple[str, str]:
        """Start the job; return (job id, log file)."""
        ...

    def poll(self, job_ids: Iterable[str]) -> dict[str, Outcome]: ...

    def cancel(self, job_ids: Iterable[str]) -> None: ...


class LocalRunner:
    """Jobs as subprocesses of this machine. Quantum jobs take turns on the machine-local
    device, first come, first served, machine-wide, across workflows and engines: each holds
    it for its whole run, as a SLURM quantum job holds its qpu node, unless its code closes an
    ``open_qpu`` lease, which ends the hold at once (``hcqw.device.hold``). Other jobs run in
    parallel, as many as ``--jobs`` allows."""

    name = "local"

    def __init__(self, workflow: str, workdir: Path, state_dir: Path, environment: Mapping[str, str]):
        self.workflow = workflow
        self.workdir = workdir
        self.state_dir = state_dir
        self._env = command_env(environment)  # ours minus SLURM credentials, plus --envvars
        self._procs: dict[str, tuple[subprocess.Popen, str]] = {}
        self._ids = (f"local-{os.getpid()}-{n}" for n in itertools.count(1))

    def __repr__(self) -> str:
        return f"LocalRunner(workdir={str(self.workdir)!r})"

    def submit(self, spec: JobSpec) -> tuple[str, str]:
        if spec.per_call:
            raise ValueError("resources qpu='per-call' gives each quantum call a qpu job of its own from SLURM: run "
                             "with --hcqw-backend slurm (or rest); on this machine use qpu=1")
        job_id = next(self._ids)
        log_path = spec.log_dir / f"{job_id}.log"
        env = {**self._env, **spec.settings.environment, **self._hcqw_environment(spec)}
        argv = ["/bin/bash", "-c", spec.command]
        simulator = local_simulator(env) if spec.quantum else None
        if simulator:  # the job's own parent process holds the device, so the hold ends with the job
            argv = hold_command(simulator, self.workflow, spec.node, env[METRICS]) + argv
        with open(log_path, "wb") as out:
            # Own session: cancelling kills the job's whole process tree, and Ctrl-C in the
            # terminal reaches only snakemake, which then cancels its jobs itself.
            proc = subprocess.Popen(argv, cwd=self.workdir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self._procs[job_id] = (proc, str(log_path))
        return job_id, str(log_path)

    def _hcqw_environment(self, spec: JobSpec) -> dict[str, str]:
        """What ``hcqw.qpu.open_qpu`` reads, as ``command_request`` sets it for SLURM jobs: run, node,
        metrics file, and ``HCQW_DEVICE=none`` in classical jobs, so that a rule opening the device
        without ``resources: qpu=1`` fails here already, not only on the cluster."""
        return step_environment(self.workflow, spec.node, run_metrics(self.state_dir), quantum=spec.quantum)

    def poll(self, job_ids: Iterable[str]) -> dict[str, Outcome]:
        outcomes = {}
        for job_id in job_ids:
            proc, log_path = self._procs[job_id]
            code = proc.poll()
            if code is None:
                outcomes[job_id] = Outcome(False)
            elif code == 0:
                outcomes[job_id] = Outcome(True)
            else:
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                text = tail(log_path)
                outcomes[job_id] = Outcome(True, f"local job {job_id} (pid {proc.pid}) {how}; log file: {log_path}"
                                           + (f"\n--- last lines of the job log ---\n{text.rstrip()}" if text else ""))
        return outcomes

    def cancel(self, job_ids: Iterable[str]) -> None:
        running = [self._procs[j][0] for j in job_ids if j in self._procs and self._procs[j][0].poll() is None]
        for proc in running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + LOCAL_KILL_GRACE_S
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        if running:
            log.info("cancelled %d local job(s)", len(running))


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class SlurmRunner:
    """Jobs on SLURM through an ``hcqw.slurm`` backend (sbatch or slurmrestd)."""

    def __init__(self, backend: SlurmBackend, workflow: str, workdir: Path, state_dir: Path):
        self.backend = backend
        self.name = backend.name
        self.workflow = workflow
        self.workdir = workdir
        self.state_dir = state_dir  # command_request's workdir: slurm/ (job cwd), jobs/, metrics/
        slurm_output(state_dir).mkdir(parents=True, exist_ok=True)
        self._submitted_at: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"SlurmRunner({self.backend!r})"

    def submit(self, spec: JobSpec) -> tuple[str, str]:
        log_pattern = str(spec.log_dir / "%j.log")
        # Jobs start in hcqw's slurm/ directory; Snakemake's command runs in the workflow's.
        command = f"cd {shlex.quote(str(self.workdir))} && {spec.command}"
        if spec.per_call:
            request = per_call_request(command, workflow=self.workflow, name=spec.node, workdir=self.state_dir,
                                       settings=spec.settings, output=log_pattern)
        else:
            request = command_request("/bin/bash -c " + shlex.quote(command), workflow=self.workflow, name=spec.node,
                                      workdir=self.state_dir, settings=spec.settings, quantum=spec.quantum,
                                      output=log_pattern)
        job_id = self._left_running(request.job_name) or self.backend.submit(request)
        self._submitted_at[job_id] = time.monotonic()
        return job_id, log_pattern.replace("%j", job_id)

    def _left_running(self, job_name: str) -> str | None:
        """The job of this rule and wildcards that an earlier snakemake of this workflow id left in SLURM
        (killed, or its machine rebooted, while the job ran on): adopted instead of submitting the rule
        again, which would make two writers of its output and use the QPU twice. Only the sbatch
        backend can ask (squeue); REST cannot."""
        live_jobs = getattr(self.backend, "live_jobs", None)
        job_id = live_jobs([job_name]).get(job_name) if live_jobs else None
        if job_id in self._submitted_at:  # this run's own job of that name (two group jobs share one): not adopted
            return None
        if job_id:
            log.warning("%s: adopted SLURM job %s, still in SLURM from an earlier run of this workflow", job_name,
                        job_id)
            self.backend.status([job_id])  # follow it from here on
        return job_id

    def poll(self, job_ids: Iterable[str]) -> dict[str, Outcome]:
        ids = list(job_ids)
        states = self.backend.status(ids)
        outcomes = {}
        for job_id in ids:
            state = states[job_id]
            if state.phase is Phase.COMPLETED:
                outcomes[job_id] = Outcome(True)
            elif state.phase in (Phase.FAILED, Phase.CANCELLED):
                outcomes[job_id] = Outcome(True, str(self.backend.failure(state)))
            elif (state.phase is Phase.UNKNOWN and not state.components
                  and time.monotonic() - self._submitted_at.get(job_id, time.monotonic()) > LOST_AFTER_S):
                outcomes[job_id] = Outcome(True, f"SLURM job {job_id} is unknown to the controller "
                                                 f"{LOST_AFTER_S:.0f} s after submission")
            else:
                outcomes[job_id] = Outcome(False)
        return outcomes

    def cancel(self, job_ids: Iterable[str]) -> None:
        for job_id in job_ids:
            try:
                self.backend.cancel(job_id)
            except Exception as err:  # noqa: BLE001 - cancel the others whatever one of them does
                log.error("could not cancel SLURM job %s: %s", job_id, err)
