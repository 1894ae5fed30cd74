"""MPI dynamic-process-management transport (mpi4py + the PyPI mpich).

The service and each client have their own ``MPI_COMM_WORLD`` (each started with
``mpiexec -n 1``). The service opens a port and passes it through a file or publishes it
on the hydra name server; a background thread ``Accept``s clients, each becoming an
intercommunicator the service loop polls with ``Iprobe``. A message is one byte string
(``pack_frames``), so the protocol is the same as over ZeroMQ.

MPI busy-polls: a waiting rank burns a core. MPICH starves every other thread's MPI progress
while one thread blocks in ``Accept`` (measured: the loop's Iprobe never sees a message), and
``Accept`` has no timeout. So the service calls ``Accept`` only when a client is about to
``Connect``: with a port file (``mpi:file:``) a client first *knocks*, creating a file in the
knock directory next to it (``<port file>.knock``, mode 1730: the service's clients may knock, only
the service lists), and the accept thread accepts once per knock -- the ``Accept`` meets a
``Connect`` already under way and returns at once, so many clients are connected and served at the
same time. A knock whose client never connects (it died in between) is ended after
``ACCEPT_BOUND_S`` by a helper that connects in its place. With the hydra name server (``mpi:name:``) there is nowhere to knock:
the service then holds one client at a time (others wait in ``Connect`` until it disconnects).
Clients connect one at a time, in turn on an ``flock`` of ``<port file>.connect`` (which the kernel
drops with a dead client): with two ``Connect`` calls under way at once the PyPI MPICH service
segfaulted in about one run in four of the two-client test.

Who may connect: the service's clients, the members of its ``clients_group`` (default: the
service's own group). The turn file is 0640 and the knock directory 1730, both of that group, so
no one else can take the turn or knock. A client waits for the turn at most ``TURN_WAIT_S`` and
then fails naming the file, so a holder that never lets go costs others an error, not a hang.
Knocks are bounded: the service accepts for a knock only while some client holds the turn (a
knock with nobody connecting is dropped at once, without an ``Accept``), and a user whose knocks
left ``MAX_STRAYS`` Accepts without a Connect within ``STRAY_WINDOW_S`` is ignored for the rest
of that window.
``max_clients`` stops accepting after that many connections. A client disconnects by sending an
empty frame list; the service then calls ``Disconnect`` on its side too. A client silent for
``idle_timeout`` seconds (connected but idle, or dead: MPI does not tell) is dropped; a client with
an open session heartbeats well within it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Hashable, Iterator, Sequence

from hcqw.errors import DeviceError
from hcqw.identity import user_name
from hcqw.service.transport import ClientTransport, Frames, ServerTransport, pack_frames, unpack_frames
from hcqw.trust import open_nofollow

log = logging.getLogger(__name__)

#: Seconds a connected MPI client may stay silent before the service drops it (see the module docstring).
IDLE_TIMEOUT_S = 60.0
#: Seconds an ``Accept`` for a knock may wait for its client's ``Connect`` (see the module docstring).
ACCEPT_BOUND_S = 10.0
#: Seconds a client waits for its turn to connect before it fails (see the module docstring).
TURN_WAIT_S = 60.0
#: Knocks without a Connect a user may cause within ``STRAY_WINDOW_S`` before their knocks are ignored.
MAX_STRAYS = 3
STRAY_WINDOW_S = 60.0
_KNOCK_POLL_S = 0.01
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
                 idle_timeout: float | None = IDLE_TIMEOUT_S, clients_group: int | None = None):
        self.MPI = MPI = _mpi()
        self._idle_timeout = idle_timeout
        self._last_heard: dict[int, float] = {}
        self._kind, self._where = parse_address(address)
        self.address = address
        self._max_message = max_message
        self._max_clients = max_clients
        self._port = MPI.Open_port()
        self._knocks: Path | None = None
        self._turn_fd: int | None = None
        self._strays: dict[int, list[float]] = {}  # uid -> when their knocks left an Accept without a Connect
        self._knocker: int | None = None  # uid of the knock being accepted
        if self._kind == "file":
            path = Path(self._where)
            path.parent.mkdir(parents=True, exist_ok=True)
            group = os.getegid() if clients_group is None else clients_group
            self._knocks = knock_dir(path)
            shutil.rmtree(self._knocks, ignore_errors=True)  # a dead service's knocks are not clients
            self._knocks.mkdir(mode=0o700)
            try:
                os.chown(self._knocks, -1, group)
            except PermissionError:
                raise DeviceError(f"cannot give the MPI service's knock directory to group {group}: the service's "
                                  "account must be a member of --mpi-clients-group") from None
            self._knocks.chmod(0o1730)  # sticky, the clients' group may knock, only the service lists
            turn = connect_turn(path)
            turn.unlink(missing_ok=True)  # a fresh file: nobody holds an old one's lock open
            self._turn_fd = open_nofollow(turn, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.fchown(self._turn_fd, -1, group)
            os.fchmod(self._turn_fd, 0o640)  # the clients' group locks it read-only; no one else can
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
        self._stray_ended = False
        self._acceptor = threading.Thread(target=self._accept_loop, name="mpi-accept", daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        MPI = self.MPI
        while self._max_clients is None or self._accepted < self._max_clients:
            # A thread blocked in Accept starves every other thread's MPI progress (see the module
            # docstring): accept only for a knock (a Connect under way), or, with nowhere to knock,
            # only while no client is connected.
            if not (self._await_knock() if self._knocks else self._idle.wait()):
                return
            with self._lock:
                if self._stopping:
                    return
                self._in_accept = True
            stray = threading.Timer(ACCEPT_BOUND_S, self._end_stray_accept) if self._knocks else None
            if stray:
                stray.start()
            try:
                comm = MPI.COMM_SELF.Accept(self._port)
            except Exception:  # noqa: BLE001 - a broken port must not leave clients hanging in Connect
                log.exception("MPI Accept failed; aborting so no peer hangs")
                MPI.COMM_WORLD.Abort(1)
                return
            finally:
                if stray:
                    stray.cancel()
            with self._lock:
                self._in_accept = False
                ended = self._stray_ended
                self._stray_ended = False
                if self._stopping or ended:  # woken by our own close(), or in place of a knock's dead client
                    comm.Disconnect()
                    if self._stopping:
                        return
                    continue
                peer = next(self._ids)
                self._comms[peer] = comm
                self._last_heard[peer] = time.monotonic()
                self._polled = tuple(self._comms.items())
                self._accepted += 1
                self._idle.clear()
            log.debug("MPI client connected")

    def _await_knock(self) -> bool:
        """Wait for a client's knock that may lead to a Connect and take it; False once the service stops."""
        assert self._knocks is not None
        while not self._stopping:
            try:
                knock = next(self._knocks.iterdir(), None)
            except FileNotFoundError:
                return False
            if knock is None:
                time.sleep(_KNOCK_POLL_S)
                continue
            try:
                knocker = knock.lstat().st_uid
            except FileNotFoundError:
                continue
            knock.unlink(missing_ok=True)
            if self._ignored(knocker):
                continue
            if not self._turn_held():
                log.info("ignored a knock by %s: no client holds the connect turn, so no Connect follows",
                         user_name(knocker))
                continue
            self._knocker = knocker
            return True
        return False

    def _turn_held(self) -> bool:
        """True if a client holds the connect turn (its exclusive lock keeps our shared one out)."""
        if self._turn_fd is None:
            return True
        try:
            fcntl.flock(self._turn_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._turn_fd, fcntl.LOCK_UN)
        return False

    def _ignored(self, uid: int) -> bool:
        """True while ``uid``'s knocks left ``MAX_STRAYS`` Accepts without a Connect in the last window."""
        now = time.monotonic()
        recent = [t for t in self._strays.get(uid, ()) if now - t < STRAY_WINDOW_S]
        self._strays[uid] = recent
        return len(recent) >= MAX_STRAYS

    def _end_stray_accept(self) -> None:
        """An Accept waited ``ACCEPT_BOUND_S`` for a knock's client: it died before connecting; end it."""
        with self._lock:
            if not self._in_accept or self._stopping:
                return
            self._stray_ended = True
        knocker = self._knocker
        if knocker is not None:
            self._strays.setdefault(knocker, []).append(time.monotonic())
        log.warning("a client (%s) knocked but did not connect within %g s; ending its Accept%s",
                    user_name(knocker) if knocker is not None else "?", ACCEPT_BOUND_S,
                    f"; ignoring its knocks for {STRAY_WINDOW_S:g} s" if knocker is not None and self._ignored(knocker)
                    else "")
        self._wake_acceptor()

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
                log.warning("dropping MPI client %s: silent for %.0f s", peer, silent)
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
            in_accept = self._in_accept and not self._stray_ended  # a stray Accept's helper is on its way
        self._idle.set()
        if in_accept:
            self._wake_acceptor()
        self._acceptor.join(5)
        if self._kind == "file":
            Path(self._where).unlink(missing_ok=True)
            shutil.rmtree(knock_dir(Path(self._where)), ignore_errors=True)
            connect_turn(Path(self._where)).unlink(missing_ok=True)
            if self._turn_fd is not None:
                os.close(self._turn_fd)
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
            subprocess.run([str(mpiexec), "-launcher", "fork", "-n", "1", sys.executable, "-P", "-c", _WAKE, self._port],
                           env=env, capture_output=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError) as err:
            log.warning("could not wake the MPI accept thread: %s", err)


