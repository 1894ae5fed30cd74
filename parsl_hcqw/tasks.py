"""The files a qpu app travels in, shared by the executor (submit side) and the runner (job side).

A task directory holds ``call.ckpt`` (function, args, kwargs) and, once run, ``result.ckpt``
(``(True, value)`` or ``(False, exception)``); both are signed checkpoints
(``hcqw.checkpoint``), so nothing is unpickled before its signature verifies. In session
mode the executor queues task numbers in ``queue/``, a session claims one by renaming it
into ``claimed/<number>.<session>``, and marks ``sessions/<session>.closed`` when it stops
taking apps (bounds reached, or ``sessions/stop`` written by the executor's shutdown).
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Any

from hcqw.checkpoint import load_checkpoint, save_checkpoint

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


def write_call(task_dir: Path, workflow: str, func: Any, args: tuple, kwargs: dict) -> None:
    task_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(task_dir / CALL, (func, args, kwargs), workflow=signing_tag(workflow), iteration=0,
                    producer="parsl-submit")


def read_result(task_dir: Path, workflow: str) -> tuple[bool, Any]:
    """(True, value) or (False, exception) from a finished task's result checkpoint."""
    (ok, payload), _ = load_checkpoint(task_dir / RESULT, workflow=signing_tag(workflow))
    return ok, payload


def run_task(task_dir: Path, workflow: str) -> bool:
    """Load, call and store one app; True if the app returned normally."""
    (func, args, kwargs), _ = load_checkpoint(task_dir / CALL, workflow=signing_tag(workflow))
    try:
        result: tuple[bool, Any] = (True, func(*args, **kwargs))
    except Exception as err:  # noqa: BLE001 - the app's exception is its result, re-raised by the submitter
        log.info("app %s raised %s: %s", task_dir.name, type(err).__name__, err)
        err.add_note("raised in the qpu app on SLURM; remote traceback:\n" + traceback.format_exc())
        result = (False, err)
    try:
        save_checkpoint(task_dir / RESULT, result, workflow=signing_tag(workflow), iteration=0, producer="parsl-qpu")
    except Exception as err:  # noqa: BLE001 - e.g. an unpicklable return value or exception
        failure = RuntimeError(f"the qpu app's result could not be stored: {type(err).__name__}: {err}")
        save_checkpoint(task_dir / RESULT, (False, failure), workflow=signing_tag(workflow), iteration=0,
                        producer="parsl-qpu")
    return result[0]
