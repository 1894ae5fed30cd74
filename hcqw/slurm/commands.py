"""Run SLURM client commands and turn their failures into typed errors.

Every CLI call of the sbatch backend and the status poller goes through
:func:`run_slurm`, so "is the controller down?" is decided in one place.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Mapping, Sequence

from hcqw.slurm.errors import ControllerUnreachable, SlurmError
from hcqw.slurm.settings import SECRET_ENV_VARS

log = logging.getLogger(__name__)

# Client messages meaning "no controller answered" (22.05 spelling).
UNREACHABLE_MARKERS = (
    "Unable to contact slurm controller",
    "Socket timed out on send/recv",
    "Zero Bytes were transmitted or received",
    "Connection refused",
)

#: SLURM's words (22.05) when srun could not create a step *yet*: the allocation's nodes are still busy (finishing
#: an earlier job) or being set up; asking again later can succeed.
STEP_PENDING_MARKERS = (
    "Requested nodes are busy",
    "PrologSlurmctld is still running",
    "Slurm is busy, step creation delayed",
)

#: SLURM's words when a request never reached slurmctld (22.05): a submission was certainly not made,
#: so it may be retried; after a timeout the job may exist, and a retry could submit it twice.
NOT_CONNECTED = ("unable to contact slurm controller (connect failure)", "connection refused")


def never_sent(err: Exception) -> bool:
    """Whether ``err`` (a :class:`ControllerUnreachable`) says the request never reached slurmctld."""
    text = str(err).lower()
    return any(marker in text for marker in NOT_CONNECTED)


#: Seconds a client command may take. Slurm clients retry an absent
#: controller for about MessageTimeout; this only bounds a true hang.
DEFAULT_TIMEOUT = 60.0


def command_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a SLURM client: ours, minus credentials, plus ``extra``.

    sbatch exports its own environment into the job (``--export=ALL``), so
    dropping SLURM_JWT here is what keeps the token out of the job (where it
    would also break srun).
    """
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in SECRET_ENV_VARS}
    if extra:
        env.update(extra)
    return env


def is_unreachable(stderr: str) -> bool:
    return any(marker in stderr for marker in UNREACHABLE_MARKERS)


def run_slurm(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run one SLURM client command; raise :class:`ControllerUnreachable` if slurmctld is down.

    With ``check`` any other non-zero exit raises :class:`SlurmError`
    carrying the command's stderr; callers that classify errors themselves
    (sbatch: partition, gres) pass ``check=False``.
    """
    started = time.monotonic()
    try:
        proc = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            env=dict(env) if env is not None else command_env(),
            timeout=timeout,
        )
    except FileNotFoundError as err:
        raise SlurmError(f"{argv[0]} not found: install the SLURM client tools (slurm-client) or fix PATH") from err
    except subprocess.TimeoutExpired as err:
        raise ControllerUnreachable(f"`{argv[0]}` gave no answer in {timeout:.0f} s") from err
    elapsed = time.monotonic() - started
    log.debug("%s exited %d in %.3f s", " ".join(argv[:2]), proc.returncode, elapsed)
    if proc.returncode != 0:
        stderr = proc.stderr.strip()
        if is_unreachable(stderr):
            raise ControllerUnreachable(f"`{argv[0]}`", stderr.splitlines()[-1] if stderr else "")
        if check:
            raise SlurmError(f"`{' '.join(argv)}` failed (exit {proc.returncode}): {stderr or 'no error output'}")
    return proc
