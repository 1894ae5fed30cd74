"""The dispatcher: the one loop that owns the backend, the device status, the queue and the metrics.

It is transport-agnostic and single-threaded: ``handle`` turns a request into immediate
replies (and maybe a queued job), ``run_next`` starts one job on the device, ``collect``
finishes it, ``expire`` drops dead sessions and times out jobs that waited too long. The
server loop (``server.py``) feeds it. The device runs one job at a time: a short one inline
(no hand-off on a work item's round trip), a long one in the executor process
(``executor.py``) while the loop keeps answering everyone else.

Who asks is known from the system, never from the message (``auth.py``): ``open`` and control
requests are authenticated; a session belongs to its opener's uid and connection; ``status``
shows a non-operator only counts, queue positions and their own sessions. Work is bounded per
request and per user (``limits.py``), every refusal before any work starts.

With ``exclusive_sessions`` (a staged qpu host, ``hcqw device serve --exclusive-sessions``) the
device executes one session at a time: the session whose run the policy picks first becomes the
*executor* and keeps the device until it ends (closed, expired, shut down); the other sessions
stay open with their runs queued -- staged -- and the next executor is again the policy's pick.
So SLURM may hand several jobs the qpu host at once (one gres slot each) to open their sessions
and queue their first batch ahead of time, while each node's block still runs alone and whole.

Nothing raises out of ``handle``: a bad request becomes an ``error`` reply naming the
problem, an unexpected failure an ``internal`` error, so no client can crash or wedge it.
"""

from __future__ import annotations

import itertools
import logging
import os
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Hashable

from hcqw.codec import Shape, decode_circuit, samples_to_wire, work_item_fields
from hcqw.device.backend import DeviceStatus, QuantumBackend, batch_seed
from hcqw.device.work import WorkItem
from hcqw.errors import AuthError, CircuitError
from hcqw.identity import Identity
from hcqw.metrics import MetricsLog
from hcqw.service import protocol as P
from hcqw.service.auth import Authenticator
from hcqw.service.executor import INLINE_SECONDS, Executor, ExecutorGone
from hcqw.service.limits import Cost, LimitExceeded, WorkLimits, check_item, check_run
from hcqw.service.policy import Job, make_policy

if TYPE_CHECKING:
    from hcqw.service.exporter import ServiceMonitor

log = logging.getLogger(__name__)

Reply = tuple[Hashable, list[bytes]]
_EXPIRE_EVERY = 0.05  # s between liveness/timeout sweeps


@dataclass
class Session:
    id: str
    workflow: str
    node: str
    owner: Identity  # who opened it (authenticated)
    peer: Hashable  # the connection it was opened on: the only one that may use it
    priority: int
    wait_timeout: float | None
    opened: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    queued: int = 0
    seed: int | None = None  # reseed per batch, so results do not depend on other sessions' work
    batches: int = 0


@dataclass
class Pending:
    """A job's payload: the decoded items and where the reply goes."""

    peer: Hashable
    request_id: Any
    items: list[WorkItem]
    deadline: float | None
    cost: Cost
    queued_at: float = field(default_factory=time.time)
    wait: float | None = None  # the client's queue wait, from which ``deadline`` was set


@dataclass
class Running:
    """The job on the device (in the executor) and when it started."""

    job: Job
    session: Session
    start: float


