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
- ``auto`` (default): ``none`` for such a private ipc address, else ``munge``. The directory is
  created (0700) first and checked after, so a directory someone else made first is never taken
  for a private one.

A credential proves one request to one service (``hcqw.service.credential``): it names this
service's CurveZMQ key (``service_id``) and digests the request; any other is refused.

Only jobs holding the QPU reach it: with ``grants`` (a resident service's ``--grants DIR``,
``hcqw.service.grants``) a session is opened only for a uid holding a running allocation of
``gres/qpu`` on this host, and ``revoked`` names the sessions whose owner's allocation ended.
Operators are not asked for one (status, control, calibration runs).

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
from hcqw.errors import DeviceError
from hcqw.identity import Identity
from hcqw.service import credential
from hcqw.service.grants import Grants

AUTH_MODES = ("auto", "munge", "none")


def private_ipc(address: str) -> bool:
    """Whether ``address`` is an ipc socket in an existing directory (not a link) that only this
    user can enter. A missing directory is not private: create it first (``resolve_mode``)."""
    if not address.startswith("ipc://"):
        return False
    directory = Path(address[len("ipc://"):]).parent
    try:
        info = directory.lstat()
    except FileNotFoundError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
            and not info.st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def resolve_mode(mode: str, address: str) -> str:
    """``auto`` -> ``none`` or ``munge`` for ``address``; ``none`` on anything but a private ipc
    socket is refused (it would let every user act as the service's own)."""
    if mode not in AUTH_MODES:
        raise DeviceError(f"unknown --auth {mode!r}; choose one of {', '.join(AUTH_MODES)}")
    if mode in ("auto", "none") and address.startswith("ipc://"):
        # Create first, check after: between a check of a missing directory and its creation
        # another user could make it (theirs, or open to all) and listen or connect there.
        Path(address[len("ipc://"):]).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
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
    grants: Grants | None = None  # a resident service: open only for uids holding gres/qpu here
    service_id: str = credential.NO_KEY  # the key credentials must name (set once the transport has one)
    operators: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        self.operators = frozenset({0, self.service.uid, *(identity.uid_of(n) for n in self.operator_names if n)})

    def identify(self, request) -> Identity:
        """The requester of an ``open``/control/``status`` request (a ``protocol.Request``), proven by a
        credential made for this request to this service; ``AuthError`` if unproven."""
        if self.mode == "none":
            return self.service
        return credential.verify(request.fields.get("cred"), request.type, request.fields, self.service_id)

    def optional(self, request) -> Identity | None:
        """Who sent a request whose credential is optional (``status``); ``None``: anonymous."""
        return self.identify(request) if request.fields.get("cred") or self.mode == "none" else None

    def allocation_refusal(self, who: Identity) -> str | None:
        """Why ``who`` may not open a session on this host's device now (``None``: they may)."""
        if self.grants is None or self.is_operator(who) or self.grants.holds(who.uid):
            return None
        return (f"{who} holds no running allocation of gres/qpu on this host: only jobs holding the QPU reach "
                "it (submit with -p qpu --gres=qpu:1 and open the session from inside that job)")

    def revoked(self, owners: dict[str, Identity]) -> list[str]:
        """Of ``owners`` (session -> owner), the sessions whose owner no longer holds the device here."""
        if self.grants is None:
            return []
        holders = set(self.grants.jobs().values())
        return [s for s, who in owners.items() if who.uid not in holders and not self.is_operator(who)]

    def is_operator(self, who: Identity) -> bool:
        return who.uid in self.operators

    def may_open(self, who: Identity) -> bool:
        return not self.owner_only or who.uid == self.service.uid
