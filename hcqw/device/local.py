"""A device on this machine: a backend, its status, and FIFO acquisition across processes.

Quantum steps get a ``QPU`` lease from ``LocalDevice.acquire``; the lease is the step's
device context. Closing it releases the device to the next waiter, and a closed lease
refuses further work, so a step cannot keep using a device it no longer holds.
"""

from __future__ import annotations

import json
import os
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from hcqw.device.backend import SIMULATORS, DeviceLimits, DeviceStatus, QuantumBackend, batch_seed, make_backend
from hcqw.device.fifo_lock import FifoLock
from hcqw.device.work import Samples, WorkItem
from hcqw.errors import DeviceError, DeviceOffline
from hcqw.metrics import MetricsLog
from hcqw.paths import device_dir

_STATUS_POLL = 0.05  # s; how often a queue head re-reads the status while the device is unavailable


class LocalDevice:
    """One quantum device shared, one holder at a time, by every process on the machine.

    ``simulator`` is a registered name (``SIMULATORS``), a ``module:Class`` path or a ready
    backend. A registered one is created on first use, not here: a process that only queues for
    the device (``hcqw.device.hold``) never loads the simulator."""

    def __init__(self, simulator: QuantumBackend | str = "qsim", directory: Path | None = None, **options: Any):
        self._backend: QuantumBackend | None = None
        if isinstance(simulator, str) and simulator in SIMULATORS:
            self.name = simulator
            self._backend_options = options
        else:
            self._backend = make_backend(simulator, **options) if isinstance(simulator, str) else simulator
            self.name = self._backend.name
        self.directory = Path(directory) if directory else device_dir(self.name)
        self._lock = FifoLock(self.directory)
        self._status_file = self.directory / "status.json"

    @property
    def backend(self) -> QuantumBackend:
        if self._backend is None:
            self._backend = make_backend(self.name, **self._backend_options)
        return self._backend

    @property
    def limits(self) -> DeviceLimits:
        return self.backend.limits

    def status(self) -> DeviceStatus:
        forced = self._forced_status()
        if forced is not None:
            return forced
        return DeviceStatus.EXECUTING if self._lock.holders() else DeviceStatus.IDLE

    def set_status(self, status: DeviceStatus | str, reason: str = "") -> None:
        """Mark the device calibrating/offline (queued work waits), or back to idle."""
        status = DeviceStatus(status)
        if status in (DeviceStatus.CALIBRATING, DeviceStatus.OFFLINE):
            temp = self._status_file.with_suffix(".tmp")
            temp.write_text(json.dumps({"status": status.value, "reason": reason, "since": time.time()}))
            os.replace(temp, self._status_file)
        else:
            self._status_file.unlink(missing_ok=True)

    def queue(self) -> list[dict]:
        """Owners in the device queue, holder first."""
        return self._lock.holders()

    def acquire(self, workflow: str, node: str, timeout: float | None = None,
                metrics: MetricsLog | None = None, seed: int | None = None) -> "QPU":
        """Wait in FIFO order (and while calibrating/offline) until the device is ours.

        ``seed`` fixes the lease's sampling (see ``batch_seed``), so a node samples the
        same outcomes whichever engine or process runs it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ticket = self._lock.acquire({"workflow": workflow, "node": node}, timeout)
        try:
            self._wait_until_available(deadline)
        except BaseException:
            self._lock.release(ticket)
            raise
        return QPU(self, partial(self._lock.release, ticket), workflow, node, metrics, seed)

    def _forced_status(self) -> DeviceStatus | None:
        try:
            return DeviceStatus(json.loads(self._status_file.read_text())["status"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError, ValueError):
            return None

    def _wait_until_available(self, deadline: float | None) -> None:
        while (status := self._forced_status()) is not None:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeviceOffline(
                    f"device {self.name!r} is {status.value} and did not come back before the timeout; "
                    "retry later or raise the timeout"
                )
            time.sleep(_STATUS_POLL)


class QPU:
    """A lease on the device: run circuits while it is open; closing it frees the device.

    ``release`` frees the device: the lease's own queue ticket, or, for the lease of a step
    that holds the device already, the hand-back to the step's hold (``hcqw.device.hold``),
    which began at ``acquired_at``."""

    def __init__(self, device: LocalDevice, release: Callable[[], None], workflow: str, node: str,
                 metrics: MetricsLog | None, seed: int | None = None, acquired_at: float | None = None):
        self._device = device
        self._seed = seed
        self._batches = 0
        self._release: Callable[[], None] | None = release
        self.workflow = workflow
        self.node = node
        self._metrics = metrics
        self.acquired_at = time.time() if acquired_at is None else acquired_at

    @property
    def limits(self) -> DeviceLimits:
        return self._device.limits

    @property
    def is_open(self) -> bool:
        return self._release is not None

    def reseed(self, seed: int | None) -> None:
        """Restart seeding mid-lease, as a new lease would (the monolithic form does this per iteration)."""
        self._check_open()
        self._seed, self._batches = seed, 0

    def _check_open(self) -> None:
        if self._release is None:
            raise DeviceError(f"the device lease of {self.workflow}/{self.node} is closed; run circuits inside the quantum step")

    def run(self, circuit: Any, repetitions: int, params: Any = None) -> list:
        """Run one circuit at each sweep point; returns one ``cirq.ResultDict`` per point."""
        import cirq

        item = WorkItem.build(circuit, repetitions, params)
        samples = self.run_batch([item])[0]
        return [cirq.ResultDict(params=cirq.ParamResolver(p), measurements=s) for p, s in zip(item.params, samples)]

    def run_batch(self, items: Sequence[WorkItem]) -> list[list[Samples]]:
        self._check_open()
        if self._seed is not None:
            self._device.backend.reseed(batch_seed(self._seed, self._batches))
            self._batches += 1
        start = time.time()
        results = self._device.backend.execute(items)
        if self._metrics:
            self._metrics.record(
                "exec", workflow=self.workflow, node=self.node, device=self._device.name, start=start,
                end=time.time(), items=len(items), qubits=max(len(i.circuit.all_qubits()) for i in items),
                shots=sum(i.repetitions * len(i.params) for i in items),
            )
        return results

    def close(self) -> None:
        if self._release is None:
            return
        release, self._release = self._release, None
        released_at = time.time()
        release()
        if self._metrics:
            self._metrics.record("hold", workflow=self.workflow, node=self.node, device=self._device.name,
                                 start=self.acquired_at, end=released_at)

    def __enter__(self) -> "QPU":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
