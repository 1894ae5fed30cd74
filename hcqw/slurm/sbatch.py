"""Backend that drives the local SLURM command-line tools (sbatch, scancel, sacct/scontrol)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

from hcqw.slurm.backend import OUTAGE_BOUND_S, BaseBackend, release_refused, ride_out
from hcqw.slurm.commands import command_env, never_sent, run_slurm
from hcqw.slurm.errors import InvalidGres, SlurmError, SubmitError, UnknownPartition
from hcqw.slurm.script import render_script
from hcqw.slurm.settings import JobRequest
from hcqw.slurm.status import CliStatusSource, SharedStatusSource, StatusPoller, leader_of

log = logging.getLogger(__name__)

_PARSABLE_ID = re.compile(r"^(\d+)(;\S+)?$")  # "1234" or "1234;cluster"
_BAD_PARTITION = re.compile(r"invalid partition (?:specified|name specified)(?::\s*(\S+))?", re.IGNORECASE)
_BAD_GRES = re.compile(r"Invalid (?:generic resource \(gres\)|Trackable RESource \(TRES\)) specification", re.IGNORECASE)
# A GRES that exists but not in the requested partition/amount (qpu:5, or
# qpu on the cpu partition) gets this generic message instead.
_UNSATISFIABLE = re.compile(r"Requested node configuration is not available", re.IGNORECASE)


def classify_submit_error(request: JobRequest, stderr: str) -> SlurmError:
    """Turn sbatch's complaint into the most specific error type."""
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    match = _BAD_PARTITION.search(stderr)
    if match:
        partition = match.group(1) or ",".join(c.partition for c in request.components)
        return UnknownPartition(partition, detail)
    wants_gres = any(c.gres for c in request.components)
    if _BAD_GRES.search(stderr) or (wants_gres and _UNSATISFIABLE.search(stderr)):
        gres = ",".join(c.gres for c in request.components if c.gres) or "(none)"
        return InvalidGres(gres, detail)
    return SubmitError(f"sbatch refused {request.tag}: {detail or 'no error output'}")


class SbatchBackend(BaseBackend):
    """Submit with ``sbatch --parsable``, cancel with ``scancel``, status via sacct or scontrol.

    ``env`` is added to the environment of every SLURM command (e.g.
    ``{"SLURM_CONF": ...}`` to pick a cluster); credentials are dropped from it. ``outage_bound``:
    seconds submit (while sbatch cannot reach the controller at all), squeue and scancel ride out a
    controller outage. ``shared_status``: status from the snapshot all of this user's followers on this
    host share (``hcqw.slurm.status.SharedStatusSource``), not a query of this process's own.
    """

    name = "slurm"

    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        poll_interval: float = 2.0,
        use_sacct: bool | None = None,
        outage_bound: float = OUTAGE_BOUND_S,
        shared_status: bool = True,
    ):
        self._env = command_env(env)
        self._outage_bound = outage_bound
        source = CliStatusSource(self._env, use_sacct)
        if shared_status:
            # One controller query per interval for every follower of this user on this host.
            source = SharedStatusSource(source, max_age=poll_interval, cluster_key=self._env.get("SLURM_CONF", ""))
        super().__init__(StatusPoller(source, poll_interval))

    def __repr__(self) -> str:
        return f"SbatchBackend(SLURM_CONF={self._env.get('SLURM_CONF', '(default)')!r})"

    def submit(self, request: JobRequest) -> str:
        """Submit the request; return the (leader) job id.

        The script goes through stdin; the job environment is our own
        (credentials removed) plus ``request.environment``, exported by
        ``--export=ALL`` so that no value ever lands in the script.
        """
        script = render_script(request)
        env = {**self._env, **request.environment}
        # A controller that is down (restarting) is ridden out only while sbatch cannot reach it at all.
        argv = ["sbatch", "--parsable", "--export=ALL"]
        proc = ride_out(lambda: run_slurm(argv, env=env, stdin=script, check=False), f"sbatch {request.tag}",
                        self._outage_bound, retry=never_sent)
        if proc.returncode != 0:
            raise classify_submit_error(request, proc.stderr)
        match = _PARSABLE_ID.match(proc.stdout.strip())
        if not match:
            raise SubmitError(f"sbatch printed no job id for {request.tag}: {proc.stdout.strip()!r}")
        job_id = match.group(1)
        self._submitted(request, job_id)
        return job_id

    def live_jobs(self, names: Iterable[str]) -> dict[str, str]:
        """Leader id per job name, for this user's jobs of these names that SLURM has not finished
        (pending, running, suspended, requeued, completing): what a re-run must not submit again."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        argv = ["squeue", "--me", "-h", "-t", "PD,R,CF,CG,S,RQ,RS,RH,SE,SO,ST", "--name", ",".join(wanted),
                "-o", "%i|%j"]
        proc = ride_out(lambda: run_slurm(argv, env=self._env), "squeue", self._outage_bound)
        live: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            job_id, _, name = line.partition("|")
            if name.strip() in wanted:
                live.setdefault(name.strip(), leader_of(job_id.strip()))
        return live

    def cancel(self, job_id: str) -> None:
        """Cancel the whole job (all hetjob components). Cancelling a finished job is a no-op."""
        self._scancel(leader_of(job_id))

    def cancel_component(self, job_id: str, offset: int = 1) -> None:
        """End one hetjob component (the early qpu release); the leader runs on.

        SLURM refuses this while the hetjob still pends (scancel exit 60);
        that raises :class:`SlurmError`.
        """
        if offset < 1:
            raise SlurmError("component 0 cannot be released on its own: cancelling it ends the whole hetjob")
        self._scancel(f"{leader_of(job_id)}+{offset}")

    def _scancel(self, target: str) -> None:
        """``scancel target``; an unreachable controller is ridden out (``ride_out``) before it raises."""
        proc = ride_out(lambda: run_slurm(["scancel", target], env=self._env, check=False), f"scancel {target}",
                        self._outage_bound)
        stderr = proc.stderr.strip()
        # scancel exits 0 with "already completing or completed" for finished jobs.
        if proc.returncode != 0 and "individual component" in stderr:
            raise release_refused(target, stderr.splitlines()[-1])
        if proc.returncode != 0:
            raise SlurmError(f"scancel {target} failed (exit {proc.returncode}): {stderr}")
        if stderr:
            log.info("scancel %s: %s", target, stderr)
        log.info("cancelled SLURM job %s", target)
