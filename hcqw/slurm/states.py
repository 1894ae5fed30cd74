"""What SLURM says about a job, and one verdict per workflow node.

A workflow node is one SLURM job: a plain job, or a hetjob whose components
``<leader>+0`` (cpu) and ``<leader>+1`` (qpu) SLURM tracks separately. This
module merges the components into one :class:`NodeState`. It is pure logic:
the parsers in :mod:`hcqw.slurm.parsing` feed it, and it never calls SLURM.

The merge rule that matters most: hcqw ends the qpu component on purpose as
soon as the quantum block is done (``scancel <leader>+1``), while the cpu
component runs on and completes. SLURM then records component 1 as
CANCELLED. That is the success path, not a failure. SLURM only lets a
non-leader component be cancelled on its own (cancelling the leader cancels
every component), so "component k>0 CANCELLED while the leader was not" is
exactly an individual release, and the leader -- which runs the batch script,
and therefore sees any srun onto the qpu part fail -- carries the verdict.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class Phase(enum.Enum):
    """Engine-neutral job phase; adapters map it to Parsl/Snakemake states."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def terminal(self) -> bool:
        return self in (Phase.COMPLETED, Phase.FAILED, Phase.CANCELLED)


# SLURM base states (sacct/scontrol spelling). Flags such as "CANCELLED by 0"
# or "RUNNING+" are stripped by normalize_state() before lookup.
_PENDING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
_RUNNING = {
    "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING",
    "STAGE_OUT", "RESIZING", "POWER_UP_NODE", "UPDATE_DB",
}
_FAILURES = {
    "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
    "PREEMPTED", "REVOKED", "SPECIAL_EXIT",
}
# squeue's compact codes, for callers that only have those.
_SHORT_CODES = {
    "PD": "PENDING", "R": "RUNNING", "CG": "COMPLETING", "CF": "CONFIGURING",
    "CD": "COMPLETED", "CA": "CANCELLED", "F": "FAILED", "TO": "TIMEOUT",
    "NF": "NODE_FAIL", "OOM": "OUT_OF_MEMORY", "BF": "BOOT_FAIL", "DL": "DEADLINE",
    "PR": "PREEMPTED", "RV": "REVOKED", "SE": "SPECIAL_EXIT", "S": "SUSPENDED",
    "ST": "STOPPED", "RQ": "REQUEUED", "RH": "REQUEUE_HOLD", "SO": "STAGE_OUT",
    "RS": "RESIZING", "SI": "SIGNALING", "RF": "REQUEUE_FED", "RD": "RESV_DEL_HOLD",
}


def normalize_state(raw: str) -> str:
    """``'CANCELLED by 1000'`` -> ``'CANCELLED'``, ``'CD'`` -> ``'COMPLETED'``."""
    base = raw.strip().split(" ", 1)[0].rstrip("+").upper()
    return _SHORT_CODES.get(base, base)


def component_phase(state: str) -> Phase:
    """The phase of one component from its (normalized) SLURM state."""
    if state in _PENDING:
        return Phase.PENDING
    if state in _RUNNING:
        return Phase.RUNNING
    if state == "COMPLETED":
        return Phase.COMPLETED
    if state == "CANCELLED":
        return Phase.CANCELLED
    if state in _FAILURES:
        return Phase.FAILED
    return Phase.UNKNOWN


@dataclass(frozen=True)
class ComponentInfo:
    """SLURM's own record of one job (component): the source for benchmarks.

    ``het_offset`` is None for a plain job. ``exit_code``/``signal`` come from
    SLURM's ``ExitCode=<code>:<signal>``. Times are naive local datetimes as
    SLURM prints them (None while unknown, e.g. EndTime of a running job).
    """

    job_id: str  # "123" or "123+1": the id users and scancel know
    leader_id: str
    het_offset: int | None
    state: str  # normalized SLURM state, e.g. "CANCELLED"
    exit_code: int | None = None
    signal: int | None = None
    partition: str | None = None
    nodelist: str | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    submit_time: datetime | None = None
    reason: str | None = None
    name: str | None = None
    comment: str | None = None
    stdout: str | None = None
    # SLURM's internal id of this component ("124" for "123+1"); slurmrestd
    # only accepts this form in URLs.
    raw_id: str | None = None
    user: str | None = None
    account: str | None = None
    tres: str | None = None  # allocated TRES, e.g. "billing=1,cpu=1,gres/qpu=1,node=1"

    @property
    def phase(self) -> Phase:
        return component_phase(self.state)


