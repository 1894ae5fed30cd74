"""Where jobs run, and the one interface both engine adapters use, whatever talks to SLURM.

``BACKENDS`` is the one vocabulary of where jobs run (Snakemake's ``--hcqw-backend``, Parsl's
``hcqw_config(backend=...)``, ``hcqw slurm run --backend``), checked by :func:`check_backend`.
``open_backend("slurm", ...)`` or ``open_backend("rest", ...)`` returns a
:class:`SlurmBackend`; Snakemake and Parsl adapters call only these methods.
The shared parts (status caching, waiting, turning a failed job into a
:class:`JobFailed` with its output tail) live in :class:`BaseBackend`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Callable, Protocol, TypeVar

from hcqw.slurm.errors import ControllerUnreachable, JobFailed, JobNotFound, SlurmError, SlurmSettingsError
from hcqw.slurm.settings import JobRequest
from hcqw.slurm.states import NodeState, Phase
from hcqw.slurm.status import StatusPoller, leader_of

log = logging.getLogger(__name__)

#: Lines of job output quoted in a JobFailed message.
TAIL_LINES = 20
#: Seconds release, status and cancel ride out an unreachable controller (slurmctld restarting,
#: failing over) before giving up, retrying with backoff from ``_FIRST_RETRY_S`` to ``_LAST_RETRY_S``.
OUTAGE_BOUND_S = 180.0
_FIRST_RETRY_S, _LAST_RETRY_S = 0.5, 8.0

T = TypeVar("T")

#: Where jobs run, the same words in every adapter and command: this machine ("local"), this
#: cluster through SLURM's own tools (sbatch, scontrol, sacct: "slurm"), or a cluster through
#: slurmrestd ("rest").
BACKENDS = ("local", "slurm", "rest")
_MEANING = {"local": "this machine", "slurm": "sbatch on this cluster", "rest": "slurmrestd at a URL"}
#: The options of :func:`open_backend` only the REST backend reads.
REST_OPTIONS = ("url", "user", "token", "token_file", "allow_http")


def check_backend(backend: str, options: Mapping[str, Any] | None = None, *,
                  names: Mapping[str, str] | None = None, local: bool = True) -> str:
    """``backend`` if it is one of :data:`BACKENDS` and ``options`` (:func:`open_backend`'s keywords;
    None or False means unset) make sense with it, else :class:`SlurmSettingsError` naming the valid
    choices. ``names`` spells options as the caller's users write them (``{"url": "--rest-url"}``);
    ``local=False`` where only SLURM applies (a SLURM provider, ``hcqw slurm run``)."""
    choices = BACKENDS if local else BACKENDS[1:]
    listing = ", ".join(f"{name!r} ({_MEANING[name]})" for name in choices)
    if backend not in BACKENDS:
        raise SlurmSettingsError(f"unknown backend {backend!r}: choose one of {listing}")
    if backend not in choices:
        raise SlurmSettingsError(f"backend {backend!r} runs jobs on this machine, but this only submits to SLURM: "
                                 f"choose one of {listing}")
    names = names or {}
    given = sorted(option for option, value in (options or {}).items() if value is not None and value is not False)
    if backend == "local" and given:
        raise SlurmSettingsError(f"backend 'local' runs jobs on this machine and reads no SLURM options, but "
                                 f"{_spelled(given, names)} given: drop them or choose 'slurm' or 'rest'")
    stray = [option for option in given if option in REST_OPTIONS]
    if backend == "slurm" and stray:
        raise SlurmSettingsError(f"backend 'slurm' (sbatch on this cluster) reads no {_spelled(stray, names)}: "
                                 "only backend 'rest' (slurmrestd) does; choose 'rest' or drop them")
    if backend == "rest" and not (options or {}).get("url"):
        raise SlurmSettingsError(f"backend 'rest' needs the slurmrestd URL: set {_spelled(['url'], names)} "
                                 "(e.g. http://127.0.0.1:6820)")
    return backend


def _spelled(options: Iterable[str], names: Mapping[str, str]) -> str:
    return ", ".join(names.get(option, option) for option in options)


def ride_out(call: Callable[[], T], what: str, bound: float = OUTAGE_BOUND_S,
             retry: Callable[[ControllerUnreachable], bool] = lambda err: True) -> T:
    """``call()``, retried with backoff while SLURM's controller is unreachable (and ``retry`` says the error
    may be retried), for up to ``bound`` s; then the last :class:`ControllerUnreachable` is raised. Other
    errors are not retried."""
    deadline = time.monotonic() + bound
    delay = _FIRST_RETRY_S
    while True:
        try:
            return call()
        except ControllerUnreachable as err:
            if not retry(err) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s: %s; retrying in %.1f s", what, err, delay)
            time.sleep(delay)
            delay = min(delay * 2, _LAST_RETRY_S)


def release_refused(target: str, detail: str) -> SlurmError:
    """The error for SLURM refusing to end one component (the hetjob has not started)."""
    return SlurmError(
        f"SLURM refused to end component {target} alone ({detail}): a hetjob component can only be "
        "released once the job runs; cancel the whole job or release it after it has started"
    )


class SlurmBackend(Protocol):
    """What adapters may call. Job ids are leader ids as strings ("1234")."""

    name: str

    def submit(self, request: JobRequest) -> str: ...

    def status(self, job_ids: Iterable[str], *, force: bool = False) -> dict[str, NodeState]: ...

    def cancel(self, job_id: str) -> None: ...

    def cancel_component(self, job_id: str, offset: int = 1) -> None: ...

    def wait(self, job_id: str, timeout: float | None = None) -> NodeState: ...

    def failure(self, state: NodeState) -> JobFailed: ...


def tail(path: str | Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file, or "" if it cannot be read (another host, purged)."""
    try:
        with open(path, errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError:
        return ""


def resolve_output(pattern: str, workdir: Path, job_id: str, job_name: str) -> str:
    """Expand the filename patterns hcqw itself uses (%j, %x, %%); others stay as they are."""
    text = pattern.replace("%%", "\0").replace("%j", job_id).replace("%x", job_name).replace("\0", "%")
    path = Path(text)
    return str(path if path.is_absolute() else workdir / path)


class BaseBackend:
    """Status, waiting and failure reporting shared by the sbatch and REST backends."""

    name = "base"

    def __init__(self, poller: StatusPoller):
        self._poller = poller
        # leader id -> resolved output path, for failure messages when SLURM's
        # record has no StdOut (sacct) or the job is already purged.
        self._outputs: dict[str, str] = {}

    def _submitted(self, request: JobRequest, job_id: str) -> None:
        self._outputs[job_id] = resolve_output(request.output_pattern, request.workdir, job_id, request.job_name)
        self._poller.track(job_id)
        log.info("submitted %s as SLURM job %s via %s", request.tag, job_id, self.name)

    @property
    def poll_interval(self) -> float:
        """Seconds between two status queries: how often a follower need look."""
        return self._poller.min_interval

    def status(self, job_ids: Iterable[str], *, force: bool = False) -> dict[str, NodeState]:
        """Merged state per job id; at most one SLURM query per poll interval for all jobs."""
        return self._poller.status(job_ids, force=force)

    def wait(self, job_id: str, timeout: float | None = None) -> NodeState:
        """Poll until the job is final and return its state (failure is a state, not an exception).

        Raises :class:`JobNotFound` for a job SLURM never reported,
        :class:`SlurmError` on timeout and :class:`ControllerUnreachable` after an outage
        longer than ``OUTAGE_BOUND_S``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # A controller outage (slurmctld restarting) is ridden out: the job runs on meanwhile.
            state = ride_out(lambda: self._poller.status([job_id])[job_id], f"status of SLURM job {job_id}")
            if state.done:
                return state
            if state.phase is Phase.UNKNOWN and not state.components:
                # Never seen, although the poller keeps the last state of purged jobs.
                raise JobNotFound(job_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise SlurmError(f"SLURM job {job_id} still {state.phase.value} after {timeout:.0f} s")
            time.sleep(max(0.05, self._poller.min_interval))

    def failure(self, state: NodeState) -> JobFailed:
        """A :class:`JobFailed` for a FAILED/CANCELLED state: id, state, exit code, output tail."""
        if state.phase not in (Phase.FAILED, Phase.CANCELLED):
            raise ValueError(f"job {state.leader_id} did not fail ({state.phase.value})")
        leader = state.leader
        output = leader.stdout if leader else None
        if not output or "%" in output:
            # sacct has no StdOut; slurmrestd reports the unexpanded pattern.
            output = self._outputs.get(leader_of(state.leader_id), output)
        return JobFailed(
            job_id=state.failed_component or state.leader_id,
            state=state.state,
            exit_code=state.exit_code,
            output_path=output,
            output_tail=tail(output) if output else "",
        )


def open_backend(name: str, **options: Any) -> SlurmBackend:
    """The backend called ``name`` ("slurm" or "rest"), built with its keyword options.

    See :class:`hcqw.slurm.sbatch.SbatchBackend` and
    :class:`hcqw.slurm.rest.RestBackend` for the options.
    """
    if check_backend(name, options, local=False) == "slurm":
        from hcqw.slurm.sbatch import SbatchBackend

        return SbatchBackend(**options)
    from hcqw.slurm.rest import RestBackend

    return RestBackend(**options)
