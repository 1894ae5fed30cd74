"""The relay gateway: a quantum node's door to a resident QPU service on the qpu node.

Where the service node keeps a QPU service running (``hcqw device serve``, the second
paper's dispatcher that owns the device), the qpu component of a quantum node need not
load a simulator of its own: its gateway relays the node's messages, frame for frame, to
that service over a node-local address. The component is then ready as soon as a Python
process with pyzmq is (tenths of a second, against seconds for the cirq/qsimcirq import and
set-up), the device stays hot between nodes, and SLURM still decides which job may use it:
only processes inside a qpu allocation run on the service node to reach the local address.

What passes: an allow-list of session requests (ping, status, open, close, heartbeat,
position, reseed, run) with a string or integer ``id``; everything else -- service control
(set_status, set_policy, drain, shutdown: the operator's, on the service node), unknown types,
unreadable messages, and any request whose ``id`` is missing, null, a float, a list... -- is
refused here with a named error and never reaches the service. A run's circuits are decoded
here first (``hcqw.codec.circuit.screen_circuit``): a type outside the decoder's allow-list, or a
message beyond its bounds, never leaves the node.

Identity: the relay serves its job's owner only. A node's ``open`` must carry a MUNGE
credential of the relay's own uid (the job runs as its owner); the relay verifies it and
replaces it with a fresh credential of its own for the upstream service, because a MUNGE
credential can be decoded only once (replay detection). ``status`` goes up without a
credential (a non-operator's view). Later session requests need none: upstream, each node
connection has its own link, and the service ties a session to the link that opened it.
Only the owner's connections (those that opened a session) count as the node being alive:
anyone else talking to the relay does not keep it, and its qpu allocation, from timing out.
When the relay stops, sessions the node left open are closed upstream, so their queued
work goes at once.
Each run reply's ``executed`` interval is logged as an ``exec`` event in the run's metrics,
as a gateway's own dispatcher would have logged it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import zmq  # the upstream link is ZeroMQ whatever the node's side is

from hcqw import identity
from hcqw.codec import screen_circuit, work_item_fields
from hcqw.errors import AuthError, CircuitError, DeviceError
from hcqw.metrics import MetricsLog
from hcqw.service import protocol as P
from hcqw.service.transport import ClientTransport, ServerTransport, make_client_transport

log = logging.getLogger(__name__)

_CLOSE_WAIT_S = 2.0
_PASSED_KEPT = 64


@dataclass
class _Session:
    workflow: str
    node: str
    peer: Hashable
    link: ClientTransport


class Relay:
    """Forwards between the node's transport (``server``) and the resident service at ``upstream``.

    Each peer of ``server`` gets its own upstream connection, so replies need no routing table.
    """

    def __init__(self, server: ServerTransport, upstream: str, metrics: MetricsLog | None = None):
        self.owner = identity.current()  # the job's owner: the only user this relay serves
        self.server = server
        self.upstream = upstream
        self.metrics = metrics
        self.sessions: dict[str, _Session] = {}
        self.last_heard = time.monotonic()  # from the owner's connections only: nobody else keeps the relay alive
        self._owner_peers: set[Hashable] = set()  # connections that opened a session with the owner's credential
        self._links: dict[Hashable, ClientTransport] = {}
        # ZeroMQ both ways: one poller, kept across turns, waits on the node's socket and every link.
        self._poller: Any = None
        if getattr(server, "socket", None) is not None:
            self._poller = zmq.Poller()
            self._poller.register(server.socket, zmq.POLLIN)  # type: ignore[attr-defined]
        # (peer, request id) of requests whose reply the relay must look at: open, close, run
        self._watch: dict[tuple[Hashable, Any], tuple[str, Any]] = {}
        self._passed: OrderedDict[str, None] = OrderedDict()  # circuit texts that decoded (see _circuit_problem)

    def check_upstream(self, timeout: float) -> None:
        """Fail now, with the fix, if the resident service does not answer a ping."""
        link = make_client_transport(self.upstream)
        try:
            link.send(P.request("ping", "relay-ping"))
            if link.recv(timeout) is None:
                raise DeviceError(f"the QPU service at {self.upstream} did not answer within {timeout:g} s; "
                                  "is `hcqw device serve` running on the qpu node at that address?")
        finally:
            link.close()

    # -- one message each way -------------------------------------------------------------

    def from_node(self, peer: Hashable, frames: list[bytes]) -> None:
        if peer in self._owner_peers:
            self.last_heard = time.monotonic()
        header = _header(frames)
        refusal = self._refusal(header, frames)
        if refusal is not None:
            self.server.send(peer, refusal)
            return
        type_, request_id = header["type"], header["id"]
        if type_ == "open":
            try:
                who = identity.decode(header.get("cred") or "")
            except AuthError as err:
                self.server.send(peer, P.reply_error(request_id, P.E_UNAUTHENTICATED, f"not authenticated: {err}"))
                return
            if who.uid != self.owner.uid:
                log.warning("refused an open by %s: this gateway serves %s only", who, self.owner)
                self.server.send(peer, P.reply_error(request_id, P.E_FORBIDDEN, (
                    f"this gateway serves only its job's owner {self.owner.user}; {who} may not open a session here")))
                return
            self._owner_peers.add(peer)
            self.last_heard = time.monotonic()
            frames = P.encode({**header, "cred": identity.encode()})  # ours: the node's is used up
        elif peer not in self._owner_peers:
            # A job's gateway serves its owner only: a connection that has not opened a session with
            # the owner's credential gets nothing else relayed, but a status that proves the owner.
            if type_ != "status" or not self._is_owner(header.get("cred")):
                self.server.send(peer, P.reply_error(request_id, P.E_FORBIDDEN, (
                    f"this gateway serves only its job's owner {self.owner.user}: open a session with your "
                    "credential first (a status request must carry the owner's credential)")))
                return
            frames = P.encode({k: v for k, v in header.items() if k != "cred"})
        elif type_ == "status" and "cred" in header:
            frames = P.encode({k: v for k, v in header.items() if k != "cred"})
        elif type_ == "run":
            problem = self._circuit_problem(header.get("items"))
            if problem is not None:
                self.server.send(peer, P.reply_error(request_id, P.E_BAD_MESSAGE, problem))
                return
        if type_ == "open":
            self._watch[(peer, request_id)] = ("open", (header.get("workflow", ""), header.get("node", "")))
        elif type_ in ("close", "run"):
            self._watch[(peer, request_id)] = (type_, header.get("session"))
        link = self._links.get(peer)
        if link is None:
            link = self._links[peer] = make_client_transport(self.upstream)
            if self._poller is not None:
                self._poller.register(link.socket, zmq.POLLIN)  # type: ignore[attr-defined]
        link.send(frames)

    def _circuit_problem(self, items: Any) -> str | None:
        """Why a run's circuits may not go up, or ``None``: each is screened here against the
        decoder's allow-list and bounds (``hcqw.codec.circuit.screen_circuit``: the types, sizes and
        expanded operation count, without importing cirq, so the relay stays quick to start), so no
        message built to run code or stall a decoder leaves this node. The service decodes in full and
        prices the work against its own limits. Circuits that passed are remembered by their text:
        a hybrid loop resends one circuit with new parameters."""
        if not isinstance(items, list):
            return "run: 'items' must be a list of work items"
        for index, data in enumerate(items):
            try:
                text = work_item_fields(data, f"work item {index}")[0]
                if text not in self._passed:
                    screen_circuit(text)
            except CircuitError as err:
                return f"work item {index}: {err}" if not str(err).startswith("work item") else str(err)
            self._passed[text] = None
            self._passed.move_to_end(text)
            if len(self._passed) > _PASSED_KEPT:
                self._passed.popitem(last=False)
        return None

    def _is_owner(self, credential: Any) -> bool:
        try:
            return identity.decode(credential or "").uid == self.owner.uid
        except AuthError:
            return False

    @staticmethod
    def _refusal(header: dict, frames: list[bytes]) -> list[bytes] | None:
        """The error reply for a message the relay does not forward, or ``None`` to forward it."""
        type_, request_id = header.get("type"), header.get("id")
        echo = request_id if isinstance(request_id, (str, int)) and not isinstance(request_id, bool) else None
        if not header:
            return P.reply_error(None, P.E_BAD_MESSAGE, "not a protocol request: a JSON header frame was expected")
        if type_ in P.CONTROL_TYPES:
            return P.reply_error(echo, P.E_FORBIDDEN, (
                f"{type_} is service control, not available to a job through its gateway; an operator runs "
                f"`hcqw device {type_.replace('_', '-')}` on the service node"))
        if type_ not in P.SESSION_TYPES:
            shown = type_ if isinstance(type_, str) and len(type_) < 64 else type(type_).__name__
            return P.reply_error(echo, P.E_FORBIDDEN, f"request type {shown!r} is not relayed; a job's gateway "
                                                      f"passes only {sorted(P.SESSION_TYPES)}")
        if echo is None:
            return P.reply_error(None, P.E_BAD_MESSAGE, f"{type_}: 'id' must be a string or an integer, got "
                                                        f"{type(request_id).__name__}")
        if len(frames) != 1:
            return P.reply_error(echo, P.E_BAD_MESSAGE, f"requests are a single JSON frame; got {len(frames)}")
        return None

    def from_service(self, peer: Hashable, frames: list[bytes]) -> None:
        header = _header(frames)
        watched = self._watch.pop((peer, header.get("id")), None)
        if watched is not None and header.get("type") == "ok":
            kind, what = watched
            if kind == "open" and isinstance(header.get("session"), str):
                self.sessions[header["session"]] = _Session(*what, peer, self._links[peer])
            elif kind == "close":
                self.sessions.pop(what, None)
            elif kind == "run":
                self._record_exec(what, header)
        self.server.send(peer, frames)

    def _record_exec(self, session_id: Any, header: dict) -> None:
        session = self.sessions.get(session_id)
        executed = header.get("executed")
        if self.metrics is None or session is None or not isinstance(executed, dict):
            return
        self.metrics.record("exec", workflow=session.workflow, node=session.node, session=session_id,
                            seq=header.get("seq"), **executed)

    # -- the loop -------------------------------------------------------------------------

    def run(self, until: Callable[[], str | None], wakeup_cap: float = 0.2) -> str:
        """Relay until ``until()`` gives a reason to stop; then close what the node left open."""
        try:
            while True:
                reason = until()
                if reason:
                    return reason
                self._turn(wakeup_cap)
        finally:
            self.close()

    def _turn(self, wakeup_cap: float) -> None:
        if self._poller is not None:
            self._poller.poll(wakeup_cap * 1000)
            wait = 0.0
        else:  # MPI towards the node: its receive polls anyway; look upstream between short waits
            wait = 0.002 if self._watch else wakeup_cap
        message = self.server.recv(wait)
        while message is not None:
            self.from_node(*message)
            message = self.server.recv(0.0)
        for peer, link in list(self._links.items()):
            frames = link.recv(0.0)
            while frames is not None:
                self.from_service(peer, frames)
                frames = link.recv(0.0)

    def close(self) -> None:
        """Close upstream the sessions the node did not close (it died, or went silent), then the links."""
        for session_id, session in list(self.sessions.items()):
            session.link.send(P.request("close", "relay-close", session=session_id))
            deadline = time.monotonic() + _CLOSE_WAIT_S
            while time.monotonic() < deadline:
                frames = session.link.recv(deadline - time.monotonic())
                if frames is None or _header(frames).get("id") == "relay-close":
                    break
            log.info("closed session %s (%s/%s) left open by the node", session_id, session.workflow, session.node)
        self.sessions.clear()
        for link in self._links.values():
            link.close()
        self._links.clear()
        self.server.close()


def _header(frames: list[bytes]) -> dict:
    """The JSON header, or ``{}``: a malformed message is forwarded as it is, for the service to answer."""
    try:
        header = json.loads(frames[0]) if frames else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return header if isinstance(header, dict) else {}
