"""Who a client talks to: a service's CurveZMQ key and account, published next to its address.

A service that authenticates its clients with MUNGE proves itself to them in turn. It makes a
CurveZMQ key pair when it starts (the secret never leaves its memory) and publishes the public
half with its account's uid:

- in its address, as a *card* ``ENDPOINT#curve=<64 hex>&uid=<n>``: what it writes to
  ``--address-file`` (a job's gateway writes it into the job's private directory);
- next to an ipc socket, in ``<socket>.key`` (``<64 hex> <uid>``), for clients configured with
  the socket's path only (the site's ``ipc:///run/hcqw/qpu.ipc``).

A client then runs CurveZMQ with that key (a server without the secret cannot complete the
handshake: ZeroMQ drops the connection, nothing is sent in clear) and seals its MUNGE credential
for that key and uid (``hcqw.service.credential``). Where a published file is read, its owner is
the service's account: the file must be a regular file (not a link) that nobody else may write, in
a directory nobody else may write, and -- next to a socket -- owned by the socket's owner.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from hcqw.errors import DeviceError

KEY_SUFFIX = ".key"
_CARD = "#curve="


@dataclass(frozen=True)
class ServerKey:
    public: bytes  # 32 raw bytes: CurveZMQ's server key
    uid: int  # the service's account: credentials for it are restricted to this uid
    client: str | None = None  # a file with the only client key the server admits (a job's gateway)

    @property
    def ident(self) -> str:
        """The service's identity as a credential names it."""
        return self.public.hex()


def card(endpoint: str, key: ServerKey) -> str:
    client = f"&client={key.client}" if key.client else ""
    return f"{endpoint}{_CARD}{key.public.hex()}&uid={key.uid}{client}"


def split(address: str) -> tuple[str, ServerKey | None]:
    """``(endpoint, key)`` of an address that may carry a card; ``DeviceError`` on a malformed card."""
    endpoint, sep, rest = address.rpartition(_CARD)
    if not sep:
        return address, None
    hexkey, _, uid = rest.partition("&uid=")
    uid, _, client = uid.partition("&client=")
    try:
        public = bytes.fromhex(hexkey)
        owner = int(uid)
    except ValueError:
        raise DeviceError(f"malformed service address {address[:200]!r}: expected ENDPOINT#curve=<64 hex>&uid=<n>") from None
    if len(public) != 32 or owner < 0:
        raise DeviceError(f"malformed service address {address[:200]!r}: the key must be 32 bytes (64 hex digits)")
    return endpoint, ServerKey(public, owner, client or None)


def key_file(endpoint: str) -> Path | None:
    """Where an ipc service publishes its key; ``None`` for other transports."""
    if not endpoint.startswith("ipc://"):
        return None
    return Path(endpoint[len("ipc://"):] + KEY_SUFFIX)


def publish(path: Path, key: ServerKey) -> None:
    """Write ``key`` to ``path`` all at once, readable by all, never through a link."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, f"{key.public.hex()} {key.uid}\n".encode())
    finally:
        os.close(fd)
    os.replace(temp, path)


def _writable_by_others(info: os.stat_result, owner: int) -> bool:
    if info.st_uid not in (0, owner):
        return True
    return bool(info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def read_published(path: Path, socket: Path | None = None) -> ServerKey:
    """The key a service published at ``path``, checked (see the module docstring); ``DeviceError`` why not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise DeviceError(f"cannot read the service key {path}: {err.strerror} (a link is refused)") from None
    try:
        info = os.fstat(fd)
        text = os.read(fd, 256).decode("ascii", errors="replace") if stat.S_ISREG(info.st_mode) else ""
    finally:
        os.close(fd)
    owner = info.st_uid
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "not a regular file"
    elif _writable_by_others(info, owner):
        problem = "writable by other users"
    elif _writable_by_others(os.stat(path.parent), owner) and not os.stat(path.parent).st_mode & stat.S_ISVTX:
        problem = f"its directory {path.parent} is writable by other users"
    elif socket is not None and socket.exists() and os.stat(socket).st_uid != owner:
        problem = f"owned by uid {owner}, but the socket {socket} by uid {os.stat(socket).st_uid}"
    parts = text.split()
    if problem is None and (len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) != owner):
        problem = "not '<64 hex> <uid>' of its owner"
    if problem is None:
        try:
            public = bytes.fromhex(parts[0])
        except ValueError:
            public = b""
        if len(public) != 32:
            problem = "not a 32-byte key"
    if problem is not None:
        raise DeviceError(f"refusing the service key {path}: {problem}; the service's own account writes it "
                          "when the service starts (hcqw device serve)")
    return ServerKey(public, owner)


def for_address(address: str) -> tuple[str, ServerKey | None]:
    """The endpoint to connect to and the service's key: from the address's card, else from the key an
    ipc service published next to its socket, else ``None`` (a service that publishes none)."""
    endpoint, key = split(address)
    if key is not None:
        return endpoint, key
    path = key_file(endpoint)
    if path is None or not (path.exists() or path.is_symlink()):
        return endpoint, None
    return endpoint, read_published(path, Path(endpoint[len("ipc://"):]))


def generate() -> tuple[ServerKey, bytes]:
    """A fresh key pair of this process's account: (public key, secret key)."""
    import zmq
    from zmq.utils import z85

    public, secret = zmq.curve_keypair()
    return ServerKey(z85.decode(public), os.getuid()), secret


def write_client_key(path: Path) -> bytes:
    """A fresh client key pair in ``path`` (created 0600, never through a link): the one client a job's
    gateway admits is whoever can read it -- the job's owner. Returns the public key (z85)."""
    import zmq

    public, secret = zmq.curve_keypair()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, public + b" " + secret + b"\n")
    finally:
        os.close(fd)
    return public


def read_client_key(path: str) -> tuple[bytes, bytes]:
    """(public, secret) z85 of a client key file of this user's own, readable by nobody else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        raise DeviceError(f"cannot read the client key {path}: {err.strerror} (a link is refused)") from None
    try:
        info = os.fstat(fd)
        text = os.read(fd, 256).split()
    finally:
        os.close(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077 or len(text) != 2:
        raise DeviceError(f"refusing the client key {path}: it must be a file of this user's own, readable by "
                          "nobody else, holding '<public> <secret>' (the job's gateway writes it)")
    return text[0], text[1]
