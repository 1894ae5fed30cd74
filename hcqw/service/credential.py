"""A credential proves one request to one service.

``seal`` makes the MUNGE credential of a request: its sealed payload names the service (its
CurveZMQ public key, ``hcqw.service.servicekey``) and a SHA-256 digest of the request (type and
every field but ``cred``) plus a random nonce, and munged restricts it to the service's uid, so
only that account (or root) can decode it. ``verify`` is the service's side: it decodes the
credential (munged checks seal, time to live, replay, uid restriction) and refuses one whose
payload names another service or another request.

So a credential caught by a fake service (an address someone planted, a host on the path) is
good for nothing: bound to the fake service's key, it is refused by every real one; bound to
that one request, it cannot be turned into another. Services without a key (MPI transport) are
named ``-``: a credential for one of them is still bound to its request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any, Mapping

from hcqw import identity
from hcqw.errors import AuthError
from hcqw.identity import Identity

NO_KEY = "-"


def request_digest(type_: str, fields: Mapping[str, Any]) -> str:
    """The digest both ends compute of a request: its type and its non-null fields but ``cred``."""
    body = {"type": type_, **{k: v for k, v in fields.items() if k != "cred" and v is not None}}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal(type_: str, fields: Mapping[str, Any], service: str, restrict_uid: int | None) -> str:
    """The credential for one request to ``service`` (its key's ``ident``, or ``NO_KEY``)."""
    payload = {"svc": service, "req": request_digest(type_, fields), "nonce": secrets.token_hex(8)}
    return identity.encode(json.dumps(payload, separators=(",", ":")).encode(), restrict_uid=restrict_uid)


def verify(credential: Any, type_: str, fields: Mapping[str, Any], service: str) -> Identity:
    """Who made ``credential`` for exactly this request to this service; ``AuthError`` otherwise."""
    if not credential:
        raise AuthError("missing", "this service authenticates with MUNGE: the request needs a 'cred' field "
                                   "(hcqw's ServiceClient adds one when it finds munged; set $HCQW_MUNGE_SOCKET "
                                   "or $SLURM_CONF to reach the cluster's munged)")
    who, payload = identity.decode_with_payload(credential)
    try:
        sealed = json.loads(payload) if payload else None
    except (ValueError, UnicodeDecodeError):
        sealed = None
    if not isinstance(sealed, dict) or not isinstance(sealed.get("svc"), str) or not isinstance(sealed.get("req"), str):
        raise AuthError("unbound", f"the credential of {who} binds no service and request (a bare MUNGE "
                                   "credential, or one from an older hcqw client): use hcqw's ServiceClient")
    if sealed["svc"] != service:
        raise AuthError("other_service", f"the credential of {who} was made for another service "
                                         f"({sealed['svc'][:16]}..., this one is {service[:16]}...): a credential "
                                         "is good only at the service it was made for")
    if sealed["req"] != request_digest(type_, fields):
        raise AuthError("other_request", f"the credential of {who} was made for another request: a credential "
                                         f"proves only the request it was made with (this is a {type_!r})")
    return who
