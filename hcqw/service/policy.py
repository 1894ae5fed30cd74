"""Queue policies: which queued job the device runs next.

A policy only orders jobs; it knows nothing about transports, sessions' liveness or the
device. The dispatcher pushes a job when a ``run`` request arrives, pops when the device
is free, and removes a session's jobs when that session closes, dies or times out.

- ``fifo``: arrival order across all sessions (the default; what a single-user dispatcher does).
- ``round-robin``: one queue per workflow, served in rotation, FIFO within a workflow, so
  several hybrid jobs sharing one QPU get a fair share of device turns.
- ``round-robin-user``: the same rotation over users -- the authenticated uid that opened the
  session, never a name the client sent -- so a user running many workflows gets no more turns
  than a user running one (the direct-service and the relay path share the device by this rule).
- ``priority``: higher session priority first, arrival order among equals. A client chooses its
  session's priority, so the policy caps it per user: by ``PriorityCaps`` (default 0: a user may
  lower their own priority, not raise it above others'); operators grant more per user
  (``hcqw device serve --priority-grant USER=N``).
"""

from __future__ import annotations

import abc
import heapq
from collections import deque
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any, Iterable


@dataclass(eq=False)
class Job:
    """One queued ``run`` request: what a policy orders."""

    seq: int  # arrival number, unique and increasing
    session: str
    workflow: str
    priority: int = 0
    owner: int = -1  # uid of the session's authenticated owner
    payload: Any = field(default=None, repr=False)  # the dispatcher's own data (items, reply address)


class QueuePolicy(abc.ABC):
    name: str

    @abc.abstractmethod
    def push(self, job: Job) -> None: ...

    @abc.abstractmethod
    def pop(self) -> Job | None:
        """Remove and return the next job, or ``None`` when empty."""

    @abc.abstractmethod
    def order(self) -> list[Job]:
        """Every queued job in the order ``pop`` would return them (without changing state)."""

    @abc.abstractmethod
    def remove(self, predicate) -> list[Job]:
        """Drop every job for which ``predicate(job)`` is true; return them."""

    @abc.abstractmethod
    def __len__(self) -> int: ...

    def remove_session(self, session: str) -> list[Job]:
        return self.remove(lambda job: job.session == session)

    def position(self, session: str) -> int | None:
        """0-based place of ``session``'s next job in the run order; ``None`` if it has none queued."""
        for index, job in enumerate(self.order()):
            if job.session == session:
                return index
        return None


class FifoPolicy(QueuePolicy):
    name = "fifo"

    def __init__(self) -> None:
        self._jobs: deque[Job] = deque()

    def push(self, job: Job) -> None:
        self._jobs.append(job)

    def pop(self) -> Job | None:
        return self._jobs.popleft() if self._jobs else None

    def order(self) -> list[Job]:
        return list(self._jobs)

    def remove(self, predicate) -> list[Job]:
        gone = [j for j in self._jobs if predicate(j)]
        if gone:
            self._jobs = deque(j for j in self._jobs if not predicate(j))
        return gone

    def __len__(self) -> int:
        return len(self._jobs)


