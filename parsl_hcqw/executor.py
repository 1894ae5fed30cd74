"""The ``qpu`` executors: on SLURM ``QpuJobExecutor``, embedded ``HeldQpuExecutor``.

``QpuJobExecutor``: Parsl ``qpu`` apps as SLURM quantum jobs that hold the qpu node only while they run.

Parsl's pilot model (HTEX blocks) would keep a qpu allocation idle between apps until
``max_idletime`` (120 s by default). Here each app is its own cpu+qpu hetjob, submitted
through a :class:`~parsl_hcqw.provider.HetjobSlurmProvider` (``quantum=True``): the app's
call travels as a signed checkpoint on the shared run directory, ``python -m
parsl_hcqw.runner`` runs it in component 0 next to the device gateway, and the result comes
back the same way. The qpu component ends when the app closes its device lease, at the
latest when the runner exits, so other users' quantum jobs interleave between our apps.

With ``session=QpuSession(...)`` (off by default) one hetjob instead serves a bounded
series of apps under one qpu allocation, for tight loops where a job per app costs too much.

With a ``per_call`` provider (the ``per-call`` executor of ``hcqw_config``) each app is a cpu
job instead, whose quantum calls -- each ``open_qpu`` lease, so each Qiskit ``run()`` -- get a qpu
job of their own for that call only: an unsplit driver as an app.

``HeldQpuExecutor``: the same meaning on this machine. An HTEX whose apps each hold the
machine-local device for their whole run, or until their ``open_qpu`` lease closes
(``hcqw.device.hold``): the app runs in a long-lived worker process, so the hold is taken
around the call in that worker, and a worker that dies takes its hold with it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import shlex
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from parsl.executors import HighThroughputExecutor
from parsl.executors.base import ParslExecutor
from parsl.executors.errors import InvalidResourceSpecification
from parsl.utils import RepresentationMixin

from hcqw.errors import HcqwError
from hcqw.slurm import tail
from hcqw.trust import PRIVATE_DIR_FIX, make_private_dir
from parsl_hcqw import tasks as taskfiles
from parsl_hcqw.provider import HetjobSlurmProvider

log = logging.getLogger(__name__)

#: How long shutdown lets idle sessions close themselves before cancelling them.
SESSION_STOP_WAIT_S = 5.0


class QpuAppLost(HcqwError):
    """The SLURM job of a qpu app ended without writing the app's result."""


@dataclass(frozen=True)
class QpuSession:
    """Bounds of one held qpu allocation: at most ``max_apps`` apps, ``max_seconds`` seconds, and
    it ends after ``idle_seconds`` without a queued app."""

    max_apps: int = 10
    max_seconds: float = 60.0
    idle_seconds: float = 10.0

    def __post_init__(self) -> None:
        if self.max_apps < 1 or self.max_seconds <= 0 or self.idle_seconds < 0:
            raise ValueError(f"QpuSession bounds must be positive: {self}")


@dataclass
class _Task:
    number: int
    directory: Path
    future: Future
    job_id: str | None = None  # per-app mode: the app's own job
    identity: str = ""  # what its call and result checkpoints are bound to (taskfiles.task_identity)


