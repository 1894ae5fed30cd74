"""A qpu-marked step holds the local device for its whole run; its ``open_qpu`` lease is that hold.

On SLURM a quantum node's job holds the qpu node from its start, and the node's code may end
the hold early: closing its ``open_qpu`` lease ends the qpu component while the job runs on.
This module gives the machine-local device (``LocalDevice`` and its cross-process FIFO) the
same meaning for the steps engines run on this machine (a Snakemake rule with
``resources: qpu=1``, a Parsl ``qpu`` app):

- the *holder* takes the step's place in the device's FIFO before the step starts and keeps
  it while the step runs, so a step that calls a simulator directly has the device to itself,
  across workflows and engines;
- the step's first ``open_qpu()`` does not queue again (it would wait behind its own hold
  forever): ``hcqw.qpu.current_device`` finds ``$HCQW_DEVICE_HOLD`` and returns a
  ``HeldDevice``, whose lease *is* the hold;
- closing that lease hands the hold back: the next waiter of any workflow or engine gets the
  device at once, while the step goes on with its classical work. Later leases of the step
  queue like anyone else's.

Why this shape. The FIFO ticket is an ``flock``, which the kernel drops when its process dies;
so the hold lives in a process that lives exactly as long as the step, never in an engine's
scheduler (a scheduler outlives a dead step, and its own death would free the device under
steps still running). Snakemake runs each job as a process: the job runs as
``python -m hcqw.device.hold ... -- COMMAND`` (``run_held``), a small parent that holds and
waits, so the engine's cancel (kill the job's process group) ends the hold with the job.
Parsl runs an app inside a long-lived worker process: the hold is taken around the call, in
that worker (``call_held``). Both hand back through one channel: a FIFO special file in the
device's private directory, named by ``$HCQW_DEVICE_HOLD``. An environment variable reaches
every process the step starts (a rule's script runs in a subprocess of Snakemake's job), where
an inherited file descriptor would not (Snakemake and ``subprocess`` close them). The step
*claims* the channel by renaming it (exactly one lease wins) and writes one byte when that
lease closes; the holder's watcher thread reads it and releases the ticket. The step's end
writes another byte, so a step that never opens a lease is held until it ends, and no longer.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from hcqw import environment
from hcqw.device.local import QPU, LocalDevice
from hcqw.errors import DeviceError
from hcqw.metrics import MetricsLog

log = logging.getLogger(__name__)


_HAND_BACK = b"h"  # the step's lease closed
_STEP_ENDED = b"e"  # the step ended (it may never have opened a lease)


class DeviceHold:
    """The holder's side: the step's place on the device, from before its start until hand-back or its end.

    Use it through ``holding``, which runs ``watch`` in a thread and ends the hold with the step."""

    def __init__(self, device: LocalDevice, workflow: str, node: str, metrics: MetricsLog | None = None):
        self.device = device
        self.metrics = metrics
        # The hold's event is recorded by whoever ends it (a handed-back lease records its own).
        self._lease = device.acquire(workflow, node)
        try:
            holds = device.directory / "holds"
            holds.mkdir(mode=0o700, exist_ok=True)
            # We hold the device, so every other channel here belongs to a hold that has ended: handed
            # back, or its holder killed outright (SIGKILL skips clean-up; the kernel freed its ticket).
            for stale in holds.iterdir():
                shutil.rmtree(stale, ignore_errors=True)
            self.directory = Path(tempfile.mkdtemp(dir=holds))
            self._channel = self.directory / "channel"
            os.mkfifo(self._channel, 0o600)
            # Opened for reading and writing: the watcher's read waits for a byte and never sees end-of-file.
            self._fd = os.open(self._channel, os.O_RDWR)
        except BaseException:
            self._lease.close()
            raise
        self.handed_back = False

    @property
    def environment(self) -> dict[str, str]:
        """What hands the hold to the step's ``open_qpu`` (``HeldDevice``)."""
        spec = {"channel": str(self._channel), "since": self._lease.acquired_at}
        if self.metrics:
            spec["metrics"] = str(self.metrics.path)
        return {environment.DEVICE_HOLD: json.dumps(spec)}

    def watch(self) -> None:
        """Wait until the step hands the hold back or ends, then free the device."""
        self.handed_back = os.read(self._fd, 1) == _HAND_BACK
        released = time.time()  # before the next holder can start: recorded holds never overlap
        self._lease.close()
        log.debug("%s/%s: device %s released (%s)", self._lease.workflow, self._lease.node, self.device.name,
                  "handed back" if self.handed_back else "step ended")
        if self.metrics and not self.handed_back:
            self.metrics.record("hold", workflow=self._lease.workflow, node=self._lease.node, device=self.device.name,
                                start=self._lease.acquired_at, end=released)

    def step_ended(self) -> None:
        # Take the channel first, so nothing the step left running can claim a device about to be freed.
        try:
            os.rename(self._channel, self.directory / "ended")
        except FileNotFoundError:
            pass  # the step claimed it
        os.write(self._fd, _STEP_ENDED)

    def close(self) -> None:
        """Remove the channel, once ``watch`` has returned."""
        os.close(self._fd)
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def holding(device: LocalDevice, workflow: str, node: str, metrics: MetricsLog | None = None) -> Iterator[dict[str, str]]:
    """Hold ``device`` (waiting in its FIFO) while the body runs one step; yields the environment
    the step needs so that its ``open_qpu`` uses, and hands back, this hold."""
    hold = DeviceHold(device, workflow, node, metrics)
    watcher = threading.Thread(target=hold.watch, name=f"hcqw-hold-{node}", daemon=True)
    watcher.start()
    try:
        yield hold.environment
    finally:
        hold.step_ended()
        watcher.join()
        hold.close()


