"""``with hcqw_parsl(config) as dfk:`` -- a Parsl run that cleans up after itself, even on a raise.

``parsl.load`` alone leaves the interchange, worker pools and batch jobs behind when the
script raises before ``dfk.cleanup()``. This context manager always cleans up, does not wait
for running apps when the body raised (Parsl's ``cleanup`` exit mode), and then makes sure:

- every block of every executor is cancelled (HTEX blocks through their provider, qpu app and
  session jobs through :class:`~parsl_hcqw.executor.QpuJobExecutor`, which cancels its jobs);
- no local worker-pool process group survives: ``LocalProvider`` only sends SIGTERM, which a
  worker busy in native code (a simulator) may not act on at once, so a group still alive
  after a grace period gets SIGKILL.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import parsl
from parsl.config import Config
from parsl.dataflow.dflow import DataFlowKernel
from parsl.providers import LocalProvider

log = logging.getLogger(__name__)

GRACE_S = 5.0


def _local_groups(dfk: DataFlowKernel) -> list[int]:
    """Process groups of the local worker pools of the DFK's executors (LocalProvider blocks)."""
    groups = []
    for executor in dfk.executors.values():
        provider = getattr(executor, "provider", None)
        if isinstance(provider, LocalProvider):
            for job in provider.resources.values():
                pid = job.get("remote_pid")
                if pid:
                    try:
                        groups.append(os.getpgid(int(pid)))
                    except (ProcessLookupError, ValueError):
                        pass
    return groups


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap_groups(groups: list[int]) -> None:
    deadline = time.monotonic() + GRACE_S
    alive = [g for g in groups if _group_alive(g)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [g for g in alive if _group_alive(g)]
    for pgid in alive:
        log.warning("worker process group %d ignored SIGTERM; killing it", pgid)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextmanager
def hcqw_parsl(config: Config) -> Iterator[DataFlowKernel]:
    """Load ``config`` as the current DFK for the body; clean up whatever the body does."""
    if config.exit_mode != "cleanup":
        raise ValueError(f"hcqw_parsl needs Config(exit_mode='cleanup'), not {config.exit_mode!r}: "
                         "it cleans up itself and must not wait for apps after a raise")
    dfk = parsl.load(config)
    try:
        yield dfk
        dfk.wait_for_current_tasks()
    finally:
        groups = _local_groups(dfk)
        dfk.cleanup()
        _reap_groups(groups)
