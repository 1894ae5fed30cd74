"""ZeroMQ transport: one ROUTER socket on the service, a DEALER per client.

ROUTER lets any number of clients share the service and lets a client keep several
requests in flight (a heartbeat while a run waits). Our DEALER clients send the request
frames as they are; a plain ``zmq.REQ`` socket (or a DEALER that prepends the empty
delimiter frame a REQ would) is a valid client too: the service answers in the envelope
it was asked in. A reply to a client that has gone is dropped by ROUTER, never an error.

The per-message path is written for latency (a ping is tens of microseconds): waits are
blocking ``recv`` calls with ``RCVTIMEO`` rather than ``poll`` + non-blocking ``recv``,
"anything more?" is a ``ZMQ_EVENTS`` check rather than a ``recv`` that raises ``Again``,
and flags are plain ints (pyzmq's flag enums cost an object per ``|``).

Peer ids and session ownership: the service ties a session to the ROUTER peer id it was
opened from. libzmq generates ids as a zero byte plus a counter, but it does NOT stop a
client from choosing its own id, zero byte first included (verified with libzmq 4.3.5: both
``setsockopt(ROUTING_ID, b"\x00...")`` and a raw ZMTP handshake carrying such an id are
accepted). What a forger cannot do: take the id of a client that is still connected -- ROUTER
refuses a second connection with an id in use (``ROUTER_HANDOVER`` off, the default, kept) --
or learn the session id: 128 random bits, shown to its owner and operators only. So someone
who learns both a session id and its peer id could act in that session only after its owner
disconnected and before the session expires (``session_timeout``).
"""

from __future__ import annotations

import logging
import math
import os
import struct
import time
from typing import Hashable, Sequence

import zmq

from hcqw.service import servicekey
from hcqw.service.servicekey import ServerKey
from hcqw.service.transport import ClientTransport, Frames, ServerTransport, private_ipc_dir, shared_ipc_dir

log = logging.getLogger(__name__)

# Hard cap enforced by libzmq (the peer is disconnected); the service's own, smaller
# limit answers with a ``too_large`` error instead, so this only stops memory exhaustion.
_HARD_CAP_FACTOR = 4

_NOBLOCK = int(zmq.NOBLOCK)
_SNDMORE = int(zmq.SNDMORE)
_MORE = _SNDMORE | _NOBLOCK
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
_RCVTIMEO = int(zmq.RCVTIMEO)
_LINK_EVENTS = int(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)


def _timeout_ms(timeout: float | None) -> int:
    """``RCVTIMEO`` for a wait of ``timeout`` s: -1 forever, 0 no wait, else rounded up to 1 ms."""
    if timeout is None:
        return -1
    return max(0, math.ceil(timeout * 1000.0))


class _Receiver:
    """A socket's blocking receive with a timeout, setting ``RCVTIMEO`` only when it changes."""

    def __init__(self, socket: zmq.Socket):
        self._socket = socket
        self._timeout_ms = socket.get(_RCVTIMEO)

    def recv(self, timeout_ms: int) -> Frames | None:
        if timeout_ms != self._timeout_ms:
            self._socket.set(_RCVTIMEO, timeout_ms)
            self._timeout_ms = timeout_ms
        try:
            return self._socket.recv_multipart()
        except zmq.Again:
            return None


