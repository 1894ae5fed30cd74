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
Credentials are bound (``hcqw.service.credential``): the node's names this relay's key and its
request; the relay's own names the resident service's key (published next to its socket) and is
restricted to the service's uid. Upstream links are CurveZMQ with that key.

Pre-authentication bounds (issue 24): over ZeroMQ the gateway admits one CurveZMQ client key, which
it writes into the job's private directory (``<address file>.client``, 0600): whoever cannot read
it -- anyone but the job's owner and root -- fails the handshake in ZeroMQ's I/O thread, and the
relay answers each such handshake question (ZAP) in microseconds, without a log line. Beyond that
(the MPI transport, a stolen key), a connection that has not opened a session with the owner's
credential is a stranger. A stranger's message bigger than ``PREAUTH_MAX_BYTES`` is refused unread;
each stranger connection gets ``PREAUTH_PER_PEER`` messages, then is ignored; all strangers together
get ``PREAUTH_RATE`` messages a second (a burst of as many), beyond which they are dropped unread --
so a flood costs at most that many JSON parses and MUNGE decodes a second. Refusals are counted and
logged as one summary line every ``SUMMARY_EVERY_S`` s, never one line per attempt. Each turn reads
at most ``TURN_BATCH`` node messages before it serves the upstream replies.
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

from hcqw.codec import screen_circuit, work_item_fields
from hcqw.errors import AuthError, CircuitError, DeviceError
from hcqw.identity import current
from hcqw.metrics import MetricsLog
from hcqw.service import credential, servicekey
from hcqw.service import protocol as P
from hcqw.service.transport import ClientTransport, ServerTransport, make_client_transport

log = logging.getLogger(__name__)

_CLOSE_WAIT_S = 2.0
_PASSED_KEPT = 64
PREAUTH_MAX_BYTES = 64 * 1024  # an open or status is small: a stranger's bigger message is not parsed
PREAUTH_PER_PEER = 8  # messages a connection may send before it has opened a session as the owner
PREAUTH_RATE = 50.0  # stranger messages processed per second (and burst), all strangers together
TURN_BATCH = 64  # node messages read per turn before upstream replies are served
SUMMARY_EVERY_S = 10.0
_MAX_TRACKED_PEERS = 10_000


