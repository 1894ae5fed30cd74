"""ZeroMQ transport: one ROUTER socket on the service, a DEALER per client.

ROUTER lets any number of clients share the service and lets a client keep several
requests in flight (a heartbeat while a run waits). Clients prepend the empty delimiter
frame a REQ socket would, so a plain ``zmq.REQ`` socket is a valid client too (the raw
baseline and the fuzz test use that). A reply to a client that has gone is dropped by
ROUTER, never an error.
"""

from __future__ import annotations

import logging
from typing import Hashable, Sequence

import zmq

from hcqw.service.transport import ClientTransport, Frames, ServerTransport, private_ipc_dir

log = logging.getLogger(__name__)

# Hard cap enforced by libzmq (the peer is disconnected); the service's own, smaller
# limit answers with a ``too_large`` error instead, so this only stops memory exhaustion.
_HARD_CAP_FACTOR = 4


class ZmqServerTransport(ServerTransport):
    def __init__(self, address: str, max_message: int):
        private_ipc_dir(address)
        self._context = zmq.Context.instance()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, max_message * _HARD_CAP_FACTOR + 4096)
        self._socket.bind(address)
        self.address = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("ZeroMQ ROUTER bound at %s", self.address)

    def recv(self, timeout: float) -> tuple[Hashable, Frames] | None:
        if timeout > 0 and not self._socket.poll(timeout * 1000.0):
            return None
        try:
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return None
        identity, rest = frames[0], frames[1:]
        # REQ-style envelope: remember it, so the reply goes back with the delimiter.
        if rest and rest[0] == b"":
            return (identity, True), rest[1:]
        return (identity, False), rest

    def send(self, peer: Hashable, frames: Sequence[bytes]) -> None:
        identity, envelope = peer  # type: ignore[misc]
        parts = [identity, b"", *frames] if envelope else [identity, *frames]
        try:
            self._socket.send_multipart(parts, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("dropping a reply: the client's queue is full (client stuck or gone)")
        except zmq.ZMQError as err:  # e.g. EHOSTUNREACH with ROUTER_MANDATORY; never fatal
            log.warning("dropping a reply: %s", err)

    def close(self) -> None:
        self._socket.close(0)


class ZmqClientTransport(ClientTransport):
    def __init__(self, address: str):
        self._socket = zmq.Context.instance().socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(address)

    def send(self, frames: Sequence[bytes]) -> None:
        self._socket.send_multipart([b"", *frames])

    def recv(self, timeout: float | None) -> Frames | None:
        if timeout is not None and not self._socket.poll(max(timeout, 0.0) * 1000.0):
            return None
        frames = self._socket.recv_multipart()
        return frames[1:] if frames and frames[0] == b"" else frames

    def close(self) -> None:
        self._socket.close(0)
