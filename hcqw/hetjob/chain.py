"""Split job chains: the first paper's listing 4 on SLURM.

A hybrid loop becomes one job per DAG node -- ``init`` and each classical node a cpu job,
each quantum node a cpu+qpu hetjob -- chained with ``afterok`` dependencies and
``kill_on_invalid_dependency`` (a failed job cancels the rest instead of leaving them
pending forever). Each job reads the previous checkpoint and writes its own, so a
re-run submits only the nodes whose output checkpoint is missing: it resumes from the
last good checkpoint.

``fused=True`` submits one hetjob per iteration instead of two jobs (``build_dag(...,
fused=True)``): component 0 runs the quantum step, the qpu component is cancelled as the block
ends, and component 0 goes on with the classical step and writes the iteration's state -- one
SLURM round trip per iteration. Checkpoints are the split form's, so either form resumes the
other; an iteration whose job died after its quantum checkpoint resumes as its classical node
alone (a cpu job: nothing is left for the qpu).

Fair order between chains: a chain is submitted whole, so under SLURM's default ordering
(submit order) the first-submitted workflow's *later* quantum nodes outrank a second workflow's
*earlier* ones, and whenever both wait for the single qpu node the first workflow runs all its
iterations while the second waits. Each job therefore gets ``nice = iteration * nice_step``:
pending jobs are ordered by iteration first (level by level, as if each iteration were submitted
only when it became ready) and by submit order within an iteration. ``nice_step`` must exceed the
priority spread of the jobs submitted together -- under priority/basic one unit per job
component, i.e. about 3 per iteration per chain -- hence ``NICE_STEP``; under
priority/multifactor nice is subtracted from the computed priority, so a late iteration also
yields to other users' jobs by that much. ``nice_step=0`` turns it off.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hcqw.errors import WorkflowError
from hcqw.slurm import Phase, SlurmBackend, SlurmError
from hcqw.slurm.errors import what_to_do
from hcqw.slurm.settings import MAX_NICE
from hcqw.paths import slurm_output, state_file
from hcqw.trust import PRIVATE_DIR_FIX, make_private_dir
from hcqw.workflow import HybridLoop, RunContext, build_dag, dag_to_resume, load_loop, node_done

from hcqw.hetjob.jobs import NodeJobSettings, node_request

log = logging.getLogger(__name__)

# Nice added per iteration (see the module docstring). Chains submitted together spread over about
# 3 priority units per iteration per chain under priority/basic: 1000 keeps the order for e.g.
# 4 chains of 80 iterations.
NICE_STEP = 1000


class ChainFailed(WorkflowError):
    """A job of the chain did not complete; the rest of the chain was cancelled."""

    def __init__(self, workflow: str, node: str, job_id: str, state: str, exit_code: int | None,
                 log_path: str | None, resume_from: str | None, tail: str = ""):
        self.workflow, self.node, self.job_id = workflow, node, job_id
        self.state, self.exit_code, self.log_path = state, exit_code, log_path
        message = (f"{workflow}: node {node} (SLURM job {job_id}) ended {state}"
                   + (f" with exit code {exit_code}" if exit_code is not None else "") + what_to_do(state)
                   + f"; log: {log_path or '(unknown)'}; later jobs of the chain were cancelled. "
                   + (f"Re-run to resume from checkpoint {resume_from}." if resume_from
                      else "Re-run to start again."))
        if tail:
            message += "\n--- last lines of the job output ---\n" + tail.rstrip("\n")
        super().__init__(message)


@dataclass
class Chain:
    """A submitted chain: which node is which SLURM job, in execution order."""

    workflow: str
    run_dir: Path
    loop: HybridLoop
    jobs: list[tuple[str, str]] = field(default_factory=list)  # (node, leader job id)
    skipped: list[str] = field(default_factory=list)  # nodes resumed from existing checkpoints

    @property
    def ctx(self) -> RunContext:
        return RunContext(self.workflow, self.run_dir)

    def job_of(self, node: str) -> str:
        for name, job_id in self.jobs:
            if name == node:
                return job_id
        raise KeyError(f"node {node} has no job in this chain (skipped or unknown)")


def submit_chain(backend: SlurmBackend, loop_ref: str, params: Mapping | None, workflow: str,
                 runs_dir: Path | str, settings: NodeJobSettings | None = None, nice_step: int = NICE_STEP,
                 fused: bool = False) -> Chain:
    """Submit every node without a checkpoint, each ``afterok`` on the jobs of its predecessors and
    with ``nice = iteration * nice_step`` (capped at SLURM's maximum), so concurrent chains share
    the qpu node level by level. ``fused``: one hetjob per iteration (see the module)."""
    if isinstance(nice_step, bool) or not isinstance(nice_step, int) or nice_step < 0:
        raise ValueError(f"nice_step must be a non-negative integer, got {nice_step!r}")
    params = dict(params or {})
    settings = settings or NodeJobSettings()
    loop = load_loop(loop_ref, params)
    run_dir = (Path(runs_dir) / workflow).absolute()
    chain = Chain(workflow, run_dir, loop)
    ctx = chain.ctx
    make_private_dir(run_dir, "run directory", PRIVATE_DIR_FIX)  # jobs trust what they find there
    slurm_output(run_dir).mkdir(exist_ok=True)
    dag = dag_to_resume(loop, ctx, fused)
    chain.skipped = [node.name for node in dag if node_done(node, ctx)]
    if _adopt_live_jobs(backend, chain, [node for node in dag if node.name not in chain.skipped], fused):
        return chain
    submitted: dict[str, str] = {}
    for node in dag:
        if node.name in chain.skipped:
            continue
        deps = tuple(submitted[a] for a in node.after if a in submitted)
        request = node_request(node, loop_ref=loop_ref, params=params, workflow=workflow, run_dir=run_dir,
                               settings=settings, dependencies=deps)
        request = dataclasses.replace(request, nice=min(node.iteration * nice_step, MAX_NICE))
        try:
            job_id = backend.submit(request)
        except SlurmError:
            cancel_chain(backend, chain)
            raise
        submitted[node.name] = job_id
        chain.jobs.append((node.name, job_id))
    if chain.skipped:
        log.info("%s: resuming; %d node(s) already have checkpoints (last: %s)", workflow, len(chain.skipped),
                 chain.skipped[-1])
    log.info("%s: submitted %d job(s): %s", workflow, len(chain.jobs), " ".join(f"{n}={j}" for n, j in chain.jobs))
    return chain


def _adopt_live_jobs(backend: SlurmBackend, chain: Chain, todo: list, fused: bool = False) -> bool:
    """A re-run while the last run's jobs still live (its follower died, the controller was down):
    adopt them if they are exactly the nodes left to do, refuse if only some are, or if they are
    the other form's (split vs fused) -- never submit a node twice (two writers of one checkpoint,
    the QPU used twice). True if adopted."""
    live_jobs = getattr(backend, "live_jobs", None)  # the sbatch backend's squeue; REST has no such query
    if live_jobs is None or not todo:
        return False
    iterations = {node.iteration for node in todo}
    other_form = [node for node in build_dag(chain.loop, not fused) if node.iteration in iterations]
    names = {f"hcqw:{chain.workflow}:{node.name}": node.name for node in [*todo, *other_form]}
    live = {names[name]: job_id for name, job_id in live_jobs(names).items()}
    if not live:
        return False
    if set(live) != {node.name for node in todo}:
        shown = " ".join(f"{node}={job}" for node, job in sorted(live.items()))
        raise WorkflowError(f"{chain.workflow}: a previous run's jobs are still in SLURM for some of the nodes left to "
                            f"do ({shown}); wait for them to end or cancel them (scancel {' '.join(live.values())}), "
                            "then re-run to resume from the last checkpoint")
    chain.jobs = [(node.name, live[node.name]) for node in todo]
    backend.status(list(live.values()))  # follow them from here on
    log.info("%s: adopted %d job(s) of a previous run still in SLURM: %s", chain.workflow, len(chain.jobs),
             " ".join(f"{n}={j}" for n, j in chain.jobs))
    return True


def cancel_chain(backend: SlurmBackend, chain: Chain) -> None:
    """Cancel every job of the chain (finished ones are a no-op for SLURM)."""
    for node, job_id in chain.jobs:
        try:
            backend.cancel(job_id)
        except SlurmError as err:
            log.warning("cancelling %s (job %s): %s", node, job_id, err)


def follow_chain(backend: SlurmBackend, chain: Chain, timeout: float | None = None) -> None:
    """Wait for the jobs in order; on the first that does not complete, cancel the rest and raise ``ChainFailed``."""
    for node, job_id in chain.jobs:
        state = backend.wait(job_id, timeout=timeout)
        if state.phase is Phase.COMPLETED:
            log.info("%s: %s (job %s) completed", chain.workflow, node, job_id)
            continue
        cancel_chain(backend, chain)
        failure = backend.failure(state) if state.phase in (Phase.FAILED, Phase.CANCELLED) else None
        raise ChainFailed(chain.workflow, node, job_id, state.state, state.exit_code,
                          failure.output_path if failure else None, _last_checkpoint(chain),
                          failure.output_tail if failure else "")


def _last_checkpoint(chain: Chain) -> str | None:
    done = [n.output for n in build_dag(chain.loop) if chain.ctx.path(n.output).exists()]
    return done[-1] if done else None


def run_chain(backend: SlurmBackend, loop_ref: str, params: Mapping | None, workflow: str, runs_dir: Path | str,
              settings: NodeJobSettings | None = None, timeout: float | None = None,
              nice_step: int = NICE_STEP, fused: bool = False) -> Chain:
    """Submit (or resume) and follow a chain to its end; return it (final state: ``final_state(chain)``)."""
    chain = submit_chain(backend, loop_ref, params, workflow, runs_dir, settings, nice_step, fused)
    follow_chain(backend, chain, timeout)
    return chain


def final_state(chain: Chain):
    from hcqw.checkpoint import load_checkpoint

    return load_checkpoint(chain.ctx.path(state_file(chain.loop.iterations)), workflow=chain.workflow)[0]
