"""Client side of the QPU service: ``ServiceClient`` and its ``ServiceQPU`` session lease.

``ServiceQPU`` has the interface of ``hcqw.device.QPU`` (``run``, ``run_batch``, ``close``,
``limits``, ``is_open``, context manager), so the embedded runner and the SLURM gateway can
take a lease from a ``LocalDevice`` or from a service interchangeably.

Light to import, because a hot quantum node's start-up is mostly imports: this module
imports neither cirq, qsimcirq nor numpy. A node that sends circuits as Cirq JSON text
(``WorkItem(circuit=<json str>, ...)``) never imports cirq; numpy comes with the results
(numpy arrays); ``run`` (which returns ``cirq.ResultDict``) imports cirq on first use.

Identity: ``open`` and control requests carry a MUNGE credential (``cred``, made by
``hcqw.service.credential.seal``: the local munged seals this process's uid, the service's key
and a digest of the request, restricted to the service's uid) whenever a munged socket is there
to make one; a service without authentication (the embedded default's private ipc socket)
ignores it. The service proves itself in turn: a service that publishes a key
(``hcqw.service.servicekey``) is talked to with CurveZMQ and that key only. Nothing else pays for identity: runs and heartbeats are
tied to the session's connection by the service.

Sessions stay alive on their own: a background thread heartbeats every open session that
has been quiet for ``heartbeat`` seconds, so a quantum step may compute classically inside
its block for longer than the service's session timeout. A client object is otherwise not
thread-safe: give each thread its own ``ServiceClient``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

from hcqw.errors import CircuitError, DeviceError, DeviceOffline
from hcqw.service import protocol as P
from hcqw.service.transport import default_address, make_client_transport

if TYPE_CHECKING:
    from hcqw.device.backend import DeviceLimits
    from hcqw.device.work import Samples, WorkItem

log = logging.getLogger(__name__)


class ServiceUnreachable(DeviceError):
    """The service (or whatever ``ServiceClient.peer`` names) did not answer in time or is gone."""


class ServiceError(DeviceError):
    """The service refused a request; ``code`` is the protocol error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _raise_for(header: dict) -> None:
    code, message = header.get("code", P.E_INTERNAL), header.get("message", "unknown error")
    if code == P.E_CIRCUIT:
        raise CircuitError(message)
    if code == P.E_TIMEOUT:
        raise DeviceOffline(message)
    raise ServiceError(code, message)


