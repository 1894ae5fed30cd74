"""The MPI DPM transport's connection handling, with real MPICH processes (each its own mpiexec):
several clients are served at once (two interleave their requests while a third stays connected
and silent); a client that stays silent is dropped; the service shuts down with a client still
connected, and with none (its accept thread waiting for a knock); a client that knocks and dies
before connecting does not stop the others from being served (its knock is dropped, no Accept
waits for it); a connect turn held by someone else costs a client a bounded wait and an error."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hcqw.service.transport_mpi import connect_turn, knock_dir
from tests.support.live import MPIEXEC, ROOT

pytestmark = [pytest.mark.mpi, pytest.mark.slow]
IDLE = 3.0

SERVER = """
import logging, sys, time
logging.basicConfig(level=logging.INFO)
from hcqw.service.transport_mpi import MpiServerTransport
server = MpiServerTransport(sys.argv[1], max_message=1 << 20, idle_timeout=float(sys.argv[2]))
print("open", flush=True)
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    message = server.recv(0.2)
    if message is None:
        continue
    peer, frames = message
    if frames == [b"stop"]:
        break  # the sender stays connected
    print("served", frames[0].decode(), flush=True)
    server.send(peer, [b"pong:" + frames[0]])
started = time.monotonic()
server.close()
print(f"closed in {time.monotonic() - started:.2f} s", flush=True)
"""

CLIENT = """
import sys, time
from hcqw.service.transport_mpi import MpiClientTransport
client = MpiClientTransport(sys.argv[1])
print("connected", flush=True)
for word in sys.argv[2:]:
    if word == "idle":
        time.sleep(300)
    if word == "nap":
        time.sleep(0.3)
        continue
    client.send([word.encode()])
    if word != "stop":
        print("reply", client.recv(30), flush=True)
if sys.argv[-1] == "stop":
    time.sleep(300)  # still connected while the service shuts down
client.close()
"""


TURN_CLIENT = """
import sys, time
from hcqw.errors import DeviceError
from hcqw.service.transport_mpi import MpiClientTransport
started = time.monotonic()
try:
    MpiClientTransport(sys.argv[1], turn_wait=1.0)
except DeviceError as err:
    print(err, flush=True)
print(f"waited {time.monotonic() - started:.2f} s", flush=True)
"""


def launch(code: str, *args: str, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{MPIEXEC.parent}:{os.environ['PATH']}"}
    return subprocess.Popen([str(MPIEXEC), "-launcher", "fork", "-n", "1", sys.executable, "-c", code, *args],
                            env=env, stdout=out.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_line(path: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"no {text!r} in {path} after {timeout:g} s:\n{path.read_text()}")


@pytest.fixture
def procs():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:  # each its own process group: mpiexec, its proxy and the rank
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_two_clients_interleave_while_a_third_is_connected_and_silent(tmp_path, procs):
    address = f"mpi:file:{tmp_path}/port"
    procs.append(launch(SERVER, address, "60", "120", out=tmp_path / "server.out"))
    wait_line(tmp_path / "server.out", "open", 60)
    procs.append(launch(CLIENT, address, "idle", out=tmp_path / "idle.out"))  # connects, then says nothing
    wait_line(tmp_path / "idle.out", "connected", 60)
    words = {side: [w for i in range(1, 9) for w in (f"{side}{i}", "nap")] for side in "ab"}
    for side in "ab":
        procs.append(launch(CLIENT, address, *words[side], out=tmp_path / f"{side}.out"))
    for side in "ab":
        assert wait_line(tmp_path / f"{side}.out", f"reply [b'pong:{side}8']", 60).count("reply") == 8
    served = [line.split()[1][0] for line in (tmp_path / "server.out").read_text().splitlines()
              if line.startswith("served ")]
    switches = sum(1 for before, after in zip(served, served[1:]) if before != after)
    assert sorted(served) == ["a"] * 8 + ["b"] * 8
    assert switches >= 3, served  # served side by side, not one client after the other
    assert procs[1].poll() is None and "dropping" not in (tmp_path / "server.out").read_text()  # idle one still on
    procs.append(launch(CLIENT, address, "stop", out=tmp_path / "stop.out"))
    server = wait_line(tmp_path / "server.out", "closed in", 30)  # three clients still connected
    assert procs[0].wait(30) == 0, server


def test_an_idle_client_is_dropped_and_the_service_closes_with_a_client_connected(tmp_path, procs):
    address = f"mpi:file:{tmp_path}/port"
    procs.append(launch(SERVER, address, str(IDLE), "90", out=tmp_path / "server.out"))
    wait_line(tmp_path / "server.out", "open", 60)
    procs.append(launch(CLIENT, address, "idle", out=tmp_path / "idle.out"))  # connects, then says nothing
    wait_line(tmp_path / "idle.out", "connected", 60)
    dropped = wait_line(tmp_path / "server.out", "dropping MPI client", 30 + IDLE)
    assert "silent for" in dropped
    procs.append(launch(CLIENT, address, "ping", "stop", out=tmp_path / "second.out"))
    assert "reply [b'pong:ping']" in wait_line(tmp_path / "second.out", "reply", 30)
    server = wait_line(tmp_path / "server.out", "closed in", 30)  # the second client is still connected
    assert procs[0].wait(30) == 0, server


def test_a_client_that_knocks_and_dies_before_connecting_does_not_block_the_others(tmp_path, procs):
    """Its knock is dropped at once (no client holds the connect turn, so no Connect follows): no Accept
    is left waiting, and the next client is served."""
    address = f"mpi:file:{tmp_path}/port"
    procs.append(launch(SERVER, address, "60", "120", out=tmp_path / "server.out"))
    wait_line(tmp_path / "server.out", "open", 60)
    (knock_dir(tmp_path / "port") / "4242-dead").touch()  # as a client that died right after knocking
    wait_line(tmp_path / "server.out", "no client holds the connect turn", 30)
    procs.append(launch(CLIENT, address, "ping", out=tmp_path / "client.out"))
    assert "reply [b'pong:ping']" in wait_line(tmp_path / "client.out", "reply", 30)
    procs.append(launch(CLIENT, address, "stop", out=tmp_path / "stop.out"))
    server = wait_line(tmp_path / "server.out", "closed in", 30)
    assert procs[0].wait(30) == 0, server
    assert "knocked but did not connect" not in server


def test_a_client_waits_for_a_held_turn_a_bounded_time(tmp_path, procs):
    """A process that takes the connect turn and keeps it costs the next client an error naming the turn
    after its wait, not a hang."""
    address = f"mpi:file:{tmp_path}/port"
    procs.append(launch(SERVER, address, "60", "60", out=tmp_path / "server.out"))
    wait_line(tmp_path / "server.out", "open", 60)
    turn = os.open(connect_turn(tmp_path / "port"), os.O_RDONLY)
    try:
        fcntl.flock(turn, fcntl.LOCK_EX)
        procs.append(launch(TURN_CLIENT, address, out=tmp_path / "client.out"))
        said = wait_line(tmp_path / "client.out", "waited", 60)
        assert "has held the MPI service's connect turn" in said and "for over 1 s" in said
        assert float(said.split("waited ")[1].split()[0]) < 3
    finally:
        os.close(turn)


def test_the_service_closes_with_no_client_ever_connected(tmp_path, procs):
    procs.append(launch(SERVER, f"mpi:file:{tmp_path}/port", "60", "2", out=tmp_path / "server.out"))
    server = wait_line(tmp_path / "server.out", "closed in", 60)
    assert procs[0].wait(30) == 0, server
    assert not (tmp_path / "port").exists() and not knock_dir(tmp_path / "port").exists()
