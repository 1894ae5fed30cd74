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

A bounded window (issue 22). A chain is not submitted whole: at most ``window`` job records (each
hetjob component is one: a quantum or fused node counts 2, a classical node 1) are in SLURM
unfinished per workflow, and the follower submits the next node as one completes, ``afterok`` on
its predecessor while that one is still pending or running -- so the next quantum node is always
queued before the job before it ends, and the QPU sees no extra gap. The whole-chain form (1 + 3N
records for N split iterations) stays available as ``window=None`` for side-by-side measurement.

The initial step runs in the submitting process (``run_initial_step``): it only writes the
initial state, and a job for it waited a backfill tick for nothing.

Fair order between chains: with a window, a quantum node enters SLURM at most one quantum node
ahead of its chain, so submit order is about ready order. The one exception is a *look-ahead*
quantum node, submitted while an earlier quantum node of its chain is still unfinished (so that it
is queued before it becomes ready): it gets the constant ``nice = LOOKAHEAD_NICE``, so a chain's
next iteration yields to the quantum nodes other chains submitted as their next ready work --
without it, chains submitted one after another would each put their second iteration ahead of the
next chain's first. Nothing grows with the iteration: every look-ahead node of every user carries
the same offset, so under priority/multifactor the fair-share order between users is the site's
(``tests/usage/test_slurm_fair_share.py``). ``nice_step`` (``nice = iteration * nice_step``, the
old rule) is kept only for the whole-chain form, where a first-submitted chain's late iterations
would otherwise outrank a second chain's early ones.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hcqw.errors import WorkflowError
from hcqw.slurm import Phase, SlurmBackend, SlurmError
from hcqw.slurm.backend import ride_out
from hcqw.slurm.errors import JobNotFound, what_to_do
from hcqw.slurm.settings import MAX_NICE
from hcqw.paths import slurm_output, state_file
from hcqw.trust import PRIVATE_DIR_FIX, make_private_dir
from hcqw.workflow import HybridLoop, Node, RunContext, build_dag, dag_to_resume, load_loop, node_done, run_node

from hcqw.hetjob.jobs import NodeJobSettings, node_request

log = logging.getLogger(__name__)

# Nice added per iteration in the whole-chain form (``window=None``; see the module docstring). Chains
# submitted together spread over about 3 priority units per iteration per chain under priority/basic:
# 1000 keeps the order for e.g. 4 chains of 80 iterations.
NICE_STEP = 1000
#: Job records a workflow keeps unfinished in SLURM at most (the window): a split chain's quantum,
#: classical and next quantum node (2 + 1 + 2), a fused chain's two next iterations (2 + 2).
WINDOW_RECORDS = 5
#: Nice of a look-ahead quantum node (see the module docstring): more than the priority spread of the
#: jobs submitted while it waits under priority/basic (one unit per job component).
LOOKAHEAD_NICE = 1000
#: The smallest window: the running job and the next hetjob, queued before the running one ends.
MIN_WINDOW_RECORDS = 4
#: Seconds a just-submitted job may be missing from the status snapshot (taken before it was
#: submitted) before the follower takes it for lost.
UNSEEN_GRACE_S = 30.0


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
    """A chain being run: which node is which SLURM job, in execution order, and the nodes not yet submitted."""

    workflow: str
    run_dir: Path
    loop: HybridLoop
    jobs: list[tuple[str, str]] = field(default_factory=list)  # (node, leader job id), submitted so far
    skipped: list[str] = field(default_factory=list)  # nodes resumed from existing checkpoints
    waiting: list[Node] = field(default_factory=list)  # not submitted yet, in order (the window refills from it)
    window: int | None = WINDOW_RECORDS  # job records unfinished in SLURM at most; None: the whole chain
    completed: int = 0  # how many of ``jobs`` (from the first) the follower saw complete
    records: dict[str, int] = field(default_factory=dict)  # node -> its job's records (hetjob components)
    submitted_at: dict[str, float] = field(default_factory=dict)  # job id -> when this process submitted it
    submit: Callable[[Node, tuple[str, ...], bool], str] | None = field(default=None, repr=False)
    on_submit: Callable[[str, str], None] | None = field(default=None, repr=False)  # (node, job id) as the window refills

    @property
    def ctx(self) -> RunContext:
        return RunContext(self.workflow, self.run_dir)

    @property
    def finished(self) -> bool:
        return self.completed == len(self.jobs) and not self.waiting

    def job_of(self, node: str) -> str:
        for name, job_id in self.jobs:
            if name == node:
                return job_id
        raise KeyError(f"node {node} has no job in this chain (skipped, unknown or not submitted yet)")

    def live_records(self) -> int:
        """Job records of this chain's submitted jobs the follower has not seen complete."""
        return sum(self.records[node] for node, _ in self.jobs[self.completed:])


