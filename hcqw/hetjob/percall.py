"""Per-call holding: each quantum call of a classical driver gets the QPU from SLURM for that call only.

A driver script runs as one classical process -- a cpu job (``hcqw slurm submit``), or a script
on the submit host -- with ``HCQW_DEVICE=per-call``. Each ``open_qpu()`` lease then:

1. submits a qpu-only job (``HCQW_PER_CALL_PARTITION``/``_GRES``, default ``qpu``/``qpu:1``) whose
   one process is the device gateway (``hcqw.hetjob.gateway``), relaying to the resident QPU
   service of the qpu host SLURM gave it (``HCQW_PER_CALL_SERVICE``, ``%n`` = that host; unset,
   the gateway simulates itself);
2. waits in SLURM's queue until the job runs and its gateway publishes its address -- it binds the
   qpu host's cluster address, so a driver on a cpu node or the submit host reaches it -- in the
   call's private directory under ``HCQW_PER_CALL_DIR``;
3. opens a session there exactly as component 0 of a quantum node does (``GatewayDevice``).

Closing the lease closes the session (the gateway then stops and cancels its own job) and cancels
the job from here as well: the qpu allocation starts when the call needs the device and ends when
the call returns, and between calls SLURM gives the device to others. What a call is charged is
SLURM's record of its job. A driver killed while a call's job still waits leaves a gateway that
nobody connects to: it stops after ``CONNECT_TIMEOUT_S`` and cancels its job.

With ``ahead`` (``HCQW_PER_CALL_AHEAD=1``) the next call's job is submitted as a call ends, so SLURM's
start and the gateway's start-up run during the driver's classical part; the next lease takes that job
(or a fresh one if it has ended meanwhile). Only for a staged qpu host (gres ``qpu:N``, the resident
service with ``--exclusive-sessions``): the job waiting ahead holds one staging slot, charged, not the
device; on an unstaged host it would hold the device through the classical part. A job requested ahead
and never used stops after ``CONNECT_TIMEOUT_S`` without a session, or when the driver exits.
"""

from __future__ import annotations

import atexit
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

from hcqw import environment
from hcqw.errors import DeviceError
from hcqw.hetjob.device import DEVICE_WAIT_S, PEER_TIMEOUT_S, GatewayDevice, GatewayLease
from hcqw.metrics import MetricsLog
from hcqw.environment import step_environment
from hcqw.paths import GATEWAY_ADDRESS, GATEWAY_METRICS, run_metrics, slurm_output, state_dir
from hcqw.slurm import ComponentSpec, JobRequest, SlurmSettingsError
from hcqw.slurm.settings import TAG_PREFIX

log = logging.getLogger(__name__)

#: Seconds a call's gateway waits for the driver's session once it has published its address; the
#: driver polls for it every ``ADDRESS_POLL_S``, so this only bounds a driver that died meanwhile.
CONNECT_TIMEOUT_S = 30.0
ADDRESS_POLL_S = 0.02
#: Seconds between asking SLURM whether a call's job is still alive while it pends (one squeue each).
STATE_POLL_S = 1.0
NODE_FILE = "node"
CALL_RECORDS_DIR = "calls"  # in a driver's run directory


@dataclass(frozen=True)
class PerCallSettings:
    """How each call's qpu job is requested (``from_environment`` reads the ``HCQW_PER_CALL_*`` variables)."""

    partition: str = "qpu"
    gres: str = "qpu:1"
    options: tuple[str, ...] = ()
    time_limit: str = "10"
    service: str | None = None
    call_dir: Path = field(default_factory=lambda: state_dir() / "per-call")
    python: str = sys.executable
    heartbeat_timeout: float = PEER_TIMEOUT_S
    device_wait: float = DEVICE_WAIT_S
    ahead: bool = False

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> "PerCallSettings":
        given = {
            "partition": env.get(environment.PER_CALL_PARTITION),
            "gres": env.get(environment.PER_CALL_GRES),
            "time_limit": env.get(environment.PER_CALL_TIME_LIMIT),
            "service": env.get(environment.PER_CALL_SERVICE),
            "call_dir": Path(env[environment.PER_CALL_DIR]) if env.get(environment.PER_CALL_DIR) else None,
            "options": tuple(shlex.split(env.get(environment.PER_CALL_OPTIONS, ""))) or None,
            "ahead": _flag(env, environment.PER_CALL_AHEAD),
        }
        settings = cls(**{name: value for name, value in given.items() if value})
        try:
            settings.component()
        except SlurmSettingsError as err:  # named by the variables a user sets, not by hcqw's fields
            raise DeviceError(f"per-call settings ${environment.PER_CALL_PARTITION}, ${environment.PER_CALL_GRES}, "
                              f"${environment.PER_CALL_TIME_LIMIT}, ${environment.PER_CALL_OPTIONS}: {err} (the partition, "
                              "gres and time limit have variables of their own)") from None
        return settings

    def component(self) -> ComponentSpec:
        """The call's one component: refuses options hcqw sets itself (partition, gres...) by name."""
        return ComponentSpec(self.partition, gres=self.gres, time_limit=self.time_limit, extra=self.options)


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "no", "false"):
        return None
    if value in ("1", "yes", "true"):
        return True
    raise DeviceError(f"${name} is {value!r}: set it to 1 (or leave it unset)")


