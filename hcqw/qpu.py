"""The quantum device of the current process, wherever it runs: ``open_qpu()``.

Code that is not a ``HybridLoop`` -- a Snakemake rule's script, a Parsl app, a plain
script -- opens its quantum block with ``open_qpu()`` and closes it when the block ends::

    with open_qpu(seed=7) as qpu:
        counts = qpu.run(circuit, repetitions=1000)

Which device that is depends on where the process runs, so the same code works unchanged on
a laptop and on a cluster:

1. inside a quantum node's hetjob made by hcqw (``HCQW_GATEWAY_ADDRESS_FILE`` set by the job
   script): the job's own gateway on the qpu node; closing the lease frees the qpu component
   at once, while the rest of the job goes on;
2. with ``HCQW_DEVICE_ADDRESS`` set: a running QPU service (``hcqw device serve``), shared
   through its queue;
3. otherwise the machine-local device, one holder at a time machine-wide (the embedded default;
   backend ``$HCQW_DEVICE_BACKEND``, default qsim) -- except in a classical job, which hcqw
   marks with ``HCQW_DEVICE=none``: there opening the device is an error, not a simulation
   on a compute node. A qpu-marked step that an engine runs on this machine holds that device
   for its whole run (``hcqw.device.hold``, ``$HCQW_DEVICE_HOLD``): its first lease is the
   hold, and closing it frees the device while the step goes on.

The lease's workflow and node name default to ``$HCQW_WORKFLOW`` and ``$HCQW_NODE`` (engines
set them per job), and its metrics go to ``$HCQW_METRICS`` when set.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Mapping
from typing import Any

from hcqw import environment
from hcqw.errors import DeviceError
from hcqw.metrics import MetricsLog
from hcqw.service.client import ServiceClient, SessionLease
from hcqw.workflow import DeviceLease, DeviceProvider


def current_device(env: Mapping[str, str] | None = None) -> DeviceProvider:
    """The device provider for this process (see the module docstring for the order)."""
    env = os.environ if env is None else env
    if env.get(environment.GATEWAY_ADDRESS_FILE):
        return gateway_device(env)
    if env.get(environment.DEVICE_ADDRESS):
        return ServiceDevice(env[environment.DEVICE_ADDRESS])
    if env.get(environment.DEVICE) == environment.NO_DEVICE:
        raise DeviceError(f"{env.get(environment.NODE) or 'this job'} runs as a classical job, without a qpu component; "
                          "mark it as a quantum node (Snakemake: resources qpu=1; Parsl: executors=['qpu'])")
    from hcqw.device.hold import HeldDevice
    from hcqw.device.local import LocalDevice

    backend = env.get(environment.DEVICE_BACKEND) or "qsim"
    return HeldDevice(env[environment.DEVICE_HOLD], backend) if env.get(environment.DEVICE_HOLD) else LocalDevice(backend)


def local_backend(env: Mapping[str, str] | None = None) -> str | None:
    """The backend of the machine-local device code in ``env`` opens; None where it opens a hetjob's
    gateway or a QPU service, which hold per lease (engines hold the local one per step: ``hcqw.device.hold``)."""
    env = os.environ if env is None else env
    if env.get(environment.GATEWAY_ADDRESS_FILE) or env.get(environment.DEVICE_ADDRESS):
        return None
    return env.get(environment.DEVICE_BACKEND) or "qsim"


def gateway_device(env: Mapping[str, str] | None = None, connect_timeout: float = 120.0) -> DeviceProvider:
    """The gateway of the hetjob this process runs in; an error outside one."""
    from hcqw.hetjob.device import DEVICE_WAIT_S, PEER_TIMEOUT_S, GatewayDevice

    env = os.environ if env is None else env
    address_file = env.get(environment.GATEWAY_ADDRESS_FILE)
    if not address_file:
        raise DeviceError(f"not inside an hcqw quantum job (no ${environment.GATEWAY_ADDRESS_FILE}): this node has no "
                          "qpu component; submit it as a quantum node (e.g. resources qpu=1)")
    pid = env.get(environment.GATEWAY_PID)
    peer_timeout, device_wait = env.get(environment.PEER_TIMEOUT), env.get(environment.DEVICE_WAIT)
    return GatewayDevice(address_file, connect_timeout=connect_timeout, gateway_pid=int(pid) if pid else None,
                         gateway_log=env.get(environment.GATEWAY_LOG),
                         peer_timeout=float(peer_timeout) if peer_timeout else PEER_TIMEOUT_S,
                         device_wait=float(device_wait) if device_wait else DEVICE_WAIT_S)


def open_qpu(workflow: str | None = None, node: str | None = None, *, seed: int | None = None,
             timeout: float | None = None, metrics: MetricsLog | None = None) -> DeviceLease:
    """Acquire this process's device (waiting in its queue) and return the open lease.

    ``timeout`` bounds the wait, including calibrating/offline windows (``DeviceOffline``
    after it; in a quantum job it defaults to the job's ``device_wait``, so a device that stays
    down gives the qpu node back); ``seed`` makes sampling reproducible on every kind of device."""
    workflow = workflow or os.environ.get(environment.WORKFLOW) or "adhoc"
    node = node or os.environ.get(environment.NODE) or f"pid{os.getpid()}"
    if metrics is None and os.environ.get(environment.METRICS):
        metrics = MetricsLog(os.environ[environment.METRICS])
    return current_device().acquire(workflow, node, timeout=timeout, metrics=metrics, seed=seed)


class ServiceDevice:
    """A ``DeviceProvider`` over a running QPU service: each lease is one session on its own connection.

    Unlike a local or gateway lease, a session does not hold the device: the service
    interleaves the work items of all open sessions in its queue. The run's metrics get one
    ``session`` event per lease; the device's busy intervals are in the service's own log.
    """

    def __init__(self, address: str, user: str | None = None, priority: int = 0, control_timeout: float = 10.0):
        self.address = address
        self.user = user or _user()
        self.priority = priority
        self.control_timeout = control_timeout

    def acquire(self, workflow: str, node: str, timeout: float | None = None, metrics: MetricsLog | None = None,
                seed: int | None = None) -> "ServiceLease":
        client = ServiceClient(self.address, timeout=self.control_timeout)
        try:
            session = client.session(workflow, node, user=self.user, timeout=timeout, priority=self.priority,
                                     seed=seed)
        except BaseException:
            client.close()
            raise
        return ServiceLease(client, session, metrics)


class ServiceLease(SessionLease):
    """One service session and its connection; closing it ends both."""

    def __init__(self, client: Any, session: Any, metrics: MetricsLog | None):
        super().__init__(client, session)
        self._metrics = metrics

    def close(self) -> None:
        if not self._session.is_open:
            return
        try:
            self._session.close()
        finally:
            self._client.close()
            if self._metrics:
                self._metrics.record("session", workflow=self.workflow, node=self.node, device=self._client.address,
                                     start=self.acquired_at, end=time.time())


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return str(os.getuid())
