"""Cost of the access checks of issue 24, side by side in one run.

    .venv/bin/python bench/access.py [--n 2000] [--records 4]

- the allocation check of a resident service's open (``Grants.holds``, hcqw.service.grants): with the
  grant directory unchanged (a ``stat``), after it changed (re-reading ``--records`` records), and when
  the records' jobs are asked whether they still run a step here (a connect to each one's listening
  socket, as to its slurmstepd; done once a second, or while a job's step has not answered yet);
- a new connection's first round trip (connect, one request, its reply: what a relay pays per node
  connection), in clear and with CurveZMQ, to an echoing ROUTER over ipc (a thread of this process);
- a credential for one request to one service (``credential.seal`` + ``credential.verify``: payload,
  SHA-256 of the request, uid restriction) against a bare MUNGE credential (``identity.encode`` +
  ``identity.decode``), through a private munged started for the benchmark.

Medians and p95 in microseconds; the paths are interleaved in rounds (the machine is shared).
Must run as root (grant records are root's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket as socketlib
import statistics
import sys
import threading
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--records", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    from hcqw import identity
    from hcqw.environment import MUNGE_SOCKET
    from hcqw.service import credential
    from hcqw.service.grants import Grants
    from tests.support.munge import PrivateMunged

    tmp = Path(tempfile.mkdtemp(prefix="hcqw-bench-access-"))
    tmp.chmod(0o755)
    munged = PrivateMunged(tmp / "munge")
    os.environ[MUNGE_SOCKET] = str(munged.socket)
    try:
        grants_dir = tmp / "grants"
        grants_dir.mkdir(mode=0o755)
        spool = tmp / "spool"
        spool.mkdir(mode=0o755)
        steps = []  # each record's job runs a step here: a listening socket, as its slurmstepd's
        for job in range(args.records):
            (grants_dir / str(1000 + job)).write_text(f"{2000 + job} {1000 + job}\n")
            steps.append(socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM))
            steps[-1].bind(str(spool / f"qpu1_{1000 + job}.4294967291"))
            steps[-1].listen()
            steps[-1].settimeout(0.2)
        grants = Grants(grants_dir, spool)
        answering = threading.Event()

        def answer(stepd) -> None:  # as slurmstepd does: accept, and close on the probe's EOF
            while not answering.is_set():
                try:
                    stepd.accept()[0].close()
                except TimeoutError:
                    continue

        for stepd in steps:
            threading.Thread(target=answer, args=(stepd,), daemon=True).start()
        fields = {"workflow": "bench", "node": "n", "priority": 0, "seed": 7}
        key = "ab" * 32
        uid = os.getuid()

        def cached() -> None:
            grants.holds(2000)

        def changed() -> None:
            os.utime(grants_dir, ns=(time.time_ns(), time.time_ns()))  # as the Prolog's rename would
            grants.holds(2000)

        def asked() -> None:
            grants._alive.clear()  # as each second, or a job whose step had not answered yet
            grants.holds(2000)

        def touch_only() -> None:
            os.utime(grants_dir, ns=(time.time_ns(), time.time_ns()))

        import zmq

        from hcqw.service import servicekey

        context = zmq.Context.instance()
        curve_key, secret = servicekey.generate()
        servers = {}
        for kind in ("clear", "curve"):
            server = context.socket(zmq.ROUTER)
            server.setsockopt(zmq.LINGER, 0)
            if kind == "curve":
                server.setsockopt(zmq.CURVE_SERVER, 1)
                server.setsockopt(zmq.CURVE_SECRETKEY, secret)
            server.bind(f"ipc://{tmp}/{kind}.ipc")
            servers[kind] = server
        stop = threading.Event()

        def echo() -> None:
            poller = zmq.Poller()
            for server in servers.values():
                poller.register(server, zmq.POLLIN)
            while not stop.is_set():
                for server, _ in poller.poll(100):
                    server.send_multipart(server.recv_multipart())

        echoer = threading.Thread(target=echo, daemon=True)
        echoer.start()

        def first_reply(kind: str) -> None:
            socket = context.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            if kind == "curve":
                public, secret_ = zmq.curve_keypair()
                socket.setsockopt(zmq.CURVE_SERVERKEY, curve_key.public)
                socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
                socket.setsockopt(zmq.CURVE_SECRETKEY, secret_)
            socket.connect(f"ipc://{tmp}/{kind}.ipc")
            socket.send(b'{"v": 1, "type": "ping", "id": 1}')
            socket.recv()
            socket.close(0)

        def bare() -> None:
            identity.decode(identity.encode())

        def bound() -> None:
            credential.verify(credential.seal("open", fields, key, uid), "open", fields, key)

        paths = {"grant check, directory unchanged": cached, "grant check, directory changed": changed,
                 "grant check, steps asked": asked,
                 "(touching the directory alone)": touch_only, "bare MUNGE encode+decode": bare,
                 "bound credential seal+verify": bound, "new connection + 1 reply, clear": lambda: first_reply("clear"),
                 "new connection + 1 reply, CurveZMQ": lambda: first_reply("curve")}
        times: dict[str, list[float]] = {name: [] for name in paths}
        block = max(1, args.n // args.rounds)
        for _ in range(args.rounds):
            for name, step in paths.items():
                for _ in range(block):
                    start = time.perf_counter()
                    step()
                    times[name].append((time.perf_counter() - start) * 1e6)
        print(f"{'path':36s} {'median us':>10s} {'p95 us':>10s}")
        for name, us in times.items():
            us.sort()
            print(f"{name:36s} {statistics.median(us):10.1f} {us[int(0.95 * len(us))]:10.1f}")
        stop.set()
        answering.set()
        echoer.join()
        for server in servers.values():
            server.close(0)
    finally:
        munged.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