def call_job_name(workflow: str, node: str) -> str:
    """The SLURM job name of every call of a lease node: its tag (``JobRequest.tag``), which sacct keeps (a comment
    it keeps only with ``AccountingStoreFlags=job_comment``). The driver's own job is named apart (``.driver``)."""
    return f"{TAG_PREFIX}{workflow}:{node}"


def call_request(settings: PerCallSettings, workflow: str, node: str, call_dir: Path,
                 metrics: Path | None = None) -> JobRequest:
    """The qpu-only job of one call: the gateway, its address and log in ``call_dir`` (the caller's, 0700)."""
    q = shlex.quote
    gateway = (f"{q(settings.python)} -m hcqw.hetjob.gateway --address-file {q(str(call_dir / GATEWAY_ADDRESS))} "
               f"--pid-file {q(str(call_dir / 'gateway.pid'))} --release-job \"$SLURM_JOB_ID\" "
               f"--heartbeat-timeout {settings.heartbeat_timeout:g} --connect-timeout {CONNECT_TIMEOUT_S:g}")
    if metrics:
        gateway += f" --metrics {q(str(metrics))}"
    if settings.service:
        gateway += f" --upstream {q(settings.service)}"
    body = (f'echo "$SLURMD_NODENAME" > {q(str(call_dir / NODE_FILE))}\n'
            f"exec {gateway} </dev/null >>{q(str(call_dir / 'gateway.log'))} 2>&1\n")
    # Tagged with the lease's workflow and node, as its device execs name them (`hcqw usage` matches them by it).
    return JobRequest(workflow_id=workflow, node=node, name=call_job_name(workflow, node), body=body,
                      components=(settings.component(),),
                      workdir=call_dir, output="slurm-%j.out", environment={"PYTHONUNBUFFERED": "1"})


@dataclass
class _CallJob:
    """A call's qpu job as submitted: its id, private directory and submission time."""

    job: str
    call_dir: Path
    submitted: float


