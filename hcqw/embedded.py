"""The embedded default: run hybrid-loop DAGs on one machine, no SLURM.

Quantum nodes go one at a time through the local device (FIFO across every process on
the machine, see ``hcqw.device.fifo_lock``); classical nodes run in parallel on a thread
pool. Nodes whose output checkpoint already exists are skipped, so re-running a
workflow resumes it after its last good checkpoint.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcqw.checkpoint import load_checkpoint, save_checkpoint
from hcqw.device.provider import DeviceProvider
from hcqw.errors import WorkflowError
from hcqw.metrics import MetricsLog
from hcqw.paths import state_file
from hcqw.trust import PRIVATE_DIR_FIX, make_private_dir
from hcqw.workflow import HybridLoop, Node, RunContext, dag_to_resume, node_done, node_seed, run_node

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workflow:
    """One hybrid loop bound to its run: what the embedded runner executes."""

    loop: HybridLoop
    ctx: RunContext

    @classmethod
    def create(cls, loop: HybridLoop, runs_dir: Path | str = "runs", workflow_id: str | None = None) -> "Workflow":
        workflow_id = workflow_id or f"{loop.name}-{uuid.uuid4().hex[:8]}"
        run_dir = make_private_dir(Path(runs_dir) / workflow_id, "run directory", PRIVATE_DIR_FIX)
        return cls(loop, RunContext(workflow_id, run_dir))

    def final_state(self) -> Any:
        """The state after the last iteration (loads the last checkpoint, which must be this run's)."""
        last = self.ctx.path(state_file(self.loop.iterations))
        return load_checkpoint(last, place=self.ctx.place(self.loop.fingerprint))[0]


def run_workflow(workflow: Workflow, monolithic: bool = False, simulator: str = "qsim",
                 device_timeout: float | None = None, fused: bool = False) -> None:
    """Run one workflow on this machine's device, split (default; ``fused``: one node per iteration) or
    monolithic."""
    from hcqw.device import LocalDevice

    device = LocalDevice(simulator)
    if monolithic:
        run_monolithic(workflow, device, device_timeout)
    else:
        run_split([workflow], device, device_timeout=device_timeout, fused=fused)


def run_split(workflows: list[Workflow], device: DeviceProvider, cpu_workers: int | None = None,
              device_timeout: float | None = None, fused: bool = False) -> None:
    """Run the DAGs of several workflows together (``fused``: ``build_dag(..., fused=True)``); raise
    ``WorkflowError`` listing every failed node."""
    cpu_workers = cpu_workers or max(1, len(os.sched_getaffinity(0)))
    pending: dict[tuple[int, str], Node] = {}
    done: set[tuple[int, str]] = set()
    for index, wf in enumerate(workflows):
        for node in dag_to_resume(wf.loop, wf.ctx, fused):
            if node_done(node, wf.ctx):
                done.add((index, node.name))
            else:
                pending[(index, node.name)] = node
    if done:
        log.info("resuming: %d node(s) already have checkpoints", len(done))
    failures: list[str] = []
    failed: set[int] = set()
    # Quantum nodes mostly wait in the device queue, so they get threads of their own
    # and never hold back classical work.
    with ThreadPoolExecutor(cpu_workers, thread_name_prefix="hcqw-cpu") as cpu, \
            ThreadPoolExecutor(max(1, len(workflows)), thread_name_prefix="hcqw-qpu") as qpu:
        running: dict[Future, tuple[int, str]] = {}
        while pending or running:
            for key, node in list(pending.items()):
                index = key[0]
                if index in failed:
                    del pending[key]
                elif all((index, dep) in done for dep in node.after):
                    del pending[key]
                    pool = qpu if node.uses_qpu else cpu
                    wf = workflows[index]
                    running[pool.submit(run_node, wf.loop, node, wf.ctx, device, device_timeout)] = key
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                if future.exception() is None:
                    done.add(key)
                else:
                    failed.add(key[0])
                    err = future.exception()
                    failures.append(f"{workflows[key[0]].ctx.workflow}/{key[1]}: {type(err).__name__}: {err}")
                    log.error("node %s failed", failures[-1], exc_info=err)
    if failures:
        raise WorkflowError("workflow node(s) failed (re-run to resume from the last checkpoint):\n  " + "\n  ".join(failures))


def run_monolithic(workflow: Workflow, device: DeviceProvider, device_timeout: float | None = None) -> None:
    """The whole loop holding the device from start to end (the first paper's Fig. 2a), for comparison."""
    loop, ctx = workflow.loop, workflow.ctx
    save = lambda i, obj, meta: save_checkpoint(  # noqa: E731
        ctx.path(state_file(i)), obj, workflow=ctx.workflow, iteration=i, producer="monolithic", meta=meta,
        fingerprint=loop.fingerprint,
    )
    state = loop.initial_state()
    save(0, state, {"converged": False})
    converged = False
    metrics = MetricsLog(ctx.metrics_path)
    # The same ready/cpu events as run_node, so monolithic and split runs report alike.
    metrics.record("ready", workflow=ctx.workflow, node="monolithic", start=time.time())
    with device.acquire(ctx.workflow, "monolithic", timeout=device_timeout, metrics=metrics) as lease:
        for i in range(1, loop.iterations + 1):
            if converged:
                save(i, state, {"converged": True})
                continue
            seed = node_seed(loop, f"q{i:04d}")
            if seed is not None:
                lease.reseed(seed)
            measured = loop.quantum_step(state, lease)
            started = time.time()
            state = loop.classical_step(state, measured)
            converged = bool(loop.converged(state)) if loop.converged else False
            if loop.describe:
                log.info("%s iteration %d/%d: %s", ctx.workflow, i, loop.iterations, loop.describe(state))
            save(i, state, {"converged": converged})
            metrics.record("cpu", workflow=ctx.workflow, node=f"c{i:04d}", start=started, end=time.time())