#: The helper of ``_wake_acceptor``: connect to the port given as argument, then disconnect.
_WAKE = "import sys\nfrom mpi4py import MPI\nMPI.COMM_SELF.Connect(sys.argv[1]).Disconnect()\n"


class MpiClientTransport(ClientTransport):
    def __init__(self, address: str, wait: float = 30.0, turn_wait: float = TURN_WAIT_S):
        self.MPI = MPI = _mpi()
        kind, where = parse_address(address)
        if kind == "file":
            port = _read_port_file(Path(where), wait)
            with _connect_turn(Path(where), turn_wait):
                _knock(Path(where))
                self._comm = MPI.COMM_SELF.Connect(port)
        else:
            self._comm = MPI.COMM_SELF.Connect(MPI.Lookup_name(where))
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


def knock_dir(port_file: Path) -> Path:
    """Where clients of the service with this port file knock before they connect."""
    return port_file.with_name(port_file.name + ".knock")


def connect_turn(port_file: Path) -> Path:
    """The file whose ``flock`` makes the clients of the service with this port file connect in turn."""
    return port_file.with_name(port_file.name + ".connect")


@contextmanager
def _connect_turn(port_file: Path, wait: float = TURN_WAIT_S) -> Iterator[None]:
    """Hold the turn to connect, waiting at most ``wait`` s for it (a service without the turn file lets
    clients connect at will)."""
    turn = connect_turn(port_file)
    try:
        fd = open_nofollow(turn, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    except PermissionError:
        raise DeviceError(f"you may not connect to the MPI service at {port_file}: its connect turn {turn} is for the "
                          "members of the service's clients group only; ask its operator to add you") from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DeviceError(f"another process has held the MPI service's connect turn {turn} for over "
                                      f"{wait:g} s (see `fuser {turn}`); retry later or ask the operator") from None
                time.sleep(0.01)
        yield
    finally:
        os.close(fd)


def _knock(port_file: Path) -> None:
    """Tell the service a ``Connect`` follows (it accepts only then); a service without a knock
    directory accepts without one."""
    knocks = knock_dir(port_file)
    if not knocks.is_dir():
        return
    try:
        fd = os.open(knocks / f"{os.getpid()}-{uuid.uuid4().hex}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as err:
        raise DeviceError(f"cannot knock at the MPI service's {knocks} ({err.strerror}): it accepts a client only "
                          "after its knock, and only its clients group may knock (mode 1730)") from None
    os.close(fd)


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