class Dispatcher:
    def __init__(self, backend: QuantumBackend, policy: str = "fifo", metrics_path: Path | str | None = None,
                 session_timeout: float = 60.0, max_message: int = P.MAX_MESSAGE_BYTES,
                 circuit_cache: int = 256, auth: Authenticator | None = None, limits: WorkLimits | None = None,
                 executor: Executor | None = None, exclusive_sessions: bool = False,
                 max_exclusive_seconds: float = 900.0, monitor: "ServiceMonitor | None" = None):
        self.backend = backend
        self.monitor = monitor  # the Prometheus exporter's counters (hcqw.service.exporter), if it is on
        self.policy = make_policy(policy)
        self.metrics = MetricsLog(metrics_path, keep_open=True) if metrics_path else None
        self.session_timeout = session_timeout
        self.max_message = max_message
        self.auth = auth or Authenticator("none")
        self.limits = limits or WorkLimits()
        self.executor = executor
        self.running: Running | None = None
        self.exclusive_sessions = exclusive_sessions
        self.executing: str | None = None  # with exclusive_sessions: the session that has the device
        self.max_exclusive_seconds = max_exclusive_seconds  # ... and the most it keeps it (issue 24)
        self.executing_since = 0.0
        self._revoked: OrderedDict[str, tuple[str, str]] = OrderedDict()  # session -> (code, why) it was ended
        self.sessions: dict[str, Session] = {}
        self._open_per_user: dict[int, int] = {}  # uid -> open sessions
        self._queued_per_user: dict[int, int] = {}  # uid -> queued work items
        self.forced: tuple[DeviceStatus, str] | None = None  # calibrating/offline window and its reason
        self.draining = False
        self.finished = False
        self.started = time.time()
        self.served = 0  # jobs executed
        self._seq = itertools.count(1)
        self._cache: OrderedDict[str, tuple[Any, Shape]] = OrderedDict()
        self._cache_size = circuit_cache
        self._next_sweep = 0.0
        self._handlers = {type_: getattr(self, f"_on_{type_}") for type_ in P.REQUEST_TYPES}

    # -- status ---------------------------------------------------------------------------

    def status(self) -> DeviceStatus:
        if self.forced is not None:
            return self.forced[0]
        return DeviceStatus.EXECUTING if len(self.policy) or self.running else DeviceStatus.IDLE

    def runnable(self) -> bool:
        if self.forced is not None or self.running is not None or not len(self.policy):
            return False
        # An executor between two batches keeps the device: staged sessions wait for it to end.
        return self.executing is None or any(j.session == self.executing for j in self.policy.order())

    def _next_job(self) -> Job | None:
        """The job to run now: the policy's pick, or with exclusive sessions the executor's next run."""
        if not self.runnable():
            return None
        if self.executing is None:
            job = self.policy.pop()
            if job is not None and self.exclusive_sessions:
                self.executing, self.executing_since = job.session, time.monotonic()
                log.info("session %s executes; %d other sessions staged", job.session, len(self.sessions) - 1)
            return job
        # Taking the executor's next run out of the policy does not advance its rotation, so the next
        # executor is the session the policy would have picked after this one.
        job = self.run_order()[0]
        self.policy.remove(lambda j: j is job)
        return job

    def run_order(self) -> list[Job]:
        """Every queued job in the order the device will run them (the executor's runs first)."""
        order = self.policy.order()
        if self.executing is None:
            return order
        return [j for j in order if j.session == self.executing] + [j for j in order if j.session != self.executing]

    def next_wakeup(self, cap: float = 0.5) -> float:
        """Seconds the loop may block waiting for messages before ``expire`` is due."""
        return max(0.0, min(cap, self._next_sweep - time.monotonic()))

    # -- requests -------------------------------------------------------------------------

    def handle(self, peer: Hashable, frames: list[bytes]) -> list[Reply]:
        request_id = None
        try:
            request = P.decode_request(frames, self.max_message)
            request_id = request.id
            return self._handlers[request.type](peer, request)
        except P.ProtocolError as err:
            if self.monitor and isinstance(err, LimitExceeded):
                self.monitor.limit_hit(err.limit)
            return self._refuse(peer, err.request_id if request_id is None else request_id, err.code, err.message)
        except AuthError as err:
            return self._refuse(peer, request_id, P.E_UNAUTHENTICATED, f"not authenticated: {err}")
        except CircuitError as err:
            return self._refuse(peer, request_id, P.E_CIRCUIT, str(err))
        except Exception as err:  # noqa: BLE001 - the service must survive any request
            log.exception("internal error handling a request")
            return self._refuse(peer, request_id, P.E_INTERNAL, f"internal error: {type(err).__name__}: {err}")

    def _refuse(self, peer: Hashable, request_id: Any, code: str, message: str) -> list[Reply]:
        """The error reply to a request, counted by its code for the metrics."""
        if self.monitor:
            self.monitor.refused_request(code)
        return [(peer, P.reply_error(request_id, code, message))]

    def _record(self, kind: str, **fields: Any) -> None:
        """Append an event to the metrics log and give it to the exporter: one source for both."""
        if self.metrics:
            self.metrics.record(kind, **fields)
        if self.monitor:
            self.monitor.event(kind, fields)

    def _session(self, peer: Hashable, request: P.Request) -> Session:
        session = self.sessions.get(request.fields["session"])
        if session is None and request.fields["session"] in self._revoked:
            raise P.ProtocolError(*self._revoked[request.fields["session"]], request.id)
        if session is None:
            raise P.ProtocolError(P.E_NO_SESSION, f"no open session {request.fields['session']!r}: it was closed, "
                                  f"timed out after {self.session_timeout:g} s without a heartbeat, or never opened",
                                  request.id)
        if session.peer != peer:
            # Owner uid is proven at open; later requests carry no credential, so the connection
            # the session was opened on is what proves they come from the owner.
            raise P.ProtocolError(P.E_FORBIDDEN, f"{request.type}: session {session.id} is not yours: a session can "
                                  "be used only by the user and connection that opened it", request.id)
        session.last_seen = time.monotonic()
        return session

    def _operator(self, request: P.Request) -> Identity:
        """The authenticated sender of a control request, if an operator; else ``forbidden``."""
        who = self.auth.identify(request)
        if not self.auth.is_operator(who):
            raise P.ProtocolError(P.E_FORBIDDEN, f"{request.type} is service control, for operators only (the "
                                  f"service's account {self.auth.service.user}, root, and hcqw device serve "
                                  f"--operators); {who} is not one", request.id)
        log.info("%s by operator %s", request.type, who)
        return who

    def _on_ping(self, peer: Hashable, request: P.Request) -> list[Reply]:
        return [(peer, P.reply_ok(request.id))]

    def _on_open(self, peer: Hashable, request: P.Request) -> list[Reply]:
        if self.draining or self.finished:
            raise P.ProtocolError(P.E_UNAVAILABLE, "the service is draining and accepts no new sessions", request.id)
        f = request.fields
        who = self.auth.identify(request)  # a client-sent "user" field is ignored: not identity
        if not self.auth.may_open(who):
            raise P.ProtocolError(P.E_FORBIDDEN, f"this gateway serves only its job's owner "
                                  f"{self.auth.service.user}; {who} may not open a session here", request.id)
        refusal = self.auth.allocation_refusal(who)
        if refusal:
            raise P.ProtocolError(P.E_FORBIDDEN, refusal, request.id)
        if self._open_per_user.get(who.uid, 0) >= self.limits.sessions_per_user:
            raise LimitExceeded("sessions_per_user", P.E_QUOTA,
                                f"{who} already has {self.limits.sessions_per_user} open sessions, the limit per "
                                "user; close some (hcqw device serve --max-sessions-per-user)", request.id)
        # 128 random bits: a session id is never shown to other users, and is not guessable either.
        session = Session(id=secrets.token_hex(16), workflow=f["workflow"], node=f["node"], owner=who, peer=peer,
                          priority=f.get("priority", 0), wait_timeout=f.get("timeout"), seed=f.get("seed"))
        self.sessions[session.id] = session
        self._open_per_user[who.uid] = self._open_per_user.get(who.uid, 0) + 1
        if self.monitor:
            self.monitor.session_opened(who.user)
        limits = self.backend.limits
        log.info("session %s opened: %s/%s by %s", session.id, session.workflow, session.node, who)
        return [(peer, P.reply_ok(request.id, session=session.id, device=self.backend.name,
                                  session_timeout=self.session_timeout,
                                  limits={"max_qubits": limits.max_qubits, "max_repetitions": limits.max_repetitions,
                                          "max_sweep_points": limits.max_sweep_points}))]

    def _on_close(self, peer: Hashable, request: P.Request) -> list[Reply]:
        session = self._session(peer, request)
        replies = self._end_session(session, "closed", P.E_NO_SESSION, "session closed while this run was queued")
        return replies + [(peer, P.reply_ok(request.id))]

    def _on_heartbeat(self, peer: Hashable, request: P.Request) -> list[Reply]:
        self._session(peer, request)
        return [(peer, P.reply_ok(request.id))]

    def _on_position(self, peer: Hashable, request: P.Request) -> list[Reply]:
        session = self._session(peer, request)
        position = next((i for i, j in enumerate(self.run_order()) if j.session == session.id), None)
        return [(peer, P.reply_ok(request.id, position=position, queued=len(self.policy),
                                  status=self.status().value))]

    def _on_reseed(self, peer: Hashable, request: P.Request) -> list[Reply]:
        session = self._session(peer, request)
        if session.queued:
            raise P.ProtocolError(P.E_BAD_MESSAGE, f"reseed: session {session.id} has {session.queued} run(s) queued; "
                                  "wait for their replies before reseeding, so every batch's seed is well defined",
                                  request.id)
        session.seed, session.batches = request.fields.get("seed"), 0
        return [(peer, P.reply_ok(request.id))]

    def _on_run(self, peer: Hashable, request: P.Request) -> list[Reply]:
        session = self._session(peer, request)
        if self.finished:
            raise P.ProtocolError(P.E_UNAVAILABLE, "the service is shutting down", request.id)
        items, total, decoded = [], Cost(), []
        for index, data in enumerate(request.fields["items"]):
            item, shape, text = self._decode_item(data, index)
            self.backend.validate(item, index)
            total += check_item(shape, item, index, self.limits)
            items.append(item)
            decoded.append((text, item.circuit, shape))
        check_run(total, self.limits)
        for text, circuit, shape in decoded:  # only circuits that passed every limit are kept
            self._cache_decoded(text, circuit, shape)
        uid = session.owner.uid
        queued = self._queued_per_user.get(uid, 0)
        if queued + len(items) > self.limits.queued_items_per_user:
            raise LimitExceeded("queued_items_per_user", P.E_QUOTA,
                                f"run: {session.owner} has {queued} work items queued; {len(items)} more exceed the "
                                f"limit of {self.limits.queued_items_per_user} per user; wait for results first "
                                "(hcqw device serve --max-queued-items-per-user)", request.id)
        wait = request.fields.get("timeout", session.wait_timeout)
        deadline = None if wait is None else time.monotonic() + wait
        job = Job(seq=next(self._seq), session=session.id, workflow=session.workflow, priority=session.priority,
                  owner=uid, payload=Pending(peer, request.id, items, deadline, total, wait=wait))
        self.policy.push(job)
        session.queued += 1
        self._queued_per_user[uid] = queued + len(items)
        return []

    def _unqueue(self, job: Job) -> None:
        """Book a job out of its session's and user's queue counts."""
        session = self.sessions.get(job.session)
        if session is not None:
            session.queued -= 1
        left = self._queued_per_user.get(job.owner, 0) - len(job.payload.items)
        if left > 0:
            self._queued_per_user[job.owner] = left
        else:
            self._queued_per_user.pop(job.owner, None)

    def _decode_item(self, data: Any, index: int) -> tuple[WorkItem, Shape, str]:
        """A wire work item (see ``hcqw.codec``) and its circuit's shape and JSON text. Decoded circuits
        are cached by their text (``_cache_decoded``): hybrid loops resend one circuit with new parameters,
        and decoding costs far more than a small circuit's execution."""
        where = f"work item {index}"
        text, repetitions, params = work_item_fields(data, where)
        cached = self._cache.get(text)
        if cached is None:
            try:
                decoded = decode_circuit(text)
            except CircuitError as err:
                raise CircuitError(f"{where}: {err}") from None
            cached = (decoded.circuit, decoded.shape)
        return WorkItem.build(cached[0], repetitions, params), cached[1], text

    def _cache_decoded(self, text: str, circuit: Any, shape: Shape) -> None:
        self._cache[text] = (circuit, shape)
        self._cache.move_to_end(text)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _on_status(self, peer: Hashable, request: P.Request) -> list[Reply]:
        who = self.auth.optional(request)
        everything = who is not None and self.auth.is_operator(who)
        return [(peer, P.reply_ok(request.id, **self.describe(viewer=None if everything else peer)))]

    def describe(self, queue_limit: int = 200, viewer: Hashable | None = None) -> dict:
        """The service's state. ``viewer``: the connection of a non-operator, who sees counts, queue
        positions and their own sessions only (never other users' session ids, workflows or nodes)."""
        order = self.run_order()
        limits = self.backend.limits
        mine = (lambda s: True) if viewer is None else (lambda s: s is not None and s.peer == viewer)  # noqa: E731
        queue = []
        for i, job in enumerate(order[:queue_limit]):
            session = self.sessions.get(job.session)
            if mine(session):
                queue.append({"position": i, "session": job.session, "workflow": job.workflow, "seq": job.seq,
                              "node": session.node if session else "", "mine": True})
            else:
                queue.append({"position": i, "mine": False})
        sessions = [{"session": s.id, "workflow": s.workflow, "node": s.node, "user": s.owner.user,
                     "uid": s.owner.uid, "queued": s.queued, "opened": s.opened}
                    for s in self.sessions.values() if mine(s)]
        return {
            "device": self.backend.name, "status": self.status().value,
            "reason": self.forced[1] if self.forced else "", "policy": self.policy.name,
            "exclusive_sessions": self.exclusive_sessions,
            "draining": self.draining, "pid": os.getpid(), "uptime": time.time() - self.started,
            "served": self.served, "queued": len(order), "session_timeout": self.session_timeout,
            "open_sessions": len(self.sessions), "auth": self.auth.mode, "operator_view": viewer is None,
            "limits": {"max_qubits": limits.max_qubits, "max_repetitions": limits.max_repetitions,
                       **self.limits.as_dict()},
            "queue": queue, "sessions": sessions,
        }

    def _on_set_status(self, peer: Hashable, request: P.Request) -> list[Reply]:
        self._operator(request)
        try:
            status = DeviceStatus(request.fields["status"])
        except ValueError:
            raise P.ProtocolError(P.E_BAD_MESSAGE, f"set_status: unknown status {request.fields['status'][:32]!r}; "
                                  "use idle, calibrating or offline", request.id) from None
        if status is DeviceStatus.EXECUTING:
            raise P.ProtocolError(P.E_BAD_MESSAGE, "set_status: 'executing' is reported, not set; use idle, "
                                  "calibrating or offline", request.id)
        reason = request.get("reason", "")
        self.forced = None if status is DeviceStatus.IDLE else (status, reason)
        log.warning("device status set to %s%s", status.value, f" ({reason})" if reason else "")
        return [(peer, P.reply_ok(request.id, status=self.status().value))]

    def _on_set_policy(self, peer: Hashable, request: P.Request) -> list[Reply]:
        self._operator(request)
        try:
            self.policy = make_policy(request.fields["policy"], self.policy.order())
        except ValueError as err:
            raise P.ProtocolError(P.E_BAD_MESSAGE, f"set_policy: {err}", request.id) from None
        log.info("queue policy set to %s", self.policy.name)
        return [(peer, P.reply_ok(request.id, policy=self.policy.name))]

    def _on_drain(self, peer: Hashable, request: P.Request) -> list[Reply]:
        self._operator(request)
        self.draining = True
        log.info("draining: no new sessions; exiting once %d sessions close", len(self.sessions))
        self._check_drained()
        return [(peer, P.reply_ok(request.id, sessions=len(self.sessions), queued=len(self.policy)))]

    def _on_shutdown(self, peer: Hashable, request: P.Request) -> list[Reply]:
        self._operator(request)
        return self.shutdown() + [(peer, P.reply_ok(request.id))]

    def shutdown(self) -> list[Reply]:
        """Fail queued and running work, end every session (recording its hold) and stop."""
        replies: list[Reply] = []
        if self.running is not None:
            pending = self.running.job.payload
            replies.append((pending.peer, P.reply_error(pending.request_id, P.E_UNAVAILABLE, "the service shut down")))
            self.running = None
        for session in list(self.sessions.values()):
            replies += self._end_session(session, "shutdown", P.E_UNAVAILABLE, "the service shut down")
        self.finished = True
        return replies

    # -- execution and housekeeping -------------------------------------------------------

    def run_next(self) -> list[Reply]:
        """Start the next job: inline if it is short (its replies now), else in the executor
        (its replies come from ``collect``)."""
        # Whose allocation ended is asked again right before a run starts, not only at the sweep (every
        # _EXPIRE_EVERY): a run that arrives just after its owner's allocation ended is refused, never executed.
        revoked = self._end_revoked(time.monotonic())
        job = self._next_job()
        if job is None:
            return revoked
        pending: Pending = job.payload
        session = self.sessions.get(job.session)
        if session is None:  # cannot happen: ending a session removes its jobs
            return revoked
        self._unqueue(job)
        seed = None
        if session.seed is not None:
            seed = batch_seed(session.seed, session.batches)
            session.batches += 1
        start = time.time()
        seconds = max(pending.cost.seconds, self.backend.duration(pending.items))
        if self.executor is not None and seconds >= INLINE_SECONDS:
            self.executor.submit(pending.items, seed)
            self.running = Running(job, session, start)
            return revoked
        if seed is not None:
            self.backend.reseed(seed)
        try:
            results = self.backend.execute(pending.items)
        except Exception as err:  # noqa: BLE001 - a failing circuit must not take the service down
            return revoked + self._failed(pending, err)
        return revoked + self._finished(job, session, results, start)

    def collect(self) -> list[Reply]:
        """The replies of the executor's job once it is done (none while it runs)."""
        if self.running is None or self.executor is None:
            return []
        try:
            results = self.executor.result()
        except (ExecutorGone, Exception) as err:  # noqa: BLE001 - the job fails, the service serves on
            running, self.running = self.running, None
            if isinstance(err, ExecutorGone):
                log.error("%s; long jobs run inline from now on", err)
                self.executor = None
            return self._failed(running.job.payload, err)
        if results is None:
            return []
        running, self.running = self.running, None
        return self._finished(running.job, running.session, results, running.start)

    def _failed(self, pending: Pending, err: BaseException) -> list[Reply]:
        log.error("work item failed on the device: %s", err)
        code = P.E_CIRCUIT if isinstance(err, CircuitError) else P.E_INTERNAL
        return [(pending.peer, P.reply_error(pending.request_id, code, f"execution failed: {err}"))]

    def _finished(self, job: Job, session: Session, results: list, start: float) -> list[Reply]:
        end = time.time()
        self.served += 1
        pending: Pending = job.payload
        items = pending.items
        executed = {"device": self.backend.name, "start": start, "end": end, "items": len(items),
                    "qubits": max(len(i.circuit.all_qubits()) for i in items),
                    "shots": sum(i.repetitions * len(i.params) for i in items)}
        if self.metrics or self.monitor:
            self._record("exec", workflow=session.workflow, node=session.node, user=session.owner.user,
                         uid=session.owner.uid, session=session.id, seq=job.seq, queued=pending.queued_at, **executed)
        self._check_drained()
        if session.id not in self.sessions:  # ended (closed, expired) while the executor ran its job
            return []
        points = [point for item_points in results for point in item_points]
        header, buffers = samples_to_wire(points)
        session.last_seen = time.monotonic()  # the client was waiting on us, not silent
        return [(pending.peer, P.reply_ok(pending.request_id, buffers, results=header,
                                          points=[len(r) for r in results], seq=job.seq, executed=executed))]

    def expire(self) -> list[Reply]:
        """Drop sessions silent for longer than ``session_timeout`` (their client died) and fail
        queued jobs whose client-chosen wait ran out; runs at most every ``_EXPIRE_EVERY`` s."""
        now = time.monotonic()
        if now < self._next_sweep:
            return []
        self._next_sweep = now + _EXPIRE_EVERY
        replies: list[Reply] = []
        for session in list(self.sessions.values()):
            if now - session.last_seen > self.session_timeout:
                log.warning("session %s (%s/%s) silent for %.1f s: dropping it and %d queued runs", session.id,
                            session.workflow, session.node, now - session.last_seen, session.queued)
                replies += self._end_session(session, "expired", P.E_NO_SESSION, "session expired")
        replies += self._end_revoked(now)
        # A staged run waits for the executing session by design, not for an unavailable device: its
        # wait counts from when the device could be its session's (refreshed when an executor ends).
        late = self.policy.remove(lambda j: j.payload.deadline is not None and now >= j.payload.deadline
                                  and self.executing in (None, j.session))
        for job in late:
            self._unqueue(job)
            if self.monitor:
                self.monitor.refused_request(P.E_TIMEOUT)
            state = self.status()
            why = f"the device is {state.value}" + (f" ({self.forced[1]})" if self.forced and self.forced[1] else "")
            replies.append((job.payload.peer, P.reply_error(
                job.payload.request_id, P.E_TIMEOUT,
                f"run waited longer than its timeout in the queue; {why}; retry later or raise the timeout")))
        self._check_drained()
        return replies

    def _end_revoked(self, now: float) -> list[Reply]:
        """End the sessions whose owner's qpu allocation ended, and an executor past its device-time cap."""
        replies: list[Reply] = []
        owners = {s.id: s.owner for s in self.sessions.values()}
        for session_id in self.auth.revoked(owners):
            session = self.sessions[session_id]
            log.warning("session %s: %s holds no qpu allocation here any more: closing it", session.id, session.owner)
            why = (f"session {session.id} was closed: {session.owner} no longer holds an allocation of gres/qpu on "
                   "this host (only jobs holding the QPU reach it)")
            replies += self._end_session(session, "allocation ended", P.E_FORBIDDEN, why)
            self._remember(session.id, P.E_FORBIDDEN, why)
        executor = self.sessions.get(self.executing) if self.executing else None
        if executor is not None and now - self.executing_since > self.max_exclusive_seconds:
            log.warning("session %s kept the device %.0f s, beyond the cap of %g s: closing it", executor.id,
                        now - self.executing_since, self.max_exclusive_seconds)
            why = (f"session {executor.id} was closed: it kept the device for more than {self.max_exclusive_seconds:g} "
                   "s, the cap per exclusive session (hcqw device serve --max-exclusive-seconds); open a new one")
            replies += self._end_session(executor, "device time cap", P.E_QUOTA, why)
            if self.monitor:
                self.monitor.limit_hit("max_exclusive_seconds")
            self._remember(executor.id, P.E_QUOTA, why)
        return replies

    def _remember(self, session_id: str, code: str, why: str) -> None:
        self._revoked[session_id] = (code, why)
        if len(self._revoked) > 1024:
            self._revoked.popitem(last=False)

    def quiet_for(self, seconds: float) -> None:
        """The loop could not listen for ``seconds`` (an inline execution): silence in that time is
        not the clients' fault, so no session's liveness clock counts it."""
        for session in self.sessions.values():
            session.last_seen += seconds

    def _end_session(self, session: Session, reason: str, code: str, message: str) -> list[Reply]:
        self.sessions.pop(session.id, None)
        if self.executing == session.id:
            self.executing = None  # the device goes to the next staged session in the policy's order
            now = time.monotonic()
            for job in self.policy.order():
                if job.payload.wait is not None:
                    job.payload.deadline = max(job.payload.deadline, now + job.payload.wait)
        dropped = self.policy.remove_session(session.id)
        for job in dropped:
            self._unqueue(job)
        uid = session.owner.uid
        if self._open_per_user.get(uid, 0) > 1:
            self._open_per_user[uid] -= 1
        else:
            self._open_per_user.pop(uid, None)
        if self.metrics or self.monitor:
            self._record("hold", workflow=session.workflow, node=session.node, device=self.backend.name,
                         user=session.owner.user, uid=uid, session=session.id, start=session.opened, end=time.time(),
                         reason=reason)
        log.info("session %s %s (%d queued runs dropped)", session.id, reason, len(dropped))
        return [(j.payload.peer, P.reply_error(j.payload.request_id, code, message)) for j in dropped]

    def _check_drained(self) -> None:
        if self.draining and not self.sessions and not len(self.policy) and self.running is None:
            self.finished = True

    def close(self) -> None:
        if self.metrics:
            self.metrics.close()
        if self.executor is not None:
            self.executor.close()