class PerCallDevice:
    """A ``DeviceProvider`` that acquires the QPU from SLURM for each lease (see the module docstring).

    ``backend``: where the calls' jobs go (default: sbatch on this cluster, ``SLURM_CONF``)."""

    def __init__(self, settings: PerCallSettings, backend=None, records_dir: Path | None = None):
        from hcqw.slurm.sbatch import SbatchBackend

        self.settings = settings
        self.backend = backend if backend is not None else SbatchBackend(poll_interval=STATE_POLL_S)
        self.records_dir = records_dir
        self._ahead: _CallJob | None = None  # the next call's job, requested as the last call ended (``ahead``)
        if settings.ahead:
            atexit.register(self.cancel_ahead)

    def acquire(self, workflow: str, node: str, timeout: float | None = None, metrics: MetricsLog | None = None,
                seed: int | None = None) -> Any:
        """The call's lease: with records (``records_dir``), a finished call replayed (``hcqw.hetjob.replay``) or a
        live one recorded; without, a live one."""
        if self.records_dir is None:
            return self._acquire_live(workflow, node, timeout, metrics, seed)
        from hcqw.checkpoint import Place
        from hcqw.hetjob.replay import CallRecords, RecordingLease, ReplayLease, check_seed, command_fingerprint

        records = CallRecords(self.records_dir, Place(workflow, command_fingerprint()))
        call = records.next_call()
        record = records.load(call)
        if record is not None:
            check_seed(record, seed, records.path(call))
            if metrics:
                metrics.record("replay", workflow=workflow, node=node, call=call, start=time.time(), end=time.time())
            log.info("%s/%s: call %d replayed from %s", workflow, node, call, records.path(call))
            return ReplayLease(record, records.path(call), workflow, node)
        return RecordingLease(self._acquire_live(workflow, node, timeout, metrics, seed), records, call, seed)

    def cancel_ahead(self) -> None:
        """Cancel the job requested ahead, if any (the driver is done calling)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            try:
                self.backend.cancel(ahead.job)
            except Exception as err:  # noqa: BLE001 - its gateway's connect time-out is the backstop
                log.warning("cancelling the qpu job %s requested ahead: %s", ahead.job, err)

    def _submit(self, workflow: str, node: str, metrics: MetricsLog | None) -> _CallJob:
        self.settings.call_dir.mkdir(parents=True, exist_ok=True)
        call_dir = Path(tempfile.mkdtemp(prefix=f"{node}.", dir=self.settings.call_dir))  # 0700: the address is ours
        gateway_metrics = metrics.path.with_name(GATEWAY_METRICS) if metrics else None  # beside the run's own
        submitted = time.time()
        job = self.backend.submit(call_request(self.settings, workflow, node, call_dir, gateway_metrics))
        return _CallJob(job, call_dir, submitted)

    def _take_ahead(self) -> _CallJob | None:
        """The job requested ahead, unless it already ended (its gateway waited ``CONNECT_TIMEOUT_S`` for us)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and self.backend.status([ahead.job])[ahead.job].phase.terminal:
            log.info("the qpu job %s requested ahead has ended; requesting a new one", ahead.job)
            return None
        return ahead

    def _acquire_live(self, workflow: str, node: str, timeout: float | None, metrics: MetricsLog | None,
                      seed: int | None) -> GatewayLease:
        """Submit this call's qpu job (or take the one requested ahead), wait (at most ``timeout`` s in all, else as
        long as SLURM queues it) for its gateway, and open a session there; the job is cancelled on any failure."""
        asked = time.time()
        ahead = self._take_ahead() if self.settings.ahead else None
        try:
            return self._open(ahead or self._submit(workflow, node, metrics), workflow, node, timeout, metrics, seed,
                              asked)
        except DeviceError as err:
            if ahead is None:
                raise
            # Its gateway may have given up waiting just as we came: one fresh request, as without ahead.
            log.info("the qpu job %s requested ahead failed (%s); requesting a new one", ahead.job, err)
            return self._open(self._submit(workflow, node, metrics), workflow, node, timeout, metrics, seed, asked)

    def _open(self, call: _CallJob, workflow: str, node: str, timeout: float | None, metrics: MetricsLog | None,
              seed: int | None, asked: float) -> GatewayLease:
        job, call_dir = call.job, call.call_dir
        cancel = lambda: self.backend.cancel(job)  # noqa: E731 - the gateway cancels it too; either suffices

        def release() -> None:  # the call ended (or its gateway was lost): free its job, request the next
            cancel()
            if self.settings.ahead:
                try:
                    self._ahead = self._submit(workflow, node, metrics)
                except Exception as err:  # noqa: BLE001 - the next call then requests its job itself
                    log.warning("%s/%s: could not request the next call's qpu job ahead: %s", workflow, node, err)
        try:
            self._wait_for_gateway(job, call_dir, timeout, asked)
            started = time.time()
            qpu_node = (call_dir / NODE_FILE).read_text().strip() or None
            remaining = None if timeout is None else max(0.0, timeout - (started - asked))
            device = _CallGateway(call_dir / GATEWAY_ADDRESS, connect_timeout=CONNECT_TIMEOUT_S, release=release,
                                   gateway_log=str(call_dir / "gateway.log"), peer_timeout=self.settings.heartbeat_timeout,
                                   device_wait=self.settings.device_wait, device_name=qpu_node, job=job)
            lease = device.acquire(workflow, node, timeout=remaining, metrics=metrics, seed=seed)
        except BaseException:
            cancel()
            raise
        if metrics:
            # asked -> gateway ready -> session open: what acquiring the QPU from SLURM cost this call (``submitted``:
            # when its job was submitted, before ``start`` if it was requested ahead).
            metrics.record("acquire", workflow=workflow, node=node, device=qpu_node, job=job, start=asked,
                           submitted=call.submitted, allocated=started, end=lease.acquired_at)
        log.info("%s/%s: qpu job %s on %s acquired in %.3f s", workflow, node, job, qpu_node,
                 lease.acquired_at - asked)
        return lease

    def _wait_for_gateway(self, job: str, call_dir: Path, timeout: float | None, submitted: float) -> None:
        address = call_dir / GATEWAY_ADDRESS
        next_check = time.monotonic() + STATE_POLL_S
        while not (address.exists() and address.read_text().strip()):
            now = time.monotonic()
            if timeout is not None and time.time() - submitted > timeout:
                raise DeviceError(f"the qpu job {job} of this call did not start within {timeout:g} s "
                                  f"(squeue -j {job} says why it waits); it is cancelled")
            if now >= next_check:
                next_check = now + STATE_POLL_S
                state = self.backend.status([job])[job]
                if state.phase.terminal:
                    raise DeviceError(f"the qpu job {job} of this call ended ({state.phase.value}) before its gateway "
                                      f"was ready; output in {call_dir}{_gateway_says(call_dir / 'gateway.log')}")
            time.sleep(ADDRESS_POLL_S)


