"""Transport contract and address parsing, shared by the ZeroMQ and MPI transports.

A transport moves opaque multi-frame messages; it knows nothing of the protocol. The
service side receives ``(peer, frames)`` from many clients and replies to a peer; the
client side sends a request and receives replies. Addresses:

- ``tcp://127.0.0.1:5555``, ``ipc:///path/sock``: ZeroMQ (ROUTER service, DEALER clients).
- ``mpi:file:/path/port``: MPI DPM, port string passed through a file.
- ``mpi:name:SERVICE``: MPI DPM via the hydra name server (launch both sides with
  ``mpiexec -nameserver host:port``).
"""

from __future__ import annotations

import abc
import ipaddress
import os
import secrets
import socket
import struct
from pathlib import Path
from typing import Hashable, Sequence

from hcqw import environment
from hcqw.errors import DeviceError
from hcqw.paths import state_dir
from hcqw.trust import open_nofollow

Frames = list[bytes]


class ServerTransport(abc.ABC):
    address: str  # the address clients connect to (with the actual port once bound)

    @abc.abstractmethod
    def recv(self, timeout: float) -> tuple[Hashable, Frames] | None:
        """Next message from any client, waiting up to ``timeout`` seconds; ``None`` if none came."""

    @abc.abstractmethod
    def send(self, peer: Hashable, frames: Sequence[bytes]) -> None:
        """Send to ``peer``; a vanished peer is dropped silently (the service must not fail on it)."""

    @abc.abstractmethod
    def close(self) -> None: ...


class ClientTransport(abc.ABC):
    @abc.abstractmethod
    def send(self, frames: Sequence[bytes]) -> None: ...

    def disconnected_for(self) -> float:
        """Seconds the link to the service has been down (0 while up, or where the transport cannot tell)."""
        return 0.0

    @abc.abstractmethod
    def recv(self, timeout: float | None) -> Frames | None:
        """Next reply, waiting up to ``timeout`` seconds (``None``: forever); ``None`` on timeout."""

    @abc.abstractmethod
    def close(self) -> None: ...


def default_address() -> str:
    """``$HCQW_SERVICE_ADDRESS`` or an ipc socket in a private (0700) directory under the state dir."""
    explicit = os.environ.get(environment.SERVICE_ADDRESS)
    if explicit:
        return explicit
    return f"ipc://{state_dir() / 'service' / 'qpu.ipc'}"


def is_mpi(address: str) -> bool:
    return address.startswith("mpi:")


def check_bind_address(address: str, authenticated: bool = False) -> None:
    """An unauthenticated service binds only loopback (or ipc); one that authenticates whoever
    connects (MUNGE) may bind the cluster address it needs."""
    if authenticated or not address.startswith("tcp://"):
        return
    host = address[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            loopback = ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
        except OSError:
            loopback = False
    if not loopback:
        raise DeviceError(f"refusing to bind {address} without authentication: an unauthenticated service binds "
                          "only loopback or ipc; use --auth munge to bind another interface")


def private_ipc_dir(address: str) -> None:
    """Create the directory of an ipc endpoint readable by this user only."""
    if address.startswith("ipc://"):
        directory = Path(address[len("ipc://"):]).parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)


def shared_ipc_dir(address: str) -> None:
    """Create the directory of an ipc endpoint every user may reach (an authenticated service's):
    searchable by all, listable and writable by this user only."""
    if address.startswith("ipc://"):
        directory = Path(address[len("ipc://"):]).parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o711)
        info = directory.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o111 != 0o111:
            directory.chmod(info.st_mode | 0o111)


def publish_address(path: Path | str, address: str) -> None:
    """Write ``address`` where a waiting client polls for it, all at once (temp file + rename); the
    temp file is new (``O_EXCL``, no link followed), so nothing planted there is written through."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = open_nofollow(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, address.encode())
    finally:
        os.close(fd)
    os.replace(temp, path)


def make_server_transport(address: str, max_message: int, authenticated: bool = False, **options) -> ServerTransport:
    """The transport for ``address``. ``authenticated``: the service authenticates whoever connects
    (MUNGE), so it may bind beyond loopback and its ipc socket is made connectable by every user;
    over ZeroMQ it then proves itself to them with a CurveZMQ key (``hcqw.service.servicekey``)."""
    if is_mpi(address):
        from hcqw.service.transport_mpi import MpiServerTransport

        return MpiServerTransport(address, max_message=max_message, **options)
    check_bind_address(address, authenticated)
    from hcqw.service.transport_zmq import ZmqServerTransport

    return ZmqServerTransport(address, max_message=max_message, shared=authenticated, **options)


def make_client_transport(address: str, liveness_timeout: float | None = None) -> ClientTransport:
    """A client link to ``address``. ``liveness_timeout`` (ZeroMQ): probe the link below the protocol,
    so ``disconnected_for`` also sees a peer that went silent (host down, network cut). A service that
    published a key (``hcqw.service.servicekey``) is talked to with CurveZMQ and that key only."""
    if is_mpi(address):
        from hcqw.service.transport_mpi import MpiClientTransport

        return MpiClientTransport(address)
    from hcqw.service import servicekey
    from hcqw.service.transport_zmq import ZmqClientTransport

    endpoint, key = servicekey.for_address(address)
    return ZmqClientTransport(endpoint, liveness_timeout, key)


# -- framing for transports that carry one byte string per message (MPI) ------------------

_COUNT = struct.Struct("<I")
_ONE = struct.Struct("<II")  # the common case, a lone header frame: count 1 and its length


def pack_frames(frames: Sequence[bytes]) -> bytes:
    """``count, len_0..len_n-1, data...`` little-endian u32 lengths; an empty list is valid."""
    if len(frames) == 1:
        return _ONE.pack(1, len(frames[0])) + frames[0]
    return b"".join([struct.pack(f"<I{len(frames)}I", len(frames), *map(len, frames)), *frames])


def unpack_frames(data: bytes | bytearray | memoryview) -> Frames:
    """Inverse of ``pack_frames``; ``ValueError`` on a truncated or inconsistent message."""
    view = memoryview(data)
    if len(view) < 4:
        raise ValueError("frame table truncated")
    (count,) = _COUNT.unpack_from(view, 0)
    table_end = 4 + 4 * count
    if count > 1_000_000 or len(view) < table_end:
        raise ValueError(f"frame table of {count} frames does not fit a {len(view)}-byte message")
    lengths = _COUNT.unpack_from(view, 4) if count == 1 else struct.unpack_from(f"<{count}I", view, 4)
    if table_end + sum(lengths) != len(view):
        raise ValueError("frame lengths do not add up to the message size")
    frames, offset = [], table_end
    for length in lengths:
        frames.append(bytes(view[offset:offset + length]))
        offset += length
    return frames
