"""Who may do what on a QPU service: authentication of session opens and control, operators,
and the owner-only rule of a job's own gateway.

Modes (``hcqw device serve --auth``):

- ``munge``: ``open``, ``status`` (optional) and every control request (``set_status``,
  ``set_policy``, ``drain``, ``shutdown``) carry ``cred``, a MUNGE credential
  (``hcqw.identity``); the service decodes it and the credential's uid is the requester.
- ``none``: for an ipc socket in a private (0700) directory of the service's own user only:
  nobody else can reach the socket, so whoever connects is that user. ZeroMQ does not expose
  the kernel's peer credentials (``SO_PEERCRED``) to Python, so the file system is what
  authenticates here. This is the embedded default (no munged needed).
- ``auto`` (default): ``none`` for such a private ipc address, else ``munge``.

Only ``open`` and control pay for a credential. Later session requests (run, heartbeat,
position, reseed, close) are checked against the session's owner by the connection they
come on: a session belongs to the uid that opened it *and* to that connection (ZeroMQ peer
id, MPI intercommunicator), see ``Dispatcher._session``.

Operators (may use control requests and see every session in ``status``): the service's own
account, root, and ``--operators USER,...``. A job's gateway with its own simulator serves
only its own uid (``owner_only``): anyone else's ``open`` is refused.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from hcqw import identity
from hcqw.errors import AuthError, DeviceError
from hcqw.identity import Identity

AUTH_MODES = ("auto", "munge", "none")


def private_ipc(address: str) -> bool:
    """Whether ``address`` is an ipc socket in a directory only this user can enter (or will create
    so: ``private_ipc_dir`` makes a missing directory 0700)."""
    if not address.startswith("ipc://"):
        return False
    directory = Path(address[len("ipc://"):]).parent
    try:
        info = directory.stat()
    except FileNotFoundError:
        return True
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)


def resolve_mode(mode: str, address: str) -> str:
    """``auto`` -> ``none`` or ``munge`` for ``address``; ``none`` on anything but a private ipc
    socket is refused (it would let every user act as the service's own)."""
    if mode not in AUTH_MODES:
        raise DeviceError(f"unknown --auth {mode!r}; choose one of {', '.join(AUTH_MODES)}")
    if mode == "auto":
        return "none" if private_ipc(address) else "munge"
    if mode == "none" and not private_ipc(address):
        raise DeviceError(f"refusing --auth none on {address}: without authentication the service may only listen "
                          "on an ipc socket in a private (0700) directory of its own user; use --auth munge")
    return mode


@dataclass
class Authenticator:
    mode: str  # "munge" or "none" (resolved)
    service: Identity = field(default_factory=identity.current)
    operator_names: tuple[str, ...] = ()
    owner_only: bool = False
    operators: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        self.operators = frozenset({0, self.service.uid, *(identity.uid_of(n) for n in self.operator_names if n)})

    def identify(self, credential: str | None) -> Identity:
        """The requester of an ``open``/control/``status`` request; ``AuthError`` if unproven."""
        if self.mode == "none":
            return self.service
        if not credential:
            raise AuthError("missing", "this service authenticates with MUNGE: the request needs a 'cred' field "
                                       "(hcqw's ServiceClient adds one when it finds munged; set $HCQW_MUNGE_SOCKET "
                                       "or $SLURM_CONF to reach the cluster's munged)")
        return identity.decode(credential)

    def optional(self, credential: str | None) -> Identity | None:
        """Who sent a request whose credential is optional (``status``); ``None``: anonymous."""
        return self.identify(credential) if credential or self.mode == "none" else None

    def is_operator(self, who: Identity) -> bool:
        return who.uid in self.operators

    def may_open(self, who: Identity) -> bool:
        return not self.owner_only or who.uid == self.service.uid
