"""MPI dynamic-process-management transport (mpi4py + the PyPI mpich).

The service and each client have their own ``MPI_COMM_WORLD`` (each started with
``mpiexec -n 1``). The service opens a port and passes it through a file or publishes it
on the hydra name server; a background thread ``Accept``s clients, each becoming an
intercommunicator the service loop polls with ``Iprobe``. A message is one byte string
(``pack_frames``), so the protocol is the same as over ZeroMQ.

MPI busy-polls: the accept thread and a waiting rank burn a core. MPICH starves every
other thread's MPI progress while one thread blocks in ``Accept``, so the service holds
one MPI client connection at a time (others wait in ``Connect`` until it disconnects);
ZeroMQ is the transport for many concurrent clients. ``max_clients`` stops accepting
after that many connections. A client disconnects by sending an empty frame list;
the service then calls ``Disconnect`` on its side too. A client silent for ``idle_timeout``
seconds (connected but idle, or dead: MPI does not tell) is dropped, so it cannot keep the
others waiting in ``Connect``; a client with an open session heartbeats well within it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from itertools import count
from pathlib import Path
from typing import Hashable, Sequence

from hcqw.errors import DeviceError
from hcqw.service.transport import ClientTransport, Frames, ServerTransport, pack_frames, unpack_frames

log = logging.getLogger(__name__)

#: Seconds a connected MPI client may stay silent before the service drops it (see the module docstring).
IDLE_TIMEOUT_S = 60.0
_SPIN = 0.002  # s of pure busy-polling before backing off to short sleeps (latency vs a burnt core)
_SLEEP_MAX = 0.001


def _mpi():
    """Import mpi4py with full thread support (the accept thread runs beside the poll loop)."""
    try:
        import mpi4py
    except ImportError:  # an extra: a site may build mpi4py against its own MPI
        raise DeviceError("the MPI transport needs mpi4py and an MPI: pip install 'hcqw[mpi]' (PyPI's MPICH), "
                          "or mpi4py built against your site's MPI; or use the zmq transport") from None

    mpi4py.rc.thread_level = "multiple"
    from mpi4py import MPI

    return MPI


def parse_address(address: str) -> tuple[str, str]:
    """``mpi:file:/path`` -> ("file", path); ``mpi:name:NAME`` -> ("name", NAME)."""
    parts = address.split(":", 2)
    if len(parts) != 3 or parts[0] != "mpi" or parts[1] not in ("file", "name") or not parts[2]:
        raise DeviceError(f"bad MPI address {address!r}; use mpi:file:/path/to/port or mpi:name:SERVICE")
    return parts[1], parts[2]


class _Poller:
    """Busy-poll briefly, then sleep in small steps, so an idle rank does not burn a core forever."""

    def __init__(self, timeout: float | None):
        self.start = time.monotonic()
        self.deadline = None if timeout is None else self.start + timeout

    def wait(self) -> bool:
        """Pause a little; False once the deadline has passed."""
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            return False
        idle = now - self.start
        if idle > _SPIN:
            time.sleep(min(_SLEEP_MAX, idle / 10))
        return True


def _recv_from(MPI, comm, status) -> Frames | None:
    """One message from ``comm`` if one has arrived (``status``: a reusable ``MPI.Status``)."""
    if not comm.Iprobe(0, MPI.ANY_TAG, status):
        return None
    buffer = bytearray(status.Get_count(MPI.BYTE))
    comm.Recv([buffer, MPI.BYTE], 0, status.Get_tag())
    return unpack_frames(buffer)


class MpiServerTransport(ServerTransport):
    def __init__(self, address: str, max_message: int, max_clients: int | None = None,
                 idle_timeout: float | None = IDLE_TIMEOUT_S):
        self.MPI = MPI = _mpi()
        self._idle_timeout = idle_timeout
        self._last_heard: dict[int, float] = {}
        self._kind, self._where = parse_address(address)
        self.address = address
        self._max_message = max_message
        self._max_clients = max_clients
        self._port = MPI.Open_port()
        if self._kind == "file":
            path = Path(self._where)
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(path.name + f".{os.getpid()}.tmp")
            temp.write_text(self._port)
            os.replace(temp, path)  # a client never reads a half-written port
        else:
            MPI.Publish_name(self._where, self._port)
        log.info("MPI port open at %s (%s)", self._port, address)
        self._comms: dict[int, object] = {}
        self._polled: tuple = ()  # (peer, comm) pairs: a snapshot the poll loop reads without the lock
        self._status = MPI.Status()
        self._ids = count(1)
        self._lock = threading.Lock()
        self._stopping = False
        self._accepted = 0
        self._in_accept = False
        self._idle = threading.Event()
        self._idle.set()
        self._acceptor = threading.Thread(target=self._accept_loop, name="mpi-accept", daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        MPI = self.MPI
        while self._max_clients is None or self._accepted < self._max_clients:
            # One client at a time: with MPICH a thread blocked in Accept starves every other
            # thread's MPI progress (measured: the loop's Iprobe never sees a message), so we
            # accept only while no client is connected. Further clients wait in Connect.
            self._idle.wait()
            with self._lock:
                if self._stopping:
                    return
                self._in_accept = True
            try:
                comm = MPI.COMM_SELF.Accept(self._port)
            except Exception:  # noqa: BLE001 - a broken port must not leave clients hanging in Connect
                log.exception("MPI Accept failed; aborting so no peer hangs")
                MPI.COMM_WORLD.Abort(1)
                return
            with self._lock:
                self._in_accept = False
                if self._stopping:  # woken by our own close()
                    comm.Disconnect()
                    return
                peer = next(self._ids)
                self._comms[peer] = comm
                self._last_heard[peer] = time.monotonic()
                self._polled = tuple(self._comms.items())
                self._accepted += 1
                self._idle.clear()
            log.debug("MPI client connected")

    def recv(self, timeout: float) -> tuple[Hashable, Frames] | None:
        poller = _Poller(timeout)
        MPI, status = self.MPI, self._status
        self._drop_idle()
        while True:
            for peer, comm in self._polled:
                try:
                    frames = _recv_from(MPI, comm, status)
                except ValueError as err:
                    log.warning("MPI client %s sent an unparseable message: %s", peer, err)
                    return peer, [b"\x00malformed transport frame"]  # becomes a bad_message error reply
                except MPI.Exception as err:
                    log.warning("MPI client %s failed (%s); dropping it", peer, err)
                    self._drop(peer, disconnect=False)
                    continue
                if frames is None:
                    continue
                self._last_heard[peer] = time.monotonic()
                if not frames:  # the client's disconnect notice
                    self._drop(peer, disconnect=True)
                    continue
                return peer, frames
            if not poller.wait():
                return None

    def send(self, peer: Hashable, frames: Sequence[bytes]) -> None:
        with self._lock:
            comm = self._comms.get(peer)  # type: ignore[arg-type]
        if comm is None:
            return
        data = pack_frames(frames)
        try:
            comm.Send([data, self.MPI.BYTE], dest=0, tag=0)
        except self.MPI.Exception as err:
            log.warning("dropping MPI client %s after a failed send: %s", peer, err)
            self._drop(peer, disconnect=False)

    def _drop_idle(self) -> None:
        if self._idle_timeout is None:
            return
        now = time.monotonic()
        for peer, _ in self._polled:
            silent = now - self._last_heard.get(peer, now)
            if silent > self._idle_timeout:
                log.warning("dropping MPI client %s: silent for %.0f s (clients connect one at a time)", peer, silent)
                self._drop(peer, disconnect=False)

    def _drop(self, peer: Hashable, disconnect: bool) -> None:
        with self._lock:
            self._last_heard.pop(peer, None)  # type: ignore[arg-type]
            comm = self._comms.pop(peer, None)  # type: ignore[arg-type]
            self._polled = tuple(self._comms.items())
            if not self._comms:
                self._idle.set()
        if comm is None:
            return
        try:
            comm.Disconnect() if disconnect else comm.Free()
        except self.MPI.Exception as err:
            log.warning("MPI client %s: %s while disconnecting", peer, err)

    def close(self) -> None:
        MPI = self.MPI
        for peer in list(self._comms):
            self._drop(peer, disconnect=False)
        with self._lock:
            self._stopping = True
            in_accept = self._in_accept
        self._idle.set()
        if in_accept:
            self._wake_acceptor()
        self._acceptor.join(5)
        if self._kind == "file":
            Path(self._where).unlink(missing_ok=True)
        else:
            try:
                MPI.Unpublish_name(self._where, self._port)
            except MPI.Exception as err:
                log.warning("Unpublish_name(%s): %s", self._where, err)
        MPI.Close_port(self._port)


    def _wake_acceptor(self) -> None:
        """End the accept thread's ``Accept``, which has no timeout. Connecting from this process
        hangs (MPICH starves our ``Connect`` while that thread blocks in ``Accept``), and exiting
        with the thread inside it aborts in MPI_Finalize; so a short-lived process of its own
        connects once (about 0.3 s), the thread returns, sees the stop and disconnects it."""
        mpiexec = Path(sys.executable).with_name("mpiexec")
        # Our own launch's PMI variables would make the helper's mpiexec think it runs inside ours.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "MPIR_"))}
        try:
            subprocess.run([str(mpiexec), "-launcher", "fork", "-n", "1", sys.executable, "-c", _WAKE, self._port],
                           env=env, capture_output=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError) as err:
            log.warning("could not wake the MPI accept thread: %s", err)


#: The helper of ``_wake_acceptor``: connect to the port given as argument, then disconnect.
_WAKE = "import sys\nfrom mpi4py import MPI\nMPI.COMM_SELF.Connect(sys.argv[1]).Disconnect()\n"


class MpiClientTransport(ClientTransport):
    def __init__(self, address: str, wait: float = 30.0):
        self.MPI = MPI = _mpi()
        kind, where = parse_address(address)
        if kind == "file":
            port = _read_port_file(Path(where), wait)
        else:
            port = MPI.Lookup_name(where)
        self._comm = MPI.COMM_SELF.Connect(port)
        self._status = MPI.Status()

    def send(self, frames: Sequence[bytes]) -> None:
        self._comm.Send([pack_frames(frames), self.MPI.BYTE], dest=0, tag=0)

    def recv(self, timeout: float | None) -> Frames | None:
        poller = _Poller(timeout)
        while True:
            frames = _recv_from(self.MPI, self._comm, self._status)
            if frames is not None:
                return frames
            if not poller.wait():
                return None

    def close(self) -> None:
        if self._comm is None:
            return
        comm, self._comm = self._comm, None
        try:
            comm.Send([pack_frames([]), self.MPI.BYTE], dest=0, tag=0)
            comm.Disconnect()
        except self.MPI.Exception as err:
            log.warning("MPI disconnect: %s", err)


def _read_port_file(path: Path, wait: float) -> str:
    deadline = time.monotonic() + wait
    while True:
        try:
            port = path.read_text().strip()
            if port:
                return port
        except FileNotFoundError:
            pass
        if time.monotonic() >= deadline:
            raise DeviceError(f"no MPI port file at {path} after {wait:.0f} s; is the service running "
                              "(hcqw device serve --address mpi:file:...)?")
        time.sleep(0.05)