def call_held(device: LocalDevice, workflow: str, node: str, metrics: MetricsLog | None, func: Callable[..., Any],
              *args: Any, step_environment: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
    """Call ``func`` in this process as a step holding ``device`` (a Parsl ``qpu`` app in its worker),
    with ``step_environment`` set for the call as an engine sets a job's."""
    with holding(device, workflow, node, metrics) as environment:
        environment = {**(step_environment or {}), **environment}
        previous = {name: os.environ.get(name) for name in environment}
        os.environ.update(environment)
        try:
            return func(*args, **kwargs)
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def run_held(device: LocalDevice, workflow: str, node: str, metrics: MetricsLog | None, argv: list[str]) -> int:
    """Run ``argv`` as a step holding ``device``; its return code (``-N``: killed by signal N)."""
    with holding(device, workflow, node, metrics) as environment:
        proc = subprocess.Popen(argv, env={**os.environ, **environment})
        try:
            code = proc.wait()
        except BaseException:
            # We are stopped on our own (an engine's cancel signals the whole process group):
            # the step must not run on without the hold.
            proc.terminate()
            proc.wait()
            raise
    return code


def hold_command(simulator: str, workflow: str, node: str, metrics: Path | str | None = None) -> list[str]:
    """The argv prefix that runs a command as a step holding the local device of ``simulator`` (``main``)."""
    # -P: the step's working directory (anyone's, e.g. a shared project dir) never shadows hcqw's modules.
    argv = [sys.executable, "-P", "-m", "hcqw.device.hold", "--simulator", simulator, "--workflow", workflow, "--node", node]
    if metrics is not None:
        argv += ["--metrics", str(metrics)]
    return argv + ["--"]


class HeldDevice:
    """``open_qpu``'s device in a step that holds the local device (``$HCQW_DEVICE_HOLD``).

    The first lease is the hold, without queueing; closing it hands the hold back and records the
    hold (from its start) in the lease's metrics, or the holder's. Once it is claimed or the step
    has ended, leases queue on the device like any other."""

    def __init__(self, hold: str, simulator: str = "qsim"):
        try:
            spec = json.loads(hold)
            self._channel = Path(spec["channel"])
            self._since = float(spec["since"])
            self._metrics = MetricsLog(spec["metrics"]) if spec.get("metrics") else None
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise DeviceError(f"${environment.DEVICE_HOLD} is not a device hold ({err}): hcqw sets it for qpu-marked steps; "
                              f"unset it to queue for the device instead") from None
        self.device = LocalDevice(simulator)

    def acquire(self, workflow: str, node: str, timeout: float | None = None, metrics: MetricsLog | None = None,
                seed: int | None = None) -> QPU:
        hand_back = self._claim()
        if hand_back is None:
            return self.device.acquire(workflow, node, timeout=timeout, metrics=metrics, seed=seed)
        # The hold's event goes to the step's metrics, else to the holder's (a handed-back hold is the lease's to record).
        return QPU(self.device, hand_back, workflow, node, metrics or self._metrics, seed, acquired_at=self._since)

    def release(self) -> None:
        """End the step's hold now if no lease has claimed it (a fused step whose quantum part had nothing to
        run): the holder frees the device and records the hold, as when the step ends."""
        end_hold = self._claim(_STEP_ENDED)
        if end_hold is not None:
            end_hold()

    def _claim(self, message: bytes = _HAND_BACK) -> Callable[[], None] | None:
        claimed = self._channel.with_name(f"claimed-{os.getpid()}")
        try:
            os.rename(self._channel, claimed)  # atomic: one claimer wins
            fd = os.open(claimed, os.O_WRONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            return None  # claimed before, or the step's hold has ended
        except OSError as err:
            if err.errno == errno.ENXIO:  # no reader: the holder is gone, and its hold with it
                return None
            raise
        return partial(_send, fd, message)


def _send(fd: int, message: bytes) -> None:
    try:
        os.write(fd, message)
    except BrokenPipeError:
        pass  # the holder is gone, and its hold with it
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hcqw.device.hold",
        description="Run COMMAND as a qpu-marked step: it holds the machine-local device from its start until "
                    "it ends, or until its open_qpu lease closes.")
    parser.add_argument("--simulator", default="qsim", help="the local device's simulator (default: qsim)")
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--metrics", help="metrics log (JSON lines) that gets the hold's event")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the step's command after --")
    # SIGTERM (an engine's cancel) unwinds like Ctrl-C: the hold's clean-up runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    metrics = MetricsLog(args.metrics) if args.metrics else None
    code = run_held(LocalDevice(args.simulator), args.workflow, args.node, metrics, command)
    if code < 0:  # end as the step did, so the engine reports the signal that killed it
        if -code != signal.SIGKILL:  # SIGKILL has no handler to reset
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