def _gateway_says(log_path: Path) -> str:
    """Why a call's gateway stopped, from its log: its error and stop lines, and the exception's own message."""
    from hcqw.slurm.backend import tail

    lines = tail(log_path, 40).splitlines() if log_path.exists() else []
    why = [line for line in lines if "gateway stopping:" in line or " gateway ERROR" in line][-2:]
    # A traceback's last unindented line that is not a log record is the exception with its message.
    raised = [line for line in lines if line.strip() and not line[:1].isspace() and not line[:4].isdigit()
              and not line.startswith("Traceback")][-1:]
    text = "\n".join(why + raised).strip()
    return f"; its log says:\n{text}" if text else ""


class _CallGateway(GatewayDevice):
    """A call's gateway, named in errors by its own job (not a hetjob's component 1)."""

    def describe(self, address: str | None = None) -> str:
        where = f" at {address}" if address else ""
        return f"the per-call gateway of qpu job {self.job} on {self.device_name or '?'}{where} (log: {self.gateway_log})"


#: One provider per settings in a process: ``open_qpu`` asks for the device at every call, and the job one call
#: requested ahead must be found by the next.
_PROVIDERS: dict[tuple[PerCallSettings, Path | None], PerCallDevice] = {}


def per_call_device(env: Mapping[str, str] | None = None) -> PerCallDevice:
    """The per-call provider as the environment describes it (``HCQW_PER_CALL_*``), the same one for the same
    settings throughout the process."""
    env = os.environ if env is None else env
    records = env.get(environment.PER_CALL_RECORDS)
    key = (PerCallSettings.from_environment(env), Path(records) if records else None)
    if key not in _PROVIDERS:
        _PROVIDERS[key] = PerCallDevice(key[0], records_dir=key[1])
    return _PROVIDERS[key]


def driver_environment(settings: PerCallSettings, workflow: str, node: str, run_dir: Path) -> dict[str, str]:
    """What a driver needs for per-call holding: the mode, its calls' settings and records (``run_dir/calls``: a
    re-run under the same workflow id replays the finished calls), and the step's names and metrics."""
    env = step_environment(workflow, node, run_metrics(run_dir), quantum=True)
    env.update({
        environment.PER_CALL_RECORDS: str(Path(run_dir) / CALL_RECORDS_DIR),
        environment.DEVICE: environment.PER_CALL,
        environment.PER_CALL_PARTITION: settings.partition,
        environment.PER_CALL_GRES: settings.gres,
        environment.PER_CALL_TIME_LIMIT: str(settings.time_limit),
        environment.PER_CALL_DIR: str(settings.call_dir),
    })
    if settings.options:
        env[environment.PER_CALL_OPTIONS] = shlex.join(settings.options)
    if settings.service:
        env[environment.PER_CALL_SERVICE] = settings.service
    if settings.ahead:
        env[environment.PER_CALL_AHEAD] = "1"
    return env


def driver_request(argv: list[str], *, workflow: str, run_dir: Path, cwd: Path, cpu: ComponentSpec,
                   settings: PerCallSettings, node: str = "driver") -> JobRequest:
    """A driver (``argv``: the command, e.g. python and the script with its arguments) as a cpu job with per-call
    holding; ``settings.call_dir`` should be ``<run_dir>/jobs``. Its output goes to ``run_dir/slurm``."""
    q = shlex.quote
    call_jobs = call_job_name(workflow, node)
    body = f"""cd {q(str(cwd))}
{shlex.join(argv)} &
driver=$!
# A call's qpu job never outlives the driver: whatever of them is left when it ends (killed, or this job cancelled)
# is cancelled here; their gateways' own time-outs are the backstop.
release_calls() {{ scancel -u "$(id -un)" --name={q(call_jobs)} 2>/dev/null; }}
trap 'kill $driver 2>/dev/null; release_calls; exit 143' TERM
wait $driver
rc=$?
release_calls
exit $rc
"""
    env = {"PYTHONUNBUFFERED": "1", **driver_environment(settings, workflow, node, run_dir)}
    return JobRequest(workflow_id=workflow, node=node, name=f"{call_job_name(workflow, node)}.driver", body=body,
                      components=(cpu,), workdir=slurm_output(run_dir), output=f"{node}-%j.out", environment=env)