def _records(node: Node) -> int:
    return 2 if node.uses_qpu else 1


def submit_chain(backend: SlurmBackend, loop_ref: str, params: Mapping | None, workflow: str,
                 runs_dir: Path | str, settings: NodeJobSettings | None = None, nice_step: int = 0,
                 fused: bool = False, window: int | None = WINDOW_RECORDS) -> Chain:
    """Run the initial step here (unless resumed past it) and submit the first nodes without a checkpoint,
    each ``afterok`` on its predecessor's job: as many as fit in ``window`` job records (``None``: all,
    the whole-chain form). ``follow_chain`` submits the rest as jobs complete. ``nice_step``: ``nice =
    iteration * nice_step`` (capped at SLURM's maximum), for the whole-chain form; ``fused``: one hetjob
    per iteration (see the module)."""
    if isinstance(nice_step, bool) or not isinstance(nice_step, int) or nice_step < 0:
        raise ValueError(f"nice_step must be a non-negative integer, got {nice_step!r}")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int)
                               or window < MIN_WINDOW_RECORDS):
        raise ValueError(f"window must be at least {MIN_WINDOW_RECORDS} job records (the running job and the next "
                         f"hetjob) or None for the whole chain, got {window!r}")
    params = dict(params or {})
    settings = settings or NodeJobSettings()
    loop = load_loop(loop_ref, params)
    run_dir = (Path(runs_dir) / workflow).absolute()
    chain = Chain(workflow, run_dir, loop, window=window)
    ctx = chain.ctx
    make_private_dir(run_dir, "run directory", PRIVATE_DIR_FIX)  # jobs trust what they find there
    slurm_output(run_dir).mkdir(exist_ok=True)
    dag = dag_to_resume(loop, ctx, fused)
    chain.skipped = [node.name for node in dag if node_done(node, ctx)]
    todo = [node for node in dag if node.name not in chain.skipped]
    chain.records = {node.name: _records(node) for node in todo}

    def submit(node: Node, deps: tuple[str, ...], lookahead: bool) -> str:
        request = node_request(node, loop_ref=loop_ref, params=params, workflow=workflow, run_dir=run_dir,
                               settings=settings, dependencies=deps)
        nice = node.iteration * nice_step if window is None else LOOKAHEAD_NICE * lookahead
        return backend.submit(dataclasses.replace(request, nice=min(nice, MAX_NICE)))

    chain.submit = submit
    adopted = _adopt_live_jobs(backend, chain, todo, fused)
    chain.waiting = todo[adopted:]
    if chain.waiting and chain.waiting[0].name == "init":
        run_initial_step(chain, chain.waiting.pop(0))
    if chain.skipped:
        log.info("%s: resuming; %d node(s) already have checkpoints (last: %s)", workflow, len(chain.skipped),
                 chain.skipped[-1])
    refill(backend, chain)
    log.info("%s: submitted %d job(s): %s", workflow, len(chain.jobs), " ".join(f"{n}={j}" for n, j in chain.jobs))
    return chain


def run_initial_step(chain: Chain, node: Node) -> None:
    """The ``init`` node in this process: it writes the initial state, nothing more (a job for it waited
    for SLURM's scheduler to start a process that did that)."""
    run_node(chain.loop, node, chain.ctx, None)
    log.info("%s: initial state written by the submitter", chain.workflow)


def refill(backend: SlurmBackend, chain: Chain) -> list[tuple[str, str]]:
    """Submit waiting nodes while they fit in the window; each ``afterok`` on its predecessors' jobs that may
    still be in SLURM (one the follower saw complete has its checkpoint: no dependency needed). A submission
    SLURM refuses cancels the chain's jobs and raises. Returns what it submitted."""
    new: list[tuple[str, str]] = []
    live = chain.live_records()
    while chain.waiting and (chain.window is None or live + chain.records[chain.waiting[0].name] <= chain.window):
        node = chain.waiting[0]
        unfinished = dict(chain.jobs[chain.completed:])
        deps = tuple(unfinished[a] for a in node.after if a in unfinished)
        lookahead = node.uses_qpu and any(chain.records[name] == 2 for name in unfinished)
        try:
            job_id = chain.submit(node, deps, lookahead)
        except SlurmError:
            cancel_chain(backend, chain)
            raise
        chain.waiting.pop(0)
        chain.jobs.append((node.name, job_id))
        chain.submitted_at[job_id] = time.monotonic()
        live += chain.records[node.name]
        new.append((node.name, job_id))
        if chain.on_submit:
            chain.on_submit(node.name, job_id)
    return new


