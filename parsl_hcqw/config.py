"""``hcqw_config()``: a Parsl ``Config`` whose executors are labelled ``cpu`` and ``qpu``.

Apps pick their side with ``@python_app(executors=["cpu"])`` / ``["qpu"]``; ``qpu`` apps
open the device with ``hcqw.qpu.open_qpu()`` and close it when their quantum block ends.

- ``backend="local"`` (default, no SLURM): both executors are HTEX on this machine (``LocalProvider``,
  loopback interchange). ``qpu`` has one worker, and each ``qpu`` app holds the machine-wide
  FIFO local device for its whole run, or until its ``open_qpu`` lease closes
  (:class:`~parsl_hcqw.executor.HeldQpuExecutor`), so quantum apps of every script and
  workflow on the machine run one at a time, as on SLURM, while ``cpu`` apps run in parallel.
- ``backend="slurm"`` (sbatch on this cluster) or ``"rest"`` (slurmrestd): ``cpu`` is HTEX whose
  blocks are plain jobs on the cpu partition (:class:`~parsl_hcqw.provider.HetjobSlurmProvider`); ``qpu`` is a
  :class:`~parsl_hcqw.executor.QpuJobExecutor`: each app its own cpu+qpu hetjob that frees
  the qpu node when the app closes its lease. ``session=QpuSession(...)`` keeps one qpu
  allocation for a bounded series of apps instead (off by default). A third executor, ``per-call``
  (SLURM only), runs each app as a cpu job whose quantum calls each get a qpu job of their own for that
  call only (``HCQW_DEVICE=per-call``, as ``hcqw slurm submit`` runs a driver script): an unsplit driver
  (e.g. a Qiskit VQE, every ``Estimator.run`` a call) as one app.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from parsl.config import Config
from parsl.executors import HighThroughputExecutor
from parsl.providers import LocalProvider

from hcqw.environment import PER_CALL
from hcqw.hetjob.address import LOOPBACK, route_address, submit_address
from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.secret import hide_token
from hcqw.slurm import check_backend
from parsl_hcqw.executor import HeldQpuExecutor, QpuJobExecutor, QpuSession
from parsl_hcqw.provider import HetjobSlurmProvider


def _htex(label: str, workers: int, provider: object, address: str,
          kind: type[HighThroughputExecutor] = HighThroughputExecutor) -> HighThroughputExecutor:
    # HTEX finds interchange.py and process_worker_pool.py on PATH, which lacks the venv's bin
    # unless the venv is activated: name the interchange by path, put bin on the workers' PATH.
    bin_dir = Path(sys.executable).parent
    return kind(
        label=label, address=address, loopback_address="127.0.0.1", max_workers_per_node=workers,
        interchange_launch_cmd=[str(bin_dir / "interchange.py")], provider=provider,
        # CurveZMQ between interchange and workers, said explicitly: tasks are pickles, and the workers
        # (on other hosts) must not take them from, or hand results to, anyone on the network.
        encrypted=True,
    )


def _local_provider() -> LocalProvider:
    return LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1,
                         worker_init=f"export PATH={Path(sys.executable).parent}:$PATH")


def _interchange_address(backend: str, backend_options: dict[str, Any] | None) -> str:
    """This host's address that the cluster's cpu hosts reach it on: toward the controller it submits to."""
    if backend == "rest":
        return route_address(urlsplit((backend_options or {}).get("url") or "").hostname or LOOPBACK)
    return submit_address()


def hcqw_config(
    *,
    backend: str = "local",
    run_dir: str = "runinfo",
    workflow: str = "parsl",
    cpu_workers: int | None = None,
    cpu_blocks: int = 1,
    settings: NodeJobSettings | None = None,
    backend_options: dict[str, Any] | None = None,
    session: QpuSession | None = None,
    max_idletime: float = 120.0,
    address: str | None = None,
    **config_options: Any,
) -> Config:
    """The ``cpu``/``qpu`` configuration; ``config_options`` go to ``parsl.config.Config``.

    ``workflow`` names the SLURM jobs (``hcqw:<workflow>:...``) and signs qpu app checkpoints; embedded,
    it names the qpu apps' holds of the local device.
    ``settings`` sets partitions, time limits, interpreter and gateway options of the jobs.
    ``backend``: where the apps run, ``"local"`` (this machine), ``"slurm"`` (sbatch on this cluster) or
    ``"rest"`` (slurmrestd; ``backend_options`` ``url=``, ``token_file=``; a ``token=`` is kept in a
    :class:`hcqw.secret.Secret`, so Parsl's config dump in ``parsl.log`` shows ``'***'``); unknown values
    and options that mean nothing there raise at once (:func:`hcqw.slurm.check_backend`).
    ``address``: where SLURM ``cpu`` workers, on other hosts, reach the interchange; default: this
    host's address on the route to slurmctld (``backend="slurm"``) or to slurmrestd (``"rest"``).
    ``max_idletime`` applies to ``cpu`` blocks only: ``qpu`` never keeps an idle allocation.
    """
    check_backend(backend, backend_options, names={option: f"backend_options[{option!r}]"
                                                   for option in [*(backend_options or {}), "url"]})
    settings = settings or NodeJobSettings()
    workers = cpu_workers or max(1, len(os.sched_getaffinity(0)))
    if backend == "local":
        if session is not None:
            raise ValueError("session= applies to SLURM (backend 'slurm' or 'rest'); backend 'local' holds the "
                             "device per app already")
        qpu = _htex("qpu", 1, _local_provider(), "127.0.0.1", kind=HeldQpuExecutor)
        qpu.workflow = workflow
        executors = [_htex("cpu", workers, _local_provider(), "127.0.0.1"), qpu]
    else:
        # Parsl logs the repr of the whole Config, providers' options included: the token goes in masked.
        common = dict(settings=settings, backend=backend, backend_options=hide_token(backend_options),
                      workflow=workflow)
        cpu = _htex("cpu", workers, HetjobSlurmProvider(quantum=False, init_blocks=1, min_blocks=0,
                                                        max_blocks=cpu_blocks, **common),
                    address or _interchange_address(backend, backend_options))
        qpu = QpuJobExecutor(label="qpu", provider=HetjobSlurmProvider(quantum=True, **common), session=session)
        per_call = QpuJobExecutor(label=PER_CALL, provider=HetjobSlurmProvider(per_call=True, **common))
        executors = [cpu, qpu, per_call]
    return Config(executors=executors, run_dir=run_dir, max_idletime=max_idletime, **config_options)
