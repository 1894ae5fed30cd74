"""The MPI DPM transport's connection handling, with real MPICH processes (each its own mpiexec):
a client that connects and goes silent is dropped, so the next client is served; the service
shuts down with a client still connected, and with none (its accept thread blocked in Accept)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.live import MPIEXEC, ROOT

pytestmark = [pytest.mark.mpi, pytest.mark.slow]
IDLE = 3.0

SERVER = """
import sys, time
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
    client.send([word.encode()])
    if word != "stop":
        print("reply", client.recv(30), flush=True)
if sys.argv[-1] == "stop":
    time.sleep(300)  # still connected while the service shuts down
client.close()
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


def test_an_idle_client_is_dropped_and_the_service_closes_with_a_client_connected(tmp_path, procs):
    address = f"mpi:file:{tmp_path}/port"
    procs.append(launch(SERVER, address, str(IDLE), "90", out=tmp_path / "server.out"))
    wait_line(tmp_path / "server.out", "open", 60)
    procs.append(launch(CLIENT, address, "idle", out=tmp_path / "idle.out"))  # connects, then says nothing
    wait_line(tmp_path / "idle.out", "connected", 60)
    procs.append(launch(CLIENT, address, "ping", "stop", out=tmp_path / "second.out"))
    second = wait_line(tmp_path / "second.out", "reply", 30 + IDLE)  # served once the idle one is dropped
    assert "reply [b'pong:ping']" in second
    server = wait_line(tmp_path / "server.out", "closed in", 30)  # the second client is still connected
    assert procs[0].wait(30) == 0, server
    assert "dropping MPI client" in server and "silent for" in server


def test_the_service_closes_with_no_client_ever_connected(tmp_path, procs):
    """Its accept thread is blocked in Accept, which has no timeout."""
    procs.append(launch(SERVER, f"mpi:file:{tmp_path}/port", "60", "2", out=tmp_path / "server.out"))
    server = wait_line(tmp_path / "server.out", "closed in", 60)
    assert procs[0].wait(30) == 0, server
    assert not (tmp_path / "port").exists()