class QpuJobExecutor(ParslExecutor, RepresentationMixin):
    """Each ``qpu`` app a SLURM quantum job (or, with ``session``, apps batched into bounded sessions).

    ``provider`` must be a quantum :class:`HetjobSlurmProvider`; its ``workflow`` names the
    jobs and signs the task checkpoints. ``workdir`` (default ``<run_dir>/hcqw-<label>``) must
    be on a file system the compute nodes share.
    """

    def __init__(self, label: str = "qpu", provider: HetjobSlurmProvider | None = None,
                 session: QpuSession | None = None, workdir: str | None = None, poll_interval: float = 0.05):
        super().__init__()
        self.label = label
        self.provider = provider or HetjobSlurmProvider(quantum=True)
        if not (self.provider.quantum or self.provider.per_call):
            raise ValueError("QpuJobExecutor needs HetjobSlurmProvider(quantum=True) (its jobs hold a qpu component) "
                             "or HetjobSlurmProvider(per_call=True) (its apps' quantum calls get qpu jobs of their own)")
        if session is not None and self.provider.per_call:
            raise ValueError("session= keeps one qpu allocation for a series of apps; per-call apps hold none")
        self.session = session
        self.workdir = workdir
        self.poll_interval = poll_interval
        self._numbers = itertools.count(1)
        self._tasks: dict[int, _Task] = {}
        self._sessions: dict[str, bool] = {}  # session job id -> still serving
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base: Path | None = None

    @property
    def base(self) -> Path:
        if self._base is None:
            raise RuntimeError("QpuJobExecutor used before start()")
        return self._base

    def start(self) -> None:
        self._base = make_private_dir(Path(self.workdir or Path(self.run_dir) / f"hcqw-{self.label}").absolute(),
                                      "Parsl hcqw work directory", PRIVATE_DIR_FIX)
        for sub in ("tasks", taskfiles.QUEUE, taskfiles.CLAIMED, taskfiles.SESSIONS):
            (self._base / sub).mkdir(parents=True, exist_ok=True)
        if not self.provider.workdir and not self.provider.script_dir:
            self.provider.workdir = str(self._base)
        self._thread = threading.Thread(target=self._watch, name=f"hcqw-{self.label}-watch", daemon=True)
        self._thread.start()

    def submit(self, func: Callable, resource_specification: dict[str, Any], *args: Any, **kwargs: Any) -> Future:
        if resource_specification:
            raise InvalidResourceSpecification(set(resource_specification),
                                               "qpu apps take their resources from the provider's settings")
        number = next(self._numbers)
        task = _Task(number, self.base / "tasks" / str(number), Future())
        task.future.parsl_executor_task_id = number  # type: ignore[attr-defined]
        task.identity = taskfiles.write_call(task.directory, self.provider.workflow, func, args, kwargs)
        with self._lock:
            self._tasks[number] = task
            if self.session:
                (self.base / taskfiles.QUEUE / str(number)).touch()  # after call.ckpt is complete
            else:
                task.job_id = self.provider.submit(self._command(str(task.directory)), 1, f"{self.label}-app{number}")
        return task.future

    def _command(self, target: str) -> str:
        q = shlex.quote
        command = f"{q(self.provider.settings.python)} -P -m parsl_hcqw.runner --workflow {q(self.provider.workflow)}"
        if self.session:
            s = self.session
            return (f"{command} --session {q(target)} --max-apps {s.max_apps} --max-seconds {s.max_seconds:g} "
                    f"--idle-seconds {s.idle_seconds:g}")
        return f"{command} {q(target)}"

    # -- the watcher: results by file (fast), job failures by SLURM status (rate-limited) --

    def _watch(self) -> None:
        last_status = 0.0
        while not self._stop.wait(self.poll_interval):
            try:
                self._collect_results()
                if self.session:
                    self._ensure_session()
                if time.monotonic() - last_status >= self.provider.status_polling_interval:
                    last_status = time.monotonic()
                    self._check_jobs()
            except Exception:  # noqa: BLE001 - keep watching; a dead watcher would hang every future
                log.exception("qpu executor watcher")

    def _finish(self, task: _Task, ok: bool, payload: Any) -> None:
        with self._lock:
            self._tasks.pop(task.number, None)
        if ok:
            task.future.set_result(payload)
        else:
            task.future.set_exception(payload)

    def _collect_results(self) -> None:
        with self._lock:
            tasks = list(self._tasks.values())
        for task in tasks:
            if (task.directory / taskfiles.RESULT).exists():
                try:
                    ok, payload = taskfiles.read_result(task.directory, self.provider.workflow, task.identity)
                except HcqwError as err:
                    ok, payload = False, err
                self._finish(task, ok, payload)

    def _lost(self, task: _Task, job_id: str) -> None:
        if (task.directory / taskfiles.RESULT).exists():
            return  # written between our two looks; the next round collects it
        status = self.provider.resources.get(job_id, {}).get("status")
        output = status.stdout_path if status else None
        detail = f"; output {output}:\n{tail(output)}" if output else ""
        self._finish(task, False, QpuAppLost(
            f"qpu app {task.number} (SLURM job {job_id}, {status}) ended without a result{detail}"))

    def _check_jobs(self) -> None:
        with self._lock:
            tasks = list(self._tasks.values())
            open_sessions = [j for j, serving in self._sessions.items() if serving]
        jobs = {t.job_id for t in tasks if t.job_id} | set(open_sessions)
        if not jobs:
            return
        states = dict(zip(jobs, self.provider.status(list(jobs))))
        for task in tasks:
            if task.job_id and states[task.job_id].terminal:
                self._lost(task, task.job_id)
        for job_id in open_sessions:
            if states[job_id].terminal:
                with self._lock:
                    self._sessions[job_id] = False
                for claimed in (self.base / taskfiles.CLAIMED).glob(f"*.{job_id}"):
                    with self._lock:
                        task = self._tasks.get(int(claimed.name.split(".")[0]))
                    if task:
                        self._lost(task, job_id)

    def _ensure_session(self) -> None:
        """Start a session job when apps are queued and no session serves them."""
        with self._lock:
            for job_id in [j for j, serving in self._sessions.items() if serving]:
                if (self.base / taskfiles.SESSIONS / f"{job_id}.closed").exists():
                    self._sessions[job_id] = False
            if any(self._sessions.values()) or not any((self.base / taskfiles.QUEUE).iterdir()):
                return
            job_id = self.provider.submit(self._command(str(self.base)), 1, "qpu-session")
            self._sessions[job_id] = True

    def shutdown(self) -> None:
        """Stop watching; end idle sessions, cancel every job still running an app; pending futures fail.

        Jobs whose app already returned are left to finish: the runner is only exiting, and a
        cancel would record a successful job as CANCELLED."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        (self.base / taskfiles.SESSIONS / taskfiles.STOP).touch()  # idle sessions end on their own
        deadline = time.monotonic() + SESSION_STOP_WAIT_S
        while self._serving() and time.monotonic() < deadline:
            time.sleep(0.1)
        with self._lock:
            tasks = [t for t in self._tasks.values() if not (t.directory / taskfiles.RESULT).exists()]
            self._tasks.clear()
            jobs = {t.job_id for t in tasks if t.job_id} | set(self._serving())
        active = [j for j, s in zip(jobs, self.provider.status(list(jobs))) if not s.terminal] if jobs else []
        if active:
            log.info("cancelling %d qpu job(s) still running: %s", len(active), ", ".join(sorted(active)))
            self.provider.cancel(active)
        for task in tasks:
            if not task.future.done():
                task.future.set_exception(QpuAppLost(f"qpu app {task.number} cancelled: the executor shut down"))
        super().shutdown()

    def _serving(self) -> list[str]:
        """Session jobs that have not marked themselves closed."""
        return [j for j, serving in self._sessions.items()
                if serving and not (self.base / taskfiles.SESSIONS / f"{j}.closed").exists()]


_held_apps = itertools.count(1)


class HeldQpuExecutor(HighThroughputExecutor):
    """The embedded ``qpu`` executor: HTEX whose apps hold the machine-local device (see the module docstring).

    ``workflow`` names the holds in the device queue and the metrics (set by ``hcqw_config``)."""

    workflow = "parsl"

    def submit(self, func: Callable, resource_specification: dict, *args: Any, **kwargs: Any) -> Future:
        node = f"{getattr(func, '__name__', 'app')}-{next(_held_apps)}"
        return super().submit(HeldApp(func, self.workflow, node), resource_specification, *args, **kwargs)


class HeldApp:
    """A ``qpu`` app's function, called in its worker while holding the worker's local device."""

    def __init__(self, func: Callable, workflow: str, node: str):
        functools.update_wrapper(self, func)
        self.func = func
        self.workflow = workflow
        self.node = node

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from hcqw.device import LocalDevice, call_held
        from hcqw.metrics import MetricsLog
        from hcqw import environment
        from hcqw.qpu import local_simulator

        simulator = local_simulator()
        if simulator is None:  # the worker's device is a QPU service: its sessions share it per lease
            return self.func(*args, **kwargs)
        metrics = MetricsLog(os.environ[environment.METRICS]) if os.environ.get(environment.METRICS) else None
        # open_qpu's default names, as engines set them per job
        names = {environment.WORKFLOW: self.workflow, environment.NODE: self.node}
        return call_held(LocalDevice(simulator), self.workflow, self.node, metrics, self.func, *args,
                         step_environment=names, **kwargs)
