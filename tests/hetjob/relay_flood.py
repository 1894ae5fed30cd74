"""A flood at someone else's job gateway, run as another Unix user (``hcqw-bob``) who learned its address
(and its server key: both are in the card). He cannot read the job's client key, so he tries what a
stranger can: CurveZMQ handshakes with keys of his own, each followed by junk, a 4 MiB frame and an open
with his own valid credential; and raw TCP connections that write junk where ZeroMQ expects its greeting.
For SECONDS; prints what it attempted as JSON.

    python relay_flood.py ADDRESS SECONDS
"""

from __future__ import annotations

import json
import socket as sockets
import sys
import time

import zmq

from hcqw.service import credential, servicekey

BATCH = 16


def main(address: str, seconds: float) -> dict:
    endpoint, key = servicekey.for_address(address)
    host, _, port = endpoint[len("tcp://"):].rpartition(":")
    fields = {"workflow": "bob", "node": "flood"}
    frames = [b"\xff junk", b'{"v": 1, "type": "open", "id": 1, "pad": "' + b"x" * (4 << 20) + b'"}',
              json.dumps({"v": 1, "type": "open", "id": 4, **fields,
                          "cred": credential.seal("open", fields, key.ident, key.uid)}).encode()]
    handshakes = raw = 0
    deadline = time.monotonic() + seconds
    context = zmq.Context.instance()
    while time.monotonic() < deadline:
        batch = []
        for _ in range(BATCH):
            socket = context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            public, secret = zmq.curve_keypair()
            socket.setsockopt(zmq.CURVE_SERVERKEY, key.public)
            socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
            socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
            socket.connect(endpoint)
            for frame in frames:
                try:
                    socket.send(frame, zmq.NOBLOCK)
                except zmq.Again:
                    pass
            batch.append(socket)
            handshakes += 1
        with sockets.create_connection((host.strip("[]"), int(port)), timeout=2) as plain:
            plain.sendall(b"\xff" + b"\x00" * 8 + b"\x7f" + b"junk" * 16384)  # a bogus ZMTP greeting, then junk
            raw += 1
        time.sleep(0.02)
        for socket in batch:
            socket.close(0)
    return {"handshakes": handshakes, "raw_connections": raw, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], float(sys.argv[2]))))
