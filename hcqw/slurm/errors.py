"""Typed SLURM errors with messages that say what to do next.

Callers (the Snakemake and Parsl adapters) catch :class:`SlurmError` or one of
its subclasses; every message is safe to show to a user: none of them ever
contains a JWT, because the token is never passed to the code building them.
"""

from __future__ import annotations

from hcqw.errors import HcqwError


class SlurmError(HcqwError):
    """Base of every error raised by ``hcqw.slurm``."""


class SlurmSettingsError(SlurmError, ValueError):
    """A component spec or job request is invalid; raised before anything is submitted."""


class UnknownPartition(SlurmError):
    """The cluster has no partition of that name."""

    def __init__(self, partition: str, detail: str = ""):
        self.partition = partition
        msg = (
            f"SLURM rejected partition {partition!r}: no such partition on this cluster. "
            "Check the partition names with `sinfo -s` (or ask your site) and set "
            "ComponentSpec.partition accordingly."
        )
        super().__init__(msg + (f" (SLURM said: {detail})" if detail else ""))


class InvalidGres(SlurmError):
    """The generic resource request (e.g. ``qpu:1``) is not valid on this cluster."""

    def __init__(self, gres: str, detail: str = ""):
        self.gres = gres
        msg = (
            f"SLURM rejected the generic resource request {gres!r}. The quantum device is "
            "requested as 'qpu:1' on the qpu partition; check `sinfo -o '%P %G'` for the GRES "
            "each partition offers and `GresTypes` in slurm.conf."
        )
        super().__init__(msg + (f" (SLURM said: {detail})" if detail else ""))


class ControllerUnreachable(SlurmError):
    """slurmctld (or slurmrestd) does not answer: SLURM is down or misconfigured."""

    def __init__(self, where: str, detail: str = ""):
        self.where = where
        msg = (
            f"cannot reach the SLURM controller ({where}). SLURM may be down or "
            "SLURM_CONF may point at the wrong cluster; check `scontrol ping` and retry later."
        )
        super().__init__(msg + (f" (detail: {detail})" if detail else ""))


class RestAuthError(SlurmError):
    """slurmrestd refused the request: the JWT is missing, expired or wrong.

    The message explains how to get a token; it never contains one.
    """

    def __init__(self, url: str, status: int, detail: str = ""):
        self.url = url
        self.status = status
        msg = (
            f"slurmrestd at {url} refused authentication (HTTP {status}): the JWT is missing, "
            "expired or invalid. Get a fresh token on the cluster with "
            "`scontrol token lifespan=3600` and export it as HCQW_SLURM_JWT (or SLURM_JWT), "
            "or write it to the token file given to the REST backend."
        )
        super().__init__(msg + (f" (slurmrestd said: {detail})" if detail else ""))


class RestServerError(SlurmError):
    """slurmrestd answered with a server error that is not one of the typed cases."""

    def __init__(self, url: str, status: int, detail: str = ""):
        self.url = url
        self.status = status
        self.detail = detail
        super().__init__(
            f"slurmrestd at {url} failed with HTTP {status}: {detail or 'no detail given'}. "
            "Check the slurmrestd and slurmctld logs on the cluster."
        )


class SubmitError(SlurmError):
    """Submission failed for a reason without a more specific type."""


class JobNotFound(SlurmError):
    """SLURM does not know the job id (never submitted, or purged after MinJobAge)."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        super().__init__(
            f"SLURM does not know job {job_id}: it was never submitted here or finished more "
            "than MinJobAge seconds ago and accounting (sacct) is not available."
        )


#: Why a job ended and what to do, for the SLURM states that say it. A workflow re-run resumes from the last
#: checkpoint written before the job, so "re-run" loses nothing that was done.
WHAT_TO_DO = {
    "TIMEOUT": "the time limit was hit before the job finished: raise it -- ComponentSpec.time_limit of the "
               "job's components, `hcqw slurm run --time-limit` -- and re-run",
    "NODE_FAIL": "one of its nodes stopped answering slurmctld (slurmd down longer than SlurmdTimeout); "
                 "`sinfo -R` says which and why: re-run once the site has it back, or on the other nodes",
    "OUT_OF_MEMORY": "a component ran out of memory: raise ComponentSpec.mem_mb (sbatch --mem) and re-run",
    "PREEMPTED": "a job of higher priority took its nodes: re-run",
}


def what_to_do(state: str) -> str:
    """`` (why; what to do)`` about a job that ended in SLURM state ``state``, when the state says it; else ""."""
    return f" ({WHAT_TO_DO[state]})" if state in WHAT_TO_DO else ""


class JobFailed(SlurmError):
    """A job ended in a failure state; carries what the user needs to debug it."""

    def __init__(
        self,
        job_id: str,
        state: str,
        exit_code: int | None,
        output_path: str | None = None,
        output_tail: str = "",
    ):
        self.job_id = job_id
        self.state = state
        self.exit_code = exit_code
        self.output_path = output_path
        self.output_tail = output_tail
        msg = f"SLURM job {job_id} ended {state}"
        if exit_code is not None:
            msg += f" with exit code {exit_code}"
        msg += what_to_do(state)
        if output_path:
            msg += f"; output file: {output_path}"
        if output_tail:
            msg += "\n--- last lines of the job output ---\n" + output_tail.rstrip("\n")
        super().__init__(msg)
