"""The files a qpu app travels in, shared by the executor (submit side) and the runner (job side).

A task directory holds ``call.ckpt`` (function, args, kwargs) and, once run, ``result.ckpt``
(``(True, value)`` or ``(False, exception)``); both are signed checkpoints
(``hcqw.checkpoint``), so nothing is unpickled before its signature verifies. Both are bound to
their task: the signed header's fingerprint is the task's identity (its number, the app's name and
a digest of its arguments, ``task_identity``), checked against the directory the file is in and,
for a result, against the call the submitter wrote; a call or result of another task (copied or
swapped in) is refused with ``CheckpointMismatch``. In session
mode the executor queues task numbers in ``queue/``, a session claims one by renaming it
into ``claimed/<number>.<session>``, and marks ``sessions/<session>.closed`` when it stops
taking apps (bounds reached, or ``sessions/stop`` written by the executor's shutdown).
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from pathlib import Path
from typing import Any

import cloudpickle

from hcqw.checkpoint import Place, load_checkpoint, read_header, save_checkpoint
from hcqw.errors import CheckpointMismatch

log = logging.getLogger(__name__)

CALL = "call.ckpt"
RESULT = "result.ckpt"
QUEUE = "queue"
CLAIMED = "claimed"
SESSIONS = "sessions"
STOP = "stop"  # in SESSIONS: the executor shuts down, sessions stop taking apps


def signing_tag(workflow: str) -> str:
    """The checkpoint ``workflow`` field of app calls and results: a file of another run is refused."""
    return f"parsl-qpu:{workflow}"


def task_identity(task_dir: Path, func: Any, args: tuple, kwargs: dict) -> str:
    """``task <number> <module.app> args-sha256:<digest>``: what a task's checkpoints are bound to."""
    digest = hashlib.sha256(cloudpickle.dumps((args, kwargs))).hexdigest()[:32]
    name = f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', type(func).__name__)}"
    return f"task {task_dir.name} {name} args-sha256:{digest}"


def write_call(task_dir: Path, workflow: str, func: Any, args: tuple, kwargs: dict) -> str:
    """Write the app call; return its task identity (to check the result against, ``read_result``)."""
    task_dir.mkdir(parents=True, exist_ok=True)
    identity = task_identity(task_dir, func, args, kwargs)
    save_checkpoint(task_dir / CALL, (func, args, kwargs), workflow=signing_tag(workflow), iteration=0,
                    producer="parsl-submit", fingerprint=identity)
    return identity


def read_result(task_dir: Path, workflow: str, identity: str) -> tuple[bool, Any]:
    """(True, value) or (False, exception) from a finished task's result checkpoint, which must be
    the result of the call ``identity`` names (``CheckpointMismatch`` otherwise)."""
    (ok, payload), _ = load_checkpoint(task_dir / RESULT, place=Place(signing_tag(workflow), identity))
    return ok, payload


def run_task(task_dir: Path, workflow: str) -> bool:
    """Load, call and store one app; True if the app returned normally."""
    identity = read_header(task_dir / CALL, workflow=signing_tag(workflow)).fingerprint
    if not identity.startswith(f"task {task_dir.name} "):
        raise CheckpointMismatch(task_dir / CALL, f"is the call of another task ({identity or 'unbound'}), not of "
                                 f"task {task_dir.name}: copied or swapped in; refusing it")
    (func, args, kwargs), _ = load_checkpoint(task_dir / CALL, place=Place(signing_tag(workflow), identity))
    if task_identity(task_dir, func, args, kwargs) != identity:
        raise CheckpointMismatch(task_dir / CALL, f"does not hold the call its header names ({identity})")
    try:
        result: tuple[bool, Any] = (True, func(*args, **kwargs))
    except Exception as err:  # noqa: BLE001 - the app's exception is its result, re-raised by the submitter
        log.info("app %s raised %s: %s", task_dir.name, type(err).__name__, err)
        err.add_note("raised in the qpu app on SLURM; remote traceback:\n" + traceback.format_exc())
        result = (False, err)
    try:
        save_checkpoint(task_dir / RESULT, result, workflow=signing_tag(workflow), iteration=0, producer="parsl-qpu",
                        fingerprint=identity)
    except Exception as err:  # noqa: BLE001 - e.g. an unpicklable return value or exception
        failure = RuntimeError(f"the qpu app's result could not be stored: {type(err).__name__}: {err}")
        save_checkpoint(task_dir / RESULT, (False, failure), workflow=signing_tag(workflow), iteration=0,
                        producer="parsl-qpu", fingerprint=identity)
    return result[0]
