"""Run Parsl ``qpu`` apps inside a SLURM quantum job: ``python -m parsl_hcqw.runner ...``.

The submitting :class:`parsl_hcqw.executor.QpuJobExecutor` ships each app call (function,
args, kwargs) as a signed cloudpickle checkpoint ``<task>/call.ckpt`` on the shared run
directory; this runner verifies and loads it, calls the function and writes
``<task>/result.ckpt`` (signed) holding the return value or the exception. Nothing is
unpickled before its signature has been checked (``hcqw.checkpoint``).

Two modes:

- ``runner TASK_DIR``: one app per hetjob. The app opens the device with
  ``hcqw.qpu.open_qpu()``, which finds the job's gateway; closing that lease frees the qpu
  component at once, and the job script's trap frees it when the runner exits.
- ``runner --session BASE_DIR ...``: one hetjob serves a bounded series of apps (the
  explicit session option). The runner itself holds a *keeper* lease on the gateway for the
  whole session, so the gateway keeps serving, and each app's ``open_qpu()`` opens an
  ordinary service session next to it (``$HCQW_DEVICE_ADDRESS``). Apps are claimed from
  ``BASE_DIR/queue`` one at a time; after ``--max-apps`` apps, ``--max-seconds`` seconds or
  ``--idle-seconds`` without work (or when the executor shuts down) the runner marks the session closed, closes the keeper
  lease (the qpu component ends at once) and exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from parsl_hcqw.tasks import CLAIMED, QUEUE, SESSIONS, STOP, run_task

log = logging.getLogger("parsl_hcqw.runner")


def claim(base: Path, session: str) -> Path | None:
    """Take the oldest queued task (atomic rename: two sessions never run the same app)."""
    queue = base / QUEUE
    for entry in sorted(queue.iterdir(), key=lambda p: int(p.name)) if queue.exists() else ():
        target = base / CLAIMED / f"{entry.name}.{session}"
        try:
            os.rename(entry, target)
        except FileNotFoundError:
            continue  # another session took it
        return base / "tasks" / entry.name
    return None


def serve_session(base: Path, workflow: str, session: str, max_apps: int, max_seconds: float,
                  idle_seconds: float) -> int:
    """Run queued apps under one held qpu allocation until a bound is reached; return the number run."""
    from hcqw import environment
    from hcqw.hetjob.device import gateway_device

    device = gateway_device()
    keeper = device.acquire(workflow, f"{session}-keeper")
    address = device.wait_address()
    # Apps reach the gateway as a QPU service; their leases must not end the allocation.
    os.environ.pop(environment.GATEWAY_ADDRESS_FILE, None)
    os.environ[environment.DEVICE_ADDRESS] = address
    started = last_work = time.monotonic()
    done = 0
    (base / CLAIMED).mkdir(parents=True, exist_ok=True)
    try:
        while done < max_apps and time.monotonic() - started < max_seconds and not (base / SESSIONS / STOP).exists():
            task = claim(base, session)
            if task is None:
                if time.monotonic() - last_work >= idle_seconds:
                    break
                time.sleep(0.05)
                continue
            os.environ[environment.NODE] = f"{session}-app{task.name}"
            run_task(task, workflow)
            done += 1
            last_work = time.monotonic()
    finally:
        # Closed first: from here on the executor queues new apps for a new session.
        (base / SESSIONS / f"{session}.closed").touch()
        keeper.close()
    log.info("session %s served %d app(s) in %.1f s", session, done, time.monotonic() - started)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parsl_hcqw.runner", description=__doc__.split("\n")[0])
    parser.add_argument("task_dir", nargs="?", help="one app's task directory")
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--session", metavar="BASE_DIR", help="serve queued apps of BASE_DIR as one session")
    parser.add_argument("--max-apps", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s qpu-app %(levelname)s: %(message)s")
    if args.session:
        session = os.environ.get("SLURM_JOB_ID", str(os.getpid()))
        serve_session(Path(args.session), args.workflow, session, args.max_apps, args.max_seconds,
                      args.idle_seconds)
        return 0
    if not args.task_dir:
        parser.error("give a task directory or --session BASE_DIR")
    run_task(Path(args.task_dir), args.workflow)
    return 0  # an app's exception is a result, not a job failure


if __name__ == "__main__":
    sys.exit(main())
