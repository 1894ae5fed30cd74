"""The MPI shared service's connect turn and knocks belong to its clients (issue 24, finding 6), with
two real users: ``hcqw-alice`` runs a service over an MPI port file (its clients group: her own);
``hcqw-bob`` can neither take the connect turn (which would freeze every new client) nor knock
(each knock used to force a 10 s Accept): both are refused at once with an error naming the file,
and alice's own client is served."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from hcqw.lab import users
from hcqw.lab.users import USERS
from tests.service.test_transport_mpi import CLIENT, SERVER, wait_line

pytestmark = [pytest.mark.slurm, pytest.mark.mpi, pytest.mark.slow]
ALICE, BOB = USERS

ATTACK = """
import os, sys, uuid
from pathlib import Path
from hcqw.errors import DeviceError
from hcqw.service.transport_mpi import MpiClientTransport, knock_dir
port = Path(sys.argv[1])
try:
    os.open(knock_dir(port) / f"{os.getpid()}-{uuid.uuid4().hex}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    print("knocked", flush=True)
except PermissionError as err:
    print("knock refused:", err.strerror, flush=True)
try:
    MpiClientTransport("mpi:file:" + sys.argv[1], turn_wait=1.0)
    print("connected", flush=True)
except DeviceError as err:
    print("connect refused:", err, flush=True)
"""


def launch_as(lab, user: str, code: str, *args: str, out: Path) -> subprocess.Popen:
    bin_dir = lab.site.bin
    argv = [str(bin_dir / "mpiexec"), "-launcher", "fork", "-n", "1", str(bin_dir / "python"), "-c", code, *args]
    return subprocess.Popen(users.as_user(user, argv), env=lab.user_env(user), stdout=out.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True, cwd="/")


def test_bob_can_neither_take_the_turn_nor_knock_and_alice_is_served(slurm_lab, tmp_path):
    tmp_path.chmod(0o755)
    where = Path(f"/tmp/hcqw-mpi-{uuid.uuid4().hex[:8]}")
    made = slurm_lab.exec(ALICE, ["mkdir", "-m", "755", str(where)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    port = where / "port"
    procs = []
    try:
        procs.append(launch_as(slurm_lab, ALICE, SERVER, f"mpi:file:{port}", "60", "120", out=tmp_path / "server.out"))
        wait_line(tmp_path / "server.out", "open", 60)
        procs.append(launch_as(slurm_lab, BOB, ATTACK, str(port), out=tmp_path / "bob.out"))
        bob = wait_line(tmp_path / "bob.out", "connect refused", 60)
        assert "knock refused: Permission denied" in bob and "knocked" not in bob
        assert (f"you may not connect to the MPI service at {port}: its connect turn {port}.connect is for the "
                "members of the service's clients group only") in bob
        procs.append(launch_as(slurm_lab, ALICE, CLIENT, f"mpi:file:{port}", "ping", "stop",
                               out=tmp_path / "alice.out"))
        assert "reply [b'pong:ping']" in wait_line(tmp_path / "alice.out", "reply", 60)
        server = wait_line(tmp_path / "server.out", "closed in", 30)
        assert "knocked but did not connect" not in server
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        slurm_lab.exec(ALICE, ["rm", "-rf", str(where)], timeout=30)
