"""The attacker of the credential tests, run as another Unix user (``hcqw-bob``).

    python credential_thief.py serve CARD_FILE CAUGHT_FILE [HEX_KEY]
        a fake QPU service: a CurveZMQ ROUTER on loopback with a key pair of its own, its address card
        written to CARD_FILE (HEX_KEY: claim that public key in the card instead, as if it were a real
        service's). Every request that carries a credential is appended to CAUGHT_FILE (a JSON line:
        the header) and answered with an error; it serves until killed.
    python credential_thief.py replay ADDRESS CAUGHT_FILE [FIELD=VALUE ...]
        sends the first caught request, credential and all (with FIELD=VALUE changed), to ADDRESS;
        prints the reply's code and message as JSON.
"""

from __future__ import annotations

import json
import os
import sys

import zmq

from hcqw.service import servicekey
from hcqw.service import protocol as P


def serve(card_file: str, caught_file: str, claimed: str | None) -> None:
    key, secret = servicekey.generate()
    socket = zmq.Context.instance().socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.CURVE_SERVER, 1)
    socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
    socket.bind("tcp://127.0.0.1:*")
    shown = servicekey.ServerKey(bytes.fromhex(claimed), key.uid) if claimed else key
    endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
    with open(card_file + ".tmp", "w") as out:
        out.write(servicekey.card(endpoint, shown))
    os.replace(card_file + ".tmp", card_file)
    while True:
        peer, *frames = socket.recv_multipart()
        try:
            header = json.loads(frames[-1])
        except ValueError:
            continue
        if isinstance(header, dict) and header.get("cred"):
            with open(caught_file, "a") as out:
                out.write(json.dumps(header) + "\n")
        socket.send_multipart([peer, *P.reply_error(header.get("id"), P.E_INTERNAL, "try again later")])


def replay(address: str, caught_file: str, changes: list[str]) -> dict:
    with open(caught_file) as lines:
        header = json.loads(lines.readline())
    for change in changes:
        name, _, value = change.partition("=")
        header[name] = value
    endpoint, key = servicekey.for_address(address)  # the real service's key: he may read it as anyone may
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    public, secret = zmq.curve_keypair()
    socket.setsockopt(zmq.CURVE_SERVERKEY, key.public)
    socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
    socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
    socket.connect(endpoint)
    try:
        socket.send(json.dumps(header).encode())
        if not socket.poll(20_000):
            return {"code": "no reply"}
        reply = json.loads(socket.recv())
        return {"code": reply.get("code", "ok"), "message": reply.get("message", "")}
    finally:
        socket.close(0)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        print(json.dumps(replay(sys.argv[2], sys.argv[3], sys.argv[4:])))
