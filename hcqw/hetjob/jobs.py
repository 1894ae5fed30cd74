"""SLURM jobs for workflow nodes: a cpu+qpu hetjob per quantum node, a cpu job otherwise.

The quantum node's batch script (component 0) is the first paper's listing 7 with the
roles of listings 5-6: it starts the gateway on the qpu node (``srun --het-group=1``),
runs the node in component 0, and ends the qpu component whenever the node's process
exits -- normally the node has already released it at the end of the quantum block;
the ``trap`` covers a raise, a SIGKILL of the node process and a SIGTERM of the script.

Scripts hold paths and ids only. Credentials never enter them nor the job environment
(``JobRequest`` refuses SLURM_JWT); the checkpoint key travels as a path.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hcqw import environment
from hcqw.environment import step_environment
from hcqw.hetjob.device import DEVICE_WAIT_S, PEER_TIMEOUT_S
from hcqw.paths import GATEWAY_ADDRESS, QPU_RELEASED, gateway_metrics, job_prefix, run_metrics, slurm_output
from hcqw.slurm import ComponentSpec, JobRequest
from hcqw.trust import PRIVATE_DIR_FIX, nearest_existing, require_private, submitter
from hcqw.slurm.commands import STEP_PENDING_MARKERS, UNREACHABLE_MARKERS
from hcqw.workflow import Node

#: UCX transports (PyPI mpich is ch4:ucx) between the components of an MPI quantum node, unless
#: the site sets ``UCX_TLS`` itself: every one but shared memory. UCX takes two processes with the
#: same boot id for one host and then talks shared memory, whose wire-up uses abstract unix sockets,
#: private to a network namespace: between hosts that share a kernel (containers, the lab's network
#: namespaces) the node hung in Connect. Measured: a port string is a UCX worker address listing
#: every transport of the opening process; the client picked sysv/posix/cma and never connected;
#: without them it used tcp on the qpu node's interface. The components are on different hosts by
#: design and their messages are small: nothing is lost. (A resident service over MPI keeps UCX's
#: defaults: its clients share its host.)
UCX_TLS_BETWEEN_HOSTS = "^sm"

#: Seconds srun waits to create the gateway's step on a busy qpu host before it asks slurmctld again.
STEP_WAIT_S = 5

#: Variables copied from the submitter's environment into every job when set: where
#: the code, the key (a path), per-user state and the target cluster's config are.
PASSED_ENV = ("PATH", "PYTHONPATH", "HOME", environment.CHECKPOINT_KEY, environment.STATE_DIR, "SLURM_CONF")


@dataclass(frozen=True)
class NodeJobSettings:
    """How a node becomes a job. ``transport``: ``zmq`` (default) or ``mpi`` (MPI DPM, PyPI mpich);
    ``simulator``: what the job's gateway simulates, unless it relays to ``device_service``."""

    cpu: ComponentSpec = ComponentSpec("cpu", time_limit=10)
    qpu: ComponentSpec = ComponentSpec("qpu", gres="qpu:1", time_limit=10)
    transport: str = "zmq"
    python: str = sys.executable
    simulator: str = "qsim"
    # A QPU service kept running on the qpu node (its node-local address, e.g. ipc://...; %n is
    # the qpu node's name, expanded there): the gateway relays to it instead of loading a
    # simulator per node (hcqw.hetjob.relay).
    device_service: str | None = None
    # Seconds each side of a quantum node gives a silent or disconnected peer before taking it for
    # dead: the gateway stops (and frees the qpu component) when the node goes quiet, the node
    # fails (and frees it) when the link to the gateway stays down.
    heartbeat_timeout: float = PEER_TIMEOUT_S
    # Seconds a run may wait for an offline or calibrating device before the node fails (and frees
    # the qpu node) with DeviceOffline, unless its code passes its own timeout.
    device_wait: float = DEVICE_WAIT_S
    connect_timeout: float = 120.0
    environment: Mapping[str, str] = field(default_factory=dict)  # added to / overriding PASSED_ENV
    # Where the user's loop module is (the directory `hcqw slurm run` was given in, checked private):
    # the job imports from it first, as `python -m` would there (hcqw.workflow.user_module_path).
    module_path: str | None = None

    def __post_init__(self) -> None:
        if self.transport not in ("zmq", "mpi"):
            raise ValueError(f"transport must be 'zmq' or 'mpi', not {self.transport!r}")