class _Bucket:
    """A token bucket: ``take()`` is true at most ``rate`` times a second (``rate`` at once after a pause)."""

    def __init__(self, rate: float):
        self.rate, self.tokens, self.stamp = rate, rate, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


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
        self.owner = current()  # the job's owner: the only user this relay serves
        self.server = server
        self.upstream = upstream
        self.upstream_key = servicekey.for_address(upstream)[1]
        key = getattr(server, "server_key", None)
        self.service_id = key.ident if key is not None else credential.NO_KEY
        self._strangers = _Bucket(PREAUTH_RATE)
        self._stranger_count: dict[Hashable, int] = {}
        self.refused: dict[str, int] = {}  # why -> stranger messages refused or dropped since the last summary
        self._summary_at = time.monotonic() + SUMMARY_EVERY_S
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
            if getattr(server, "zap", None) is not None:
                self._poller.register(server.zap, zmq.POLLIN)  # type: ignore[attr-defined]
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

    def _stranger_refusal(self, peer: Hashable, frames: list[bytes]) -> tuple[str, list[bytes] | None] | None:
        """Why a stranger's message goes no further, before it is parsed: (reason, reply or ``None``: dropped)."""
        count = self._stranger_count.get(peer, 0) + 1
        if len(self._stranger_count) >= _MAX_TRACKED_PEERS and peer not in self._stranger_count:
            self._stranger_count.clear()
        self._stranger_count[peer] = count
        if count > PREAUTH_PER_PEER:
            return "over the per-connection budget", None
        if not self._strangers.take():
            return "over the rate cap", None
        size = sum(len(f) for f in frames)
        if size > PREAUTH_MAX_BYTES:
            return "oversized", P.reply_error(None, P.E_TOO_LARGE, (
                f"a message of {size} bytes before a session is open; at most {PREAUTH_MAX_BYTES} until then"))
        return None

    def _count(self, why: str) -> None:
        self.refused[why] = self.refused.get(why, 0) + 1

    def summarise(self) -> None:
        """One log line for the strangers refused since the last one (never a line per attempt)."""
        now = time.monotonic()
        if now < self._summary_at:
            return
        self._summary_at = now + SUMMARY_EVERY_S
        if self.refused:
            log.warning("refused %d messages from connections other than the owner's in the last %g s: %s",
                        sum(self.refused.values()), SUMMARY_EVERY_S,
                        ", ".join(f"{n} {why}" for why, n in sorted(self.refused.items())))
            self.refused.clear()

    def from_node(self, peer: Hashable, frames: list[bytes]) -> None:
        if peer in self._owner_peers:
            self.last_heard = time.monotonic()
        else:
            stopped = self._stranger_refusal(peer, frames)
            if stopped is not None:
                why, reply = stopped
                self._count(why)
                if reply is not None:
                    self.server.send(peer, reply)
                return
        header = _header(frames)
        refusal = self._refusal(header, frames)
        if refusal is not None:
            self.server.send(peer, refusal)
            return
        type_, request_id = header["type"], header["id"]
        if type_ == "open":
            fields = _fields(header)
            try:
                who = credential.verify(header.get("cred"), "open", fields, self.service_id)
            except AuthError as err:
                self._count("unauthenticated opens")
                self.server.send(peer, P.reply_error(request_id, P.E_UNAUTHENTICATED, f"not authenticated: {err}"))
                return
            if who.uid != self.owner.uid:
                self._count(f"opens by {who.user}")
                self.server.send(peer, P.reply_error(request_id, P.E_FORBIDDEN, (
                    f"this gateway serves only its job's owner {self.owner.user}; {who} may not open a session here")))
                return
            self._owner_peers.add(peer)
            self._stranger_count.pop(peer, None)
            self.last_heard = time.monotonic()
            # Ours, for the resident service: the node's is used up and names this relay.
            key = self.upstream_key
            frames = P.encode({**header, "cred": credential.seal("open", fields, key.ident if key else
                                                                 credential.NO_KEY, key.uid if key else None)})
        elif peer not in self._owner_peers:
            # A job's gateway serves its owner only: a connection that has not opened a session with
            # the owner's credential gets nothing else relayed, but a status that proves the owner.
            if type_ != "status" or not self._is_owner(header):
                self._count(f"{type_ if isinstance(type_, str) else '?'} requests")
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

    def _is_owner(self, header: dict) -> bool:
        try:
            return credential.verify(header.get("cred"), "status", _fields(header), self.service_id).uid == self.owner.uid
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
        serve_zap = getattr(self.server, "serve_zap", None)
        if serve_zap is not None:
            refused = serve_zap()
            if refused:
                self.refused["handshakes without the job's client key"] = (
                    self.refused.get("handshakes without the job's client key", 0) + refused)
        message = self.server.recv(wait)
        handled = 0
        while message is not None:
            self.from_node(*message)
            handled += 1
            # A bounded batch: a flood waiting on the node's socket cannot starve the upstream replies.
            message = self.server.recv(0.0) if handled < TURN_BATCH else None
        self.summarise()
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


def _fields(header: dict) -> dict:
    """A request's fields as a credential digests them (``hcqw.service.credential``)."""
    return {k: v for k, v in header.items() if k not in ("v", "type", "id")}


def _header(frames: list[bytes]) -> dict:
    """The JSON header, or ``{}``: a malformed message is forwarded as it is, for the service to answer."""
    try:
        header = json.loads(frames[0]) if frames else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return header if isinstance(header, dict) else {}