@dataclass(frozen=True)
class NodeState:
    """One verdict for a workflow node, merged over its components.

    ``released`` lists the offsets of components that ended CANCELLED on
    their own (the early qpu release) and do not count against the job.
    ``failed_component`` is the job id of the component that decided a
    FAILED/CANCELLED verdict, for error messages.
    """

    leader_id: str
    phase: Phase
    components: tuple[ComponentInfo, ...] = field(default_factory=tuple)
    released: tuple[int, ...] = ()
    failed_component: str | None = None

    @property
    def done(self) -> bool:
        return self.phase.terminal

    @property
    def leader(self) -> ComponentInfo | None:
        return self.components[0] if self.components else None

    @property
    def exit_code(self) -> int | None:
        """The exit code of the deciding component (else of the leader)."""
        for comp in self.components:
            if comp.job_id == self.failed_component:
                return comp.exit_code
        return self.leader.exit_code if self.leader else None

    @property
    def state(self) -> str:
        """The SLURM state that decided the verdict, for messages."""
        for comp in self.components:
            if comp.job_id == self.failed_component:
                return comp.state
        return self.leader.state if self.leader else "UNKNOWN"

    def component(self, offset: int) -> ComponentInfo | None:
        """Component ``offset`` (0 = leader/cpu, 1 = qpu); offset 0 also finds a plain job."""
        for comp in self.components:
            if (comp.het_offset or 0) == offset:
                return comp
        return None


def merge_components(leader_id: str, components: list[ComponentInfo] | tuple[ComponentInfo, ...]) -> NodeState:
    """Merge the records of one job's components into one :class:`NodeState`.

    Rules, in order:

    1. No records: UNKNOWN (the caller decides whether that means "purged").
    2. Not every component is terminal: PENDING if every component still
       pends, else RUNNING. A node is never reported finished early: the
       engine could otherwise resubmit while parts of it still hold nodes.
    3. All terminal and the leader CANCELLED: CANCELLED (the user or a
       dependency cancelled the whole job).
    4. Any component in a failure state (FAILED, TIMEOUT, NODE_FAIL, OOM...):
       FAILED, naming the first such component.
    5. The leader COMPLETED and each other component COMPLETED or CANCELLED
       (released early): COMPLETED.
    6. Anything else (a state this module does not know): UNKNOWN.
    """
    comps = tuple(sorted(components, key=lambda c: c.het_offset or 0))
    if not comps:
        return NodeState(leader_id, Phase.UNKNOWN)
    phases = [c.phase for c in comps]
    leader = comps[0]
    released = tuple(
        c.het_offset or 0
        for c in comps[1:]
        if c.phase is Phase.CANCELLED and leader.phase is not Phase.CANCELLED
    )
    if not all(p.terminal for p in phases):
        if Phase.UNKNOWN in phases and not any(p in (Phase.RUNNING, Phase.PENDING) for p in phases):
            return NodeState(leader_id, Phase.UNKNOWN, comps, released)
        phase = Phase.PENDING if all(p is Phase.PENDING for p in phases) else Phase.RUNNING
        return NodeState(leader_id, phase, comps, released)
    if leader.phase is Phase.CANCELLED:
        return NodeState(leader_id, Phase.CANCELLED, comps, (), leader.job_id)
    for comp in comps:
        if comp.phase is Phase.FAILED:
            return NodeState(leader_id, Phase.FAILED, comps, released, comp.job_id)
    if leader.phase is Phase.COMPLETED and all(p in (Phase.COMPLETED, Phase.CANCELLED) for p in phases[1:]):
        return NodeState(leader_id, Phase.COMPLETED, comps, released)
    return NodeState(leader_id, Phase.UNKNOWN, comps, released)