class RoundRobinPolicy(QueuePolicy):
    """Rotate over workflows (``key``) that have queued work, FIFO within each workflow.

    The ring remembers the workflow served last even when its queue ran empty, and the next
    turn goes to whoever follows it in the ring; a newly arriving workflow joins the ring just
    before the one served last. So a workflow never runs twice in a row while another waits
    (re-queueing the served workflow at the back instead would let it jump ahead of a
    workflow that arrives while it is running).
    """

    name = "round-robin"

    def __init__(self) -> None:
        self._queues: dict[Any, deque[Job]] = {}  # only workflows with queued jobs
        self._ring: list[Any] = []  # rotation order: those workflows plus the last served
        self._last: Any = None
        self._count = 0

    @staticmethod
    def key(job: Job) -> Any:
        return job.workflow

    def _rotation(self) -> list[str]:
        ring = self._ring
        if self._last in ring:
            i = ring.index(self._last)
            ring = ring[i + 1:] + ring[:i + 1]
        return [w for w in ring if w in self._queues]

    def _prune(self) -> None:
        self._ring = [w for w in self._ring if w in self._queues or w == self._last]

    def push(self, job: Job) -> None:
        key = self.key(job)
        if key not in self._queues:
            self._queues[key] = deque()
            if key not in self._ring:
                if self._last in self._ring:  # just before the last served: it comes round last
                    self._ring.insert(self._ring.index(self._last), key)
                else:
                    self._ring.append(key)
        self._queues[key].append(job)
        self._count += 1

    def pop(self) -> Job | None:
        rotation = self._rotation()
        if not rotation:
            return None
        key = rotation[0]
        jobs = self._queues[key]
        job = jobs.popleft()
        if not jobs:
            del self._queues[key]
        self._last = key
        self._prune()
        self._count -= 1
        return job

    def order(self) -> list[Job]:
        queues = [list(self._queues[w]) for w in self._rotation()]
        out: list[Job] = []
        depth = 0
        while len(out) < self._count:
            out.extend(q[depth] for q in queues if depth < len(q))
            depth += 1
        return out

    def remove(self, predicate) -> list[Job]:
        gone: list[Job] = []
        for key in list(self._queues):
            jobs = self._queues[key]
            gone.extend(j for j in jobs if predicate(j))
            keep = deque(j for j in jobs if not predicate(j))
            if keep:
                self._queues[key] = keep
            else:
                del self._queues[key]
        self._count -= len(gone)
        self._prune()
        return gone

    def __len__(self) -> int:
        return self._count


class UserRoundRobinPolicy(RoundRobinPolicy):
    """Rotate over users (authenticated uids) that have queued work, FIFO within each user."""

    name = "round-robin-user"

    @staticmethod
    def key(job: Job) -> Any:
        return job.owner


@dataclass(frozen=True)
class PriorityCaps:
    """The highest priority each user's sessions get, whatever they ask: ``grants`` (uid -> cap) set by
    an operator, ``default`` for everyone else."""

    default: int = 0
    grants: Mapping[int, int] = field(default_factory=dict)

    def cap(self, job: Job) -> int:
        return min(job.priority, self.grants.get(job.owner, self.default))


class PriorityPolicy(QueuePolicy):
    """Highest (capped) ``priority`` first; FIFO among equal priorities (``seq`` breaks ties)."""

    name = "priority"
    #: The service's caps (``hcqw.service.server`` sets them from its configuration at start-up).
    caps = PriorityCaps()

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Job]] = []

    def push(self, job: Job) -> None:
        heapq.heappush(self._heap, (-self.caps.cap(job), job.seq, job))

    def pop(self) -> Job | None:
        return heapq.heappop(self._heap)[2] if self._heap else None

    def order(self) -> list[Job]:
        return [entry[2] for entry in sorted(self._heap, key=lambda e: (e[0], e[1]))]

    def remove(self, predicate) -> list[Job]:
        gone = [e[2] for e in self._heap if predicate(e[2])]
        if gone:
            self._heap = [e for e in self._heap if not predicate(e[2])]
            heapq.heapify(self._heap)
        return gone

    def __len__(self) -> int:
        return len(self._heap)


POLICIES: dict[str, type[QueuePolicy]] = {
    "fifo": FifoPolicy,
    "round-robin": RoundRobinPolicy,
    "round-robin-user": UserRoundRobinPolicy,
    "priority": PriorityPolicy,
}


def make_policy(name: str, jobs: Iterable[Job] = ()) -> QueuePolicy:
    """A policy by name, pre-filled with ``jobs`` (in their arrival order) when switching policies live."""
    aliases = {"rr": "round-robin", "roundrobin": "round-robin", "round_robin": "round-robin",
               "rr-user": "round-robin-user", "round_robin_user": "round-robin-user"}
    key = aliases.get(name, name)
    if key not in POLICIES:
        raise ValueError(f"unknown queue policy {name!r}; choose one of {sorted(POLICIES)}")
    policy = POLICIES[key]()
    for job in sorted(jobs, key=lambda j: j.seq):
        policy.push(job)
    return policy