def _adopt_live_jobs(backend: SlurmBackend, chain: Chain, todo: list[Node], fused: bool = False) -> int:
    """A re-run while the last run's jobs still live (its follower died, the controller was down):
    adopt them if they are the first nodes left to do, in order (a windowed run has only the next few in
    SLURM), refuse if they are any others, or the other form's (split vs fused) -- never submit a node
    twice (two writers of one checkpoint, the QPU used twice). Returns how many were adopted."""
    live_jobs = getattr(backend, "live_jobs", None)  # the sbatch backend's squeue; REST has no such query
    if live_jobs is None or not todo:
        return 0
    iterations = {node.iteration for node in todo}
    other_form = [node for node in build_dag(chain.loop, not fused) if node.iteration in iterations]
    names = {f"hcqw:{chain.workflow}:{node.name}": node.name for node in [*todo, *other_form]}
    live = {names[name]: job_id for name, job_id in live_jobs(names).items()}
    if not live:
        return 0
    first = todo[:len(live)]
    if set(live) != {node.name for node in first}:
        shown = " ".join(f"{node}={job}" for node, job in sorted(live.items()))
        raise WorkflowError(f"{chain.workflow}: a previous run's jobs are still in SLURM for some of the nodes left to "
                            f"do ({shown}); wait for them to end or cancel them (scancel {' '.join(live.values())}), "
                            "then re-run to resume from the last checkpoint")
    chain.jobs = [(node.name, live[node.name]) for node in first]
    backend.status(list(live.values()))  # follow them from here on
    log.info("%s: adopted %d job(s) of a previous run still in SLURM: %s", chain.workflow, len(chain.jobs),
             " ".join(f"{n}={j}" for n, j in chain.jobs))
    return len(first)


def cancel_chain(backend: SlurmBackend, chain: Chain) -> None:
    """Cancel every submitted job of the chain (finished ones are a no-op for SLURM) and submit no more."""
    chain.waiting = []
    for node, job_id in chain.jobs:
        try:
            backend.cancel(job_id)
        except SlurmError as err:
            log.warning("cancelling %s (job %s): %s", node, job_id, err)


def follow_chain(backend: SlurmBackend, chain: Chain, timeout: float | None = None) -> None:
    """Follow the chain to its end, submitting the rest as the window frees; on the first job that does not
    complete, cancel the rest and raise ``ChainFailed``."""
    follow_chains(backend, [chain], timeout)


def follow_chains(backend: SlurmBackend, chains: list[Chain], timeout: float | None = None) -> None:
    """Follow several chains in one process (one status query per interval covers them all), refilling each
    one's window as its jobs complete. The first chain that fails is cancelled and raised as ``ChainFailed``;
    the others are left running (re-run or follow them again). ``timeout``: seconds without any job
    completing before a ``SlurmError``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    active = [chain for chain in chains if not chain.finished]
    for chain in active:
        refill(backend, chain)  # e.g. chains adopted or submitted by another process
    while active:
        heads = {chain.jobs[chain.completed][1] for chain in active}
        states = ride_out(lambda: backend.status(sorted(heads)), "status of the chains' jobs")
        progressed = False
        for chain in list(active):
            node, job_id = chain.jobs[chain.completed]
            state = states.get(job_id)
            if state is None or not state.done:
                if state is not None and state.phase is Phase.UNKNOWN and not state.components \
                        and time.monotonic() - chain.submitted_at.get(job_id, float("-inf")) > UNSEEN_GRACE_S:
                    raise JobNotFound(job_id)
                continue
            if state.phase is not Phase.COMPLETED:
                _fail(backend, chain, node, job_id, state)
            log.info("%s: %s (job %s) completed", chain.workflow, node, job_id)
            chain.completed += 1
            refill(backend, chain)
            progressed = True
            if chain.finished:
                active.remove(chain)
        if progressed and deadline is not None:
            deadline = time.monotonic() + timeout
        if not active or progressed:
            continue
        if deadline is not None and time.monotonic() >= deadline:
            waiting = " ".join(f"{c.workflow}:{c.jobs[c.completed][0]}={c.jobs[c.completed][1]}" for c in active)
            raise SlurmError(f"no job of these chains completed in {timeout:.0f} s: {waiting}")
        time.sleep(max(0.05, getattr(backend, "poll_interval", 1.0)))


def _fail(backend: SlurmBackend, chain: Chain, node: str, job_id: str, state) -> None:
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
              nice_step: int = 0, fused: bool = False, window: int | None = WINDOW_RECORDS) -> Chain:
    """Submit (or resume) and follow a chain to its end; return it (final state: ``final_state(chain)``)."""
    chain = submit_chain(backend, loop_ref, params, workflow, runs_dir, settings, nice_step, fused, window)
    follow_chain(backend, chain, timeout)
    return chain


def final_state(chain: Chain):
    from hcqw.checkpoint import load_checkpoint

    return load_checkpoint(chain.ctx.path(state_file(chain.loop.iterations)), workflow=chain.workflow)[0]