def job_environment(settings: NodeJobSettings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The job's environment: PASSED_ENV from ``base`` (default ``os.environ``), the venv's bin first on
    PATH (``mpiexec`` and the interpreter's tools), unbuffered Python output, then ``settings.environment``."""
    base = os.environ if base is None else base
    env = {k: base[k] for k in PASSED_ENV if base.get(k)}
    venv_bin = str(Path(settings.python).parent)
    env["PATH"] = venv_bin + ":" + env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings.environment)
    return env


def node_request(node: Node, *, loop_ref: str, params: Mapping, workflow: str, run_dir: Path,
                 settings: NodeJobSettings, dependencies: tuple[str, ...] = (),
                 env_base: Mapping[str, str] | None = None) -> JobRequest:
    """The ``JobRequest`` of one workflow node."""
    run_dir = Path(run_dir).absolute()
    quantum = node.uses_qpu  # a fused node too: its qpu component ends with its quantum part
    command = _runtime_command(node, loop_ref, params, workflow, run_dir, settings)
    if quantum:
        command += ' --pid-file "$JOBDIR/node.pid"'  # for operators and tests: the node process itself
    return command_request(command, workflow=workflow, name=node.name, workdir=run_dir, settings=settings,
                           quantum=quantum, dependencies=dependencies, env_base=env_base,
                           session_deadline=settings.connect_timeout)


def command_request(command: str, *, workflow: str, name: str, workdir: Path, settings: NodeJobSettings,
                    quantum: bool, dependencies: tuple[str, ...] = (), output: str | None = None,
                    env_base: Mapping[str, str] | None = None, session_deadline: float = 0) -> JobRequest:
    """Any shell ``command`` as a job: a cpu job, or with ``quantum`` a cpu+qpu hetjob.

    In a hetjob the command runs in component 0 with the gateway's address in
    ``$HCQW_GATEWAY_ADDRESS_FILE`` (``hcqw.qpu.open_qpu`` finds it there); the qpu
    component ends when the command closes its lease, or at the latest when it exits: a
    qpu-marked command that never opens a lease holds the qpu node for its whole run, as its
    ``qpu`` resource says. ``session_deadline`` (s, 0 = none) ends the qpu component earlier if
    no session is opened by then: for workflow nodes, which always open one.
    Job output goes to ``workdir/slurm/<name>-<jobid>.out`` unless ``output`` says otherwise,
    the job's private files (gateway address and log) to ``workdir/jobs/<name>.<jobid>/``, the
    QPU metrics (``$HCQW_METRICS``) to ``workdir/metrics/qpu.jsonl``.
    """
    workdir = Path(workdir).absolute()
    existing = nearest_existing(workdir)  # the job trusts what it finds there: only its user may write it
    require_private(existing, "run directory", PRIVATE_DIR_FIX, uid=submitter(existing))
    env = job_environment(settings, env_base)
    for key, value in step_environment(workflow, name, run_metrics(workdir), quantum=quantum).items():
        # The given environment may name the step otherwise; a classical job never gets a device.
        env[key] = value if key == environment.DEVICE else env.get(key, value)
    body = (quantum_body(command, job_prefix(workdir, name), gateway_metrics(workdir), settings,
                         session_deadline) if quantum else f"exec {command}\n")
    return JobRequest(
        workflow_id=workflow, node=name, body=body,
        components=(settings.cpu, settings.qpu) if quantum else (settings.cpu,),
        workdir=slurm_output(workdir), output=output or f"{name}-%j.out",
        environment=env, dependencies=dependencies, kill_on_invalid_dependency=True,
    )


def _runtime_command(node: Node, loop_ref: str, params: Mapping, workflow: str, run_dir: Path,
                     settings: NodeJobSettings) -> str:
    q = shlex.quote
    path = f" --path {q(str(settings.module_path))}" if settings.module_path else ""
    return (f"{q(settings.python)} -P -m hcqw.hetjob.runtime --loop {q(loop_ref)}{path} "
            f"--params {q(json.dumps(dict(params), sort_keys=True))} --node {q(node.name)} "
            f"--workflow {q(workflow)} --run-dir {q(str(run_dir))} --connect-timeout {settings.connect_timeout:g}")


def quantum_body(command: str, job_prefix: Path, gateway_metrics: Path, settings: NodeJobSettings,
                 session_deadline: float = 0) -> str:
    """The batch script of a hetjob: gateway on the qpu component, ``command`` in component 0."""
    q = shlex.quote
    mpi = settings.transport == "mpi"
    # Each side its own MPI_COMM_WORLD (listings 5-6); fork launcher: hydra must not srun.
    mpiexec = "mpiexec -launcher fork -n 1 " if mpi else ""
    # ZeroMQ: the gateway binds the qpu node's cluster address itself (hcqw.hetjob.address).
    address = '--address "mpi:file:$JOBDIR/gateway.port" ' if mpi else ""
    gateway = (f"{mpiexec}{q(settings.python)} -P -m hcqw.hetjob.gateway {address}"
               f'--address-file "$JOBDIR/{GATEWAY_ADDRESS}" --pid-file "$JOBDIR/gateway.pid" '
               f'--release-job "$SLURM_JOB_ID_HET_GROUP_1" '
               f"--simulator {q(settings.simulator)} --heartbeat-timeout {settings.heartbeat_timeout:g} "
               f"--connect-timeout {session_deadline:g} --metrics {q(str(gateway_metrics))}")
    if settings.device_service:
        gateway += f" --upstream {q(settings.device_service)}"
    unreachable, pending = ("|".join(f"*{shlex.quote(marker)}*" for marker in markers)
                            for markers in (UNREACHABLE_MARKERS, STEP_PENDING_MARKERS))
    # The MPI client must be a process of its own mpiexec; bash passes the PMI environment on.
    run = f"{mpiexec}bash -c {q(command)}" if mpi else f"( {command} )"
    ucx = f'export UCX_TLS="${{UCX_TLS:-{UCX_TLS_BETWEEN_HOSTS}}}"\n' if mpi else ""
    return f"""set -u
{ucx}JOBDIR={q(str(job_prefix))}.$SLURM_JOB_ID
# A requeued job keeps its id: it gets a directory of its own, never the last run's gateway address.
[ "${{SLURM_RESTART_COUNT:-0}}" = 0 ] || JOBDIR="$JOBDIR.r$SLURM_RESTART_COUNT"
# Fresh and the user's alone: a directory someone else made, or one others may write, could hold a
# planted gateway.address. (The run directory above was checked private at submission.)
mkdir -p -m 700 "$(dirname "$JOBDIR")"
mkdir -m 700 "$JOBDIR" 2>/dev/null || [ -d "$JOBDIR" ] && [ ! -L "$JOBDIR" ] && owner_mode=$(stat -c '%u %a' "$JOBDIR") \
  && [ "${{owner_mode% *}}" = "$(id -u)" ] && [ $(( 8#${{owner_mode#* }} & 8#022 )) = 0 ] || {{
  echo "hcqw: job directory $JOBDIR is not private to $(id -un) ($(stat -c '%U, mode %a' "$JOBDIR" 2>&1)); remove it, or use a run directory only you may write" >&2
  exit 1
}}
export JOBDIR  # the command may run in a shell of its own (under mpiexec), where it names its files by it
# The qpu component must never outlive the node's process, whatever ends it.
# While slurmctld is unreachable (restarting) scancel fails: retry for about two minutes.
release_qpu() {{
  for pause in 1 2 4 8 15 30 60; do
    said=$(scancel "$SLURM_JOB_ID_HET_GROUP_1" 2>&1) && return
    case "$said" in {unreachable}) sleep $pause ;; *) return ;; esac
  done
}}
# Once: not again if the node released it ("done" in {QPU_RELEASED} in the job directory).
trap '[ "$(cat "$JOBDIR/{QPU_RELEASED}" 2>/dev/null)" = done ] || release_qpu' EXIT
# Nor can srun create the gateway's step then: that is retried for about two minutes too. A step that
# waits for the qpu host (still finishing its last job: "Requested nodes are busy") gives up after
# {STEP_WAIT_S} s and asks again: srun waits for slurmctld's wake-up, which a restarted slurmctld never sends.
# Only while srun says it could not create the step: never a gateway that ran.
start_gateway() {{
  set -- 1 2 4 8 15 30 60
  until srun --het-group=1 -n1 --immediate={STEP_WAIT_S} {gateway} </dev/null >>"$JOBDIR/gateway.log" 2>&1; do
    said=$(tail -n 1 "$JOBDIR/gateway.log")
    case "$said" in *"Unable to create step"*) ;; *) return 1 ;; esac
    case "$said" in
      {pending}) ;;
      {unreachable}) [ $# -gt 0 ] || return 1; sleep "$1"; shift ;;
      *) return 1 ;;
    esac
  done
}}
start_gateway &
export {environment.GATEWAY_PID}=$! {environment.GATEWAY_ADDRESS_FILE}="$JOBDIR/{GATEWAY_ADDRESS}"
export {environment.GATEWAY_LOG}="$JOBDIR/gateway.log"
export {environment.PEER_TIMEOUT}={settings.heartbeat_timeout:g} {environment.DEVICE_WAIT}={settings.device_wait:g}
{run} &
wait $!
"""


def per_call_request(command: str, *, workflow: str, name: str, workdir: Path, settings: NodeJobSettings,
                     output: str | None = None, env_base: Mapping[str, str] | None = None) -> JobRequest:
    """Any shell ``command`` (an unsplit driver) as a cpu job whose quantum calls each get the QPU for that call
    only (per-call holding, ``hcqw.hetjob.percall``): what ``hcqw slurm submit`` does to a script, for the engine
    adapters. ``settings.cpu`` shapes the driver's job; ``settings.qpu`` (partition, gres, time limit, extra
    options) and ``settings.device_service`` each call's qpu job. The calls' private directories go to
    ``workdir/jobs/<name>.calls/``, the calls' signed records (a re-run under the same workflow id replays the
    finished calls) to ``workdir/calls/<name>/``, the QPU metrics to ``workdir/metrics/qpu.jsonl``, the job's output
    to ``workdir/slurm/<name>-<jobid>.out`` unless ``output`` says otherwise."""
    from dataclasses import replace

    from hcqw.hetjob.percall import CALL_RECORDS_DIR, PerCallSettings, driver_request
    from hcqw.paths import JOBS_DIR

    workdir = Path(workdir).absolute()
    existing = nearest_existing(workdir)  # the job trusts what it finds there: only its user may write it
    require_private(existing, "run directory", PRIVATE_DIR_FIX, uid=submitter(existing))
    qpu = settings.qpu
    calls = PerCallSettings(partition=qpu.partition, gres=qpu.gres or "qpu:1", options=tuple(qpu.extra),
                            time_limit=str(qpu.time_limit or 10), service=settings.device_service,
                            call_dir=workdir / JOBS_DIR / f"{name}.calls", python=settings.python,
                            heartbeat_timeout=settings.heartbeat_timeout, device_wait=settings.device_wait)
    request = driver_request(["/bin/bash", "-c", command], workflow=workflow, run_dir=workdir, cwd=slurm_output(workdir),
                             cpu=settings.cpu, settings=calls, node=name)
    env = {**job_environment(settings, env_base), **request.environment}
    # One driver's records apart from another's: each rule, app or wildcard of a run replays only its own calls.
    env[environment.PER_CALL_RECORDS] = str(workdir / CALL_RECORDS_DIR / name)
    return replace(request, environment=env, output=output or request.output)
