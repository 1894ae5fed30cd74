"""A hand-made ZeroMQ client for attack tests: a DEALER that speaks CurveZMQ with a service's published
key (as any client that learned the key may), so hand-made messages reach the service's own checks."""

from __future__ import annotations

import zmq

from hcqw.service import servicekey


def dealer(address: str) -> zmq.Socket:
    endpoint, key = servicekey.for_address(address)
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    if key is not None:
        public, secret = servicekey.read_client_key(key.client) if key.client else zmq.curve_keypair()
        socket.setsockopt(zmq.CURVE_SERVERKEY, key.public)
        socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
        socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
    socket.connect(endpoint)
    return socket
