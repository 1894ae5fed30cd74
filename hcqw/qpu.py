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
2. with ``HCQW_DEVICE=per-call`` (a driver launched by ``hcqw slurm submit``, or a script given the
   ``HCQW_PER_CALL_*`` settings): each lease is a qpu job of its own, submitted when the lease is
   opened and cancelled when it closes (``hcqw.hetjob.percall``); between leases nothing is held;
3. with ``HCQW_DEVICE_ADDRESS`` set: a running QPU service (``hcqw device serve``), shared
   through its queue;
4. otherwise the machine-local device, one holder at a time machine-wide (the embedded default;
   simulator ``$HCQW_SIMULATOR``, default qsim) -- except in a classical job, which hcqw
   marks with ``HCQW_DEVICE=none``: there opening the device is an error, not a simulation
   on a compute node. A qpu-marked step that an engine runs on this machine holds that device
   for its whole run (``hcqw.device.hold``, ``$HCQW_DEVICE_HOLD``): its first lease is the
   hold, and closing it frees the device while the step goes on.

This module only chooses: the providers are ``hcqw.hetjob.device.GatewayDevice``,
``hcqw.hetjob.percall.PerCallDevice``,
``hcqw.service.device.ServiceDevice`` and ``hcqw.device.local.LocalDevice`` /
``hcqw.device.hold.HeldDevice``, each behind the contract in ``hcqw.device.provider``.

The lease's workflow and node name default to ``$HCQW_WORKFLOW`` and ``$HCQW_NODE`` (engines
set them per job), and its metrics go to ``$HCQW_METRICS`` when set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from hcqw import environment
from hcqw.errors import DeviceError
from hcqw.metrics import MetricsLog

if TYPE_CHECKING:  # a quantum job's start-up is mostly imports: numpy comes with the first results
    from hcqw.device.provider import DeviceLease, DeviceProvider


def current_device(env: Mapping[str, str] | None = None) -> DeviceProvider:
    """The device provider for this process (see the module docstring for the order)."""
    env = os.environ if env is None else env
    if env.get(environment.GATEWAY_ADDRESS_FILE):
        from hcqw.hetjob.device import gateway_device

        return gateway_device(env)
    mode = env.get(environment.DEVICE)
    if mode and mode not in (environment.PER_CALL, environment.NO_DEVICE):
        raise DeviceError(f"${environment.DEVICE} is {mode!r}: use {environment.PER_CALL!r} (each quantum call gets "
                          f"the qpu from SLURM for itself) or leave it unset")
    if mode == environment.PER_CALL:
        from hcqw.hetjob.percall import per_call_device

        return per_call_device(env)
    if env.get(environment.DEVICE_ADDRESS):
        from hcqw.service.device import ServiceDevice

        return ServiceDevice(env[environment.DEVICE_ADDRESS])
    if env.get(environment.DEVICE) == environment.NO_DEVICE:
        raise DeviceError(f"{env.get(environment.NODE) or 'this job'} runs as a classical job, without a qpu component; "
                          "mark it as a quantum node (Snakemake: resources qpu=1; Parsl: executors=['qpu'])")
    from hcqw.device.hold import HeldDevice
    from hcqw.device.local import LocalDevice

    simulator = env.get(environment.SIMULATOR) or "qsim"
    return HeldDevice(env[environment.DEVICE_HOLD], simulator) if env.get(environment.DEVICE_HOLD) else LocalDevice(simulator)


def local_simulator(env: Mapping[str, str] | None = None) -> str | None:
    """The simulator of the machine-local device code in ``env`` opens; None where it opens a hetjob's
    gateway or a QPU service, which hold per lease (engines hold the local one per step: ``hcqw.device.hold``)."""
    env = os.environ if env is None else env
    if env.get(environment.GATEWAY_ADDRESS_FILE) or env.get(environment.DEVICE_ADDRESS) \
            or env.get(environment.DEVICE) == environment.PER_CALL:
        return None
    return env.get(environment.SIMULATOR) or "qsim"


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