class ServiceClient:
    """A connection to a QPU service.

    ``timeout`` bounds the wait for a control reply (a dead service raises instead of hanging);
    runs wait as long as the queue takes. ``heartbeat``: every open session hears from this
    client at least this often -- while a run waits, and (``keepalive``, a daemon thread)
    while the caller does something else -- so the service knows it is alive. ``peer``: how errors
    name the other end (default: the QPU service at ``address``, with a hint to start it).

    Knowing the peer gone (a quantum node's gateway, without which its block cannot go on): while
    a reply is awaited and, with a session open, in the background, the client asks ``liveness()``
    (a reason the peer is known dead, or ``None``) and, with ``peer_timeout``, whether the link has
    been down longer than half of it (ZeroMQ probes the link itself). The first time either says
    so the client is *lost*: ``on_lost`` is called once (e.g. to free the allocation at once), and
    every waiting or later request raises ``ServiceUnreachable`` naming the peer and the reason.
    Runs then wait no longer than the peer stays alive, however long the device queue is.
    """

    def __init__(self, address: str | None = None, timeout: float | None = 10.0, heartbeat: float = 1.0,
                 keepalive: bool = True, credentials: bool | None = None, peer: str | None = None,
                 liveness: Callable[[], str | None] | None = None, peer_timeout: float | None = None,
                 on_lost: Callable[[ServiceUnreachable], None] | None = None):
        """``credentials``: send MUNGE credentials with open/control/status (``None``: when munged is there)."""
        self.address = address or default_address()
        self.credentials = credentials
        self.peer = peer
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.keepalive = keepalive
        self.liveness = liveness
        self.peer_timeout = peer_timeout
        self.on_lost = on_lost
        self._lost: ServiceUnreachable | None = None
        from hcqw.service import servicekey

        self.server_key = servicekey.for_address(self.address)[1]
        self._transport = make_client_transport(self.address, liveness_timeout=peer_timeout)
        self._ids = itertools.count(1)
        self._closed = False
        # The keep-alive thread and callers share the connection: one request/reply at a time.
        self._lock = threading.Lock()
        self._sessions: dict[str, float] = {}  # open session -> monotonic time of its last request
        self._beats: dict[int, str] = {}  # keep-alive heartbeat id -> its session, until acknowledged
        self._keeper: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- control API ----------------------------------------------------------------------

    def ping(self) -> float:
        """Round-trip time of a control no-op, in seconds."""
        start = time.perf_counter()
        self.call("ping")
        return time.perf_counter() - start

    def status(self) -> dict:
        """The service's state; an operator sees every session, anyone else counts, queue positions
        and their own sessions."""
        return self.signed_call("status")[0]

    def set_status(self, status: str, reason: str = "") -> str:
        """Mark the device ``calibrating``/``offline`` (queued work waits) or back to ``idle``."""
        return self.signed_call("set_status", status=status, reason=reason)[0]["status"]

    def set_policy(self, policy: str) -> str:
        return self.signed_call("set_policy", policy=policy)[0]["policy"]

    def drain(self) -> dict:
        return self.signed_call("drain")[0]

    def shutdown(self) -> None:
        self.signed_call("shutdown")

    def session(self, workflow: str, node: str, user: str | None = None, timeout: float | None = None,
                priority: int = 0, seed: int | None = None) -> "ServiceQPU":
        """Open a session: a lease like ``hcqw.device.QPU``. ``timeout`` bounds how long each run may
        wait in the queue (including calibrating/offline windows) before ``DeviceOffline``; ``seed``
        makes its sampling reproducible exactly as a local lease's (see ``hcqw.device.backend.batch_seed``).
        ``user`` is not sent: the service knows who opens the session from the credential."""
        header, _ = self.signed_call("open", workflow=workflow, node=node, timeout=timeout, priority=priority,
                                     seed=seed)
        qpu = ServiceQPU(self, header, workflow, node)
        with self._lock:
            self._sessions[header["session"]] = time.monotonic()
            if self.keepalive and self._keeper is None:
                self._keeper = threading.Thread(target=self._keep_alive, name="hcqw-service-keepalive", daemon=True)
                self._keeper.start()
        return qpu

    def signed_call(self, type_: str, **fields: Any) -> tuple[dict, list[bytes]]:
        """``call`` with a credential for exactly this request to this service (when munged is there)."""
        return self.call(type_, cred=self.credential(type_, fields), **fields)

    def credential(self, type_: str, fields: dict[str, Any]) -> str | None:
        """A fresh MUNGE credential for one open/control/status request to this service (each is good for
        one use, at this service only, for this request only); ``None`` without munged."""
        from hcqw import identity
        from hcqw.service import credential

        if self.credentials is None:
            self.credentials = identity.munge_reachable()
        if not self.credentials:
            return None
        key = self.server_key
        return credential.seal(type_, fields, key.ident if key else credential.NO_KEY, key.uid if key else None)

    # -- request/reply --------------------------------------------------------------------

    def call(self, type_: str, session: str | None = None, wait: bool = False,
             **fields: Any) -> tuple[dict, list[bytes]]:
        """Send one request and return its ``ok`` reply (header, buffers); raise on ``error``.

        With ``wait`` (runs), wait without a deadline but heartbeat ``session`` meanwhile;
        otherwise give up after ``self.timeout`` seconds."""
        with self._lock:
            if self._closed:
                raise DeviceError("this ServiceClient is closed")
            if self._lost is not None:
                raise ServiceUnreachable(str(self._lost))
            request_id = next(self._ids)
            self._transport.send(P.request(type_, request_id, session=session, **fields))
            if session in self._sessions:
                self._sessions[session] = time.monotonic()
            return self._reply(request_id, session, wait)

    def _reply(self, request_id: int, session: str | None, wait: bool) -> tuple[dict, list[bytes]]:
        deadline = None if (wait or self.timeout is None) else time.monotonic() + self.timeout
        while True:
            # Wake at least every heartbeat: to heartbeat a waiting run, and to look at the peer (a
            # gateway killed while the node opens its session is noticed in a second, not at the timeout).
            pause = self.heartbeat if deadline is None else min(self.heartbeat, deadline - time.monotonic())
            frames = self._transport.recv(max(0.0, pause))
            if frames is None:
                self._check_peer()
                if wait and session is not None:
                    self._transport.send(P.request("heartbeat", next(self._ids), session=session))
                    continue
                if deadline is None or time.monotonic() < deadline:
                    continue
                raise ServiceUnreachable(f"no reply from {self.peer} within {self.timeout:g} s" if self.peer else
                                         f"no reply from the QPU service at {self.address} within {self.timeout:g} "
                                         "s; is it running (hcqw device serve)? A service that proves itself with a "
                                         "key answers only clients that know it: use the address it published")
            try:
                header, buffers = P.decode_reply(frames)
            except ValueError as err:
                raise DeviceError(f"unreadable reply from the QPU service: {err}") from None
            if header.get("id") != request_id:
                if header.get("type") == "error" and header.get("code") == P.E_NO_SESSION and wait:
                    _raise_for(header)  # our heartbeat found the session gone: stop waiting
                if header.get("type") == "error" and header.get("id") is None:
                    _raise_for(header)  # our request was unreadable (e.g. too large): its refusal has no id
                continue  # a heartbeat acknowledgement (or the late reply to a timed-out call)
            if header.get("type") != "ok":
                _raise_for(header)
            return header, buffers

    def _check_peer(self) -> None:
        """Raise ``ServiceUnreachable`` (calling ``on_lost`` the first time) if the peer is known gone.
        Called with the connection's lock held."""
        if self._lost is not None:
            raise ServiceUnreachable(str(self._lost))
        reason = self.liveness() if self.liveness else None
        if reason is None and self.peer_timeout:
            down = self._transport.disconnected_for()
            if down > self.peer_timeout / 2:
                reason = f"the connection to it has been down for {down:.1f} s"
        if reason is None:
            return
        self._lost = ServiceUnreachable(f"lost {self.peer or f'the QPU service at {self.address}'}: {reason}")
        log.error("%s", self._lost)
        if self.on_lost is not None:
            try:
                self.on_lost(self._lost)
            except Exception:  # noqa: BLE001 - the caller still gets the error below
                log.exception("handling the lost peer failed")
        raise ServiceUnreachable(str(self._lost))

    # -- keep-alive -----------------------------------------------------------------------

    def _keep_alive(self) -> None:
        """Heartbeat sessions the caller has left quiet for ``heartbeat`` s (classical work inside a
        quantum block). Fire and forget: the acknowledgements are read and dropped on the next turn,
        so the thread never waits on the service while holding the connection."""
        while not self._stopping.wait(self.heartbeat / 2):
            if not self._lock.acquire(blocking=False):
                continue  # a request is in flight (a waiting run heartbeats by itself)
            try:
                if self._closed:
                    return
                if self._sessions:
                    self._check_peer()  # a gateway dead while the caller computes: free its allocation now
                now = time.monotonic()
                due = [s for s, last in self._sessions.items() if now - last >= self.heartbeat]
                if not due:
                    continue
                self._drop_acknowledgements()
                for session in due:
                    beat = next(self._ids)
                    self._transport.send(P.request("heartbeat", beat, session=session))
                    self._beats[beat] = session
                    self._sessions[session] = now
            except ServiceUnreachable:
                return  # logged once; the caller's next request raises it
            except Exception as err:  # noqa: BLE001 - a broken connection shows on the caller's next request
                log.warning("QPU service keep-alive stopped: %s", err)
                return
            finally:
                self._lock.release()

    def _drop_acknowledgements(self) -> None:
        """Read the replies waiting while no request is in flight: heartbeat acknowledgements, or late
        replies to requests that timed out. A session the service no longer knows stops being kept."""
        while (frames := self._transport.recv(0.0)) is not None:
            try:
                header, _ = P.decode_reply(frames)
            except ValueError:
                continue
            session = self._beats.get(header.get("id"))
            if session is not None and header.get("type") == "error" and header.get("code") == P.E_NO_SESSION:
                log.warning("QPU service: session %s is gone (%s); no longer keeping it alive", session,
                            header.get("message"))
                self._sessions.pop(session, None)
        self._beats.clear()  # acknowledgements not in by now were lost or read by a caller

    def _forget(self, session: str) -> None:
        with self._lock:
            self._sessions.pop(session, None)

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._transport.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ServiceQPU:
    """A session on a QPU service, with the interface of ``hcqw.device.QPU``."""

    def __init__(self, client: ServiceClient, opened: dict, workflow: str, node: str):
        self._client = client
        self.session_id: str | None = opened["session"]
        self.device: str = opened["device"]
        self.workflow = workflow
        self.node = node
        self.acquired_at = time.time()
        self._limits: dict = opened["limits"]
        session_timeout = float(opened.get("session_timeout") or 0)
        if session_timeout and client.heartbeat > session_timeout / 3:
            client.heartbeat = session_timeout / 3  # stay well inside the service's liveness window

    @property
    def limits(self) -> DeviceLimits:
        from hcqw.device.backend import DeviceLimits

        return DeviceLimits(**self._limits)

    @property
    def is_open(self) -> bool:
        return self.session_id is not None

    def run(self, circuit: Any, repetitions: int, params: Any = None) -> list:
        """Run one circuit at each sweep point; returns one ``cirq.ResultDict`` per point."""
        import cirq

        from hcqw.device.work import WorkItem

        item = WorkItem.build(circuit, repetitions, params)
        samples = self.run_batch([item])[0]
        return [cirq.ResultDict(params=cirq.ParamResolver(p), measurements=s) for p, s in zip(item.params, samples)]

    def run_batch(self, items: Sequence[WorkItem], timeout: float | None = None) -> list[list[Samples]]:
        """Run work items in order as one device job; ``timeout`` overrides the session's queue wait."""
        if self.session_id is None:
            raise DeviceError(f"the service session of {self.workflow}/{self.node} is closed; "
                              "run circuits inside the quantum step")
        from hcqw.codec import samples_from_wire, work_item_to_wire  # numpy comes with the results

        wire = [work_item_to_wire(item) for item in items]
        header, buffers = self._client.call("run", session=self.session_id, wait=True, items=wire, timeout=timeout)
        points = samples_from_wire(header["results"], buffers)
        out, offset = [], 0
        for count in header["points"]:
            out.append(points[offset:offset + count])
            offset += count
        return out

    def reseed(self, seed: int | None) -> None:
        """Restart seeding as a new session with ``seed`` would (``None``: unseeded from now on),
        like ``hcqw.device.QPU.reseed``; the monolithic form does this once per iteration."""
        if self.session_id is None:
            raise DeviceError(f"the service session of {self.workflow}/{self.node} is closed; "
                              "reseed it inside the quantum block")
        self._client.call("reseed", session=self.session_id, seed=seed)

    def position(self) -> int | None:
        """Where this session's next queued run stands (0 = next on the device); ``None`` if none queued."""
        return self._client.call("position", session=self.session_id)[0]["position"]

    def close(self) -> None:
        if self.session_id is None:
            return
        session, self.session_id = self.session_id, None
        self._client._forget(session)
        try:
            self._client.call("close", session=session)
        except DeviceError as err:  # the service went away or expired us: nothing left to release
            log.warning("closing session %s: %s", session, err)

    def __enter__(self) -> "ServiceQPU":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SessionLease:
    """A device lease made of one service session and its own connection (``ServiceQPU`` plus
    ``ServiceClient``). Subclasses say what closing it means besides ending both."""

    def __init__(self, client: ServiceClient, session: ServiceQPU):
        self._client = client
        self._session = session
        self.workflow, self.node = session.workflow, session.node
        self.acquired_at = session.acquired_at

    @property
    def limits(self) -> DeviceLimits:
        return self._session.limits

    @property
    def is_open(self) -> bool:
        return self._session.is_open

    def run(self, circuit: Any, repetitions: int, params: Any = None) -> list:
        return self._session.run(circuit, repetitions, params)

    def run_batch(self, items: Sequence[WorkItem]) -> list[list[Samples]]:
        return self._session.run_batch(items)

    def reseed(self, seed: int | None) -> None:
        self._session.reseed(seed)

    def position(self) -> int | None:
        return self._session.position()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "SessionLease":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