class ZmqServerTransport(ServerTransport):
    """A ROUTER. ``shared`` (an authenticated service): every user may connect, and the service proves
    itself with CurveZMQ: a key pair made here (the secret stays in this process), the public key in
    ``address`` (a card, ``servicekey``) and, for an ipc socket, in ``<socket>.key`` next to it."""

    def __init__(self, address: str, max_message: int, shared: bool = False, hard_cap: int | None = None,
                 clients: frozenset[bytes] | None = None):
        """``clients`` (z85 public keys): admit only these CurveZMQ clients (a job's gateway admits its node's
        key): anyone else fails the handshake, so nothing of theirs is ever decrypted or delivered."""
        shared_ipc_dir(address) if shared else private_ipc_dir(address)
        self._context = zmq.Context.instance()
        self.zap: zmq.Socket | None = None
        if clients is not None:
            from zmq.utils import z85

            self._clients = frozenset(z85.decode(c) for c in clients)
            # ZeroMQ asks the context's ZAP handler about every CurveZMQ handshake: we are it (serve_zap).
            self.zap = self._context.socket(zmq.REP)
            self.zap.setsockopt(zmq.LINGER, 0)
            self.zap.bind("inproc://zeromq.zap.01")
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, hard_cap or max_message * _HARD_CAP_FACTOR + 4096)
        self.server_key: ServerKey | None = None
        self._key_file = None
        if shared:
            self.server_key, secret = servicekey.generate()
            self._socket.setsockopt(zmq.CURVE_SERVER, 1)
            self._socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
        self._socket.bind(address)
        self._receiver = _Receiver(self._socket)
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.address = self.endpoint if self.server_key is None else servicekey.card(self.endpoint, self.server_key)
        if shared and self.endpoint.startswith("ipc://"):
            # Connecting to a Unix socket needs write permission on it: every user may connect,
            # the service authenticates them (MUNGE).
            os.chmod(self.endpoint[len("ipc://"):], 0o666)
            self._key_file = servicekey.key_file(self.endpoint)
            servicekey.publish(self._key_file, self.server_key)
        log.info("ZeroMQ ROUTER bound at %s%s", self.endpoint, " (CurveZMQ)" if self.server_key else "")

    @property
    def socket(self) -> zmq.Socket:
        """For a ``zmq.Poller`` that waits on this and other sockets at once (the job relay)."""
        return self._socket

    def serve_zap(self, limit: int = 64) -> int:
        """Answer up to ``limit`` waiting handshake questions (ZAP, RFC 27): 200 for an admitted client key,
        400 for any other; how many were refused. A few microseconds each, no log line."""
        refused = 0
        for _ in range(limit):
            if self.zap is None or not self.zap.get(_EVENTS) & _POLLIN:
                break
            request = self.zap.recv_multipart(_NOBLOCK)
            version, request_id, mechanism = request[0], request[1], request[5] if len(request) > 5 else b""
            ok = mechanism == b"CURVE" and len(request) > 6 and request[6] in self._clients
            refused += not ok
            self.zap.send_multipart([version, request_id, b"200" if ok else b"400", b"OK" if ok else b"not admitted",
                                     b"", b""])
        return refused

    def recv(self, timeout: float) -> tuple[Hashable, Frames] | None:
        if timeout > 0:
            frames = self._receiver.recv(_timeout_ms(timeout))
            if frames is None:
                return None
        elif self._socket.get(_EVENTS) & _POLLIN:  # a whole message is there: this recv cannot block
            frames = self._socket.recv_multipart(_NOBLOCK)
        else:
            return None
        identity = frames[0]
        # REQ-style envelope: remember it, so the reply goes back with the delimiter.
        if len(frames) > 1 and frames[1] == b"":
            return (identity, True), frames[2:]
        return (identity, False), frames[1:]

    def send(self, peer: Hashable, frames: Sequence[bytes]) -> None:
        identity, envelope = peer  # type: ignore[misc]
        socket = self._socket
        try:
            socket.send(identity, _MORE)
            if envelope:
                socket.send(b"", _MORE)
            for frame in frames[:-1]:
                socket.send(frame, _MORE)
            socket.send(frames[-1], _NOBLOCK)
        except zmq.Again:
            log.warning("dropping a reply: the client's queue is full (client stuck or gone)")
        except zmq.ZMQError as err:  # e.g. EHOSTUNREACH with ROUTER_MANDATORY; never fatal
            log.warning("dropping a reply: %s", err)

    def close(self) -> None:
        self._socket.close(0)
        if self.zap is not None:
            self.zap.close(0)
        if self._key_file is not None:
            self._key_file.unlink(missing_ok=True)


def _monitor_event(frames: list[bytes]) -> int:
    """The event number of one socket-monitor message (libzmq: frame 1 packs a 16-bit event and a 32-bit
    value, frame 2 the endpoint). pyzmq's ``recv_monitor_message`` reads the same, but importing it
    imports asyncio (and ssl): 0.05-0.1 s at the start of every gateway and node process, inside the
    qpu component's allocation."""
    event, _value = struct.unpack("=hi", frames[0][:6])
    return event


class ZmqClientTransport(ClientTransport):
    """A DEALER. With ``liveness_timeout`` it also watches its connection: libzmq's own ZMTP heartbeats
    (answered by the service's I/O thread, so also while the service executes a long job) close a
    connection that stays silent for half the timeout, and a socket monitor tells when the
    connection is down -- the peer process died (its socket closed) or stopped answering."""

    def __init__(self, address: str, liveness_timeout: float | None = None, server_key: ServerKey | None = None):
        """``server_key``: talk CurveZMQ to a server holding that key's secret (a fresh client key each time)."""
        self._socket = zmq.Context.instance().socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        if server_key is not None:
            if server_key.client:  # the client key a job's gateway admits (its owner's alone)
                public, secret = servicekey.read_client_key(server_key.client)
            else:
                public, secret = zmq.curve_keypair()
            self._socket.setsockopt(zmq.CURVE_SERVERKEY, server_key.public)
            self._socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
            self._socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
        self._monitor: zmq.Socket | None = None
        self._down_since: float | None = time.monotonic()  # until the first handshake
        if liveness_timeout:
            self._socket.setsockopt(zmq.HEARTBEAT_IVL, max(50, int(liveness_timeout * 250)))
            self._socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(100, int(liveness_timeout * 500)))
            self._monitor = self._socket.get_monitor_socket(_LINK_EVENTS)
        self._socket.connect(address)
        self._receiver = _Receiver(self._socket)

    def disconnected_for(self) -> float:
        if self._monitor is None:
            return 0.0
        while self._monitor.get(_EVENTS) & _POLLIN:
            event = _monitor_event(self._monitor.recv_multipart(_NOBLOCK))
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._down_since = None
            elif event == zmq.EVENT_DISCONNECTED and self._down_since is None:
                self._down_since = time.monotonic()
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    @property
    def socket(self) -> zmq.Socket:
        return self._socket

    def send(self, frames: Sequence[bytes]) -> None:
        socket = self._socket
        for frame in frames[:-1]:
            socket.send(frame, _SNDMORE)
        socket.send(frames[-1])

    def recv(self, timeout: float | None) -> Frames | None:
        frames = self._receiver.recv(_timeout_ms(timeout))
        if frames and frames[0] == b"":  # a service that answered in a REQ-style envelope
            return frames[1:]
        return frames

    def close(self) -> None:
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(0)
        self._socket.close(0)
