"""The QPU service wire protocol: versioned, typed request/reply messages.

A message is a list of byte frames: frame 0 is a UTF-8 JSON header, any further frames
are raw numpy buffers referenced by index from the header (``hcqw.codec``). Nothing on
the wire is ever unpickled: a peer can at worst send a bad circuit, never code.

Every request header carries ``v`` (protocol version), ``type`` and a client-chosen
``id`` that the reply echoes, so a client may have several requests in flight (heartbeats
while a run waits in the queue) and match replies to them.

Requests (``type``: fields):

- ``ping``: none. Control no-op round trip (liveness, latency benchmark).
- ``open``: ``workflow``, ``node``, ``cred`` (a MUNGE credential, see below), optional ``priority``
  (int), ``timeout`` (s, how long this session's work may wait in the queue, including
  calibrating/offline windows), ``seed`` (int >= 0: the session's n-th batch samples with
  ``batch_seed(seed, n)``, as a local lease does). A ``user`` field (older clients) is accepted
  and ignored: the session's user is whoever the credential proves.
- ``close``, ``heartbeat``, ``position``: ``session``.
- ``reseed``: ``session``, optional ``seed`` (int >= 0). Restarts the session's seeding as a new
  session opened with this seed would (its next batch samples with ``batch_seed(seed, 0)``); without
  ``seed`` the session samples unseeded from then on. A monolithic loop holds one session for all its
  iterations and reseeds it per iteration, so it samples what one session per iteration would.
  Refused while runs of the session are queued (their seeds would depend on timing).
- ``run``: ``session``, ``items`` (list of ``hcqw.codec`` work items), optional ``timeout``.
- ``status``: optional ``cred``. ``set_status``: ``status``, optional ``reason``. ``set_policy``: ``policy``.
- ``drain``, ``shutdown``: none.

Authentication (``hcqw.service.auth``): ``open`` and the control requests (``set_status``,
``set_policy``, ``drain``, ``shutdown``) carry ``cred``; a service with authentication refuses
them without a valid one (``unauthenticated``), and control from anyone but an operator
(``forbidden``). ``status`` without an operator's ``cred`` shows counts, queue positions and
the requester's own sessions only. Session requests (run, heartbeat, position, reseed, close)
carry no credential: they must come from the user and connection that opened the session
(``forbidden`` otherwise). Work is bounded (``hcqw.service.limits``): a request beyond a limit
is refused before any work starts (``too_large``; per-user quotas: ``quota``).

Replies have ``type`` ``ok`` plus request-specific fields, or ``error`` with ``code`` and
``message`` naming the problem. A ``run`` reply carries ``results`` (the sample buffers'
header), ``points``, ``seq`` and ``executed`` (device, start, end, items, qubits, shots: the
device's busy interval, for metrics kept away from the service, e.g. by a job's relay). Validation here is purely structural; the dispatcher
checks meaning (sessions, device limits).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

PROTOCOL_VERSION = 1

# Default size limits; the service may be configured with others.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_HEADER_BYTES = 8 * 1024 * 1024
MAX_ITEMS_PER_RUN = 1024
MAX_TIMEOUT = 7 * 24 * 3600.0

# Error codes (stable: clients branch on them).
E_BAD_MESSAGE = "bad_message"  # not JSON, wrong shape, wrong field types
E_VERSION = "unsupported_version"
E_UNKNOWN_TYPE = "unknown_type"
E_TOO_LARGE = "too_large"
E_CIRCUIT = "circuit"  # circuit unreadable or beyond the device's limits
E_NO_SESSION = "no_session"
E_TIMEOUT = "timeout"  # waited in the queue longer than the client allowed
E_UNAVAILABLE = "unavailable"  # draining / shutting down
E_INTERNAL = "internal"
E_FORBIDDEN = "forbidden"  # not yours: control by a non-operator, another's session, another's gateway
E_UNAUTHENTICATED = "unauthenticated"  # no credential, or a forged/expired/replayed one
E_QUOTA = "quota"  # a per-user limit (open sessions, queued items) is reached

# type -> {field: (python types, required)}
_STR = (str,)
_INT = (int,)
_NUM = (int, float)
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "ping": {},
    "open": {"workflow": (_STR, True), "node": (_STR, True), "cred": (_STR, False), "user": (_STR, False),
             "priority": (_INT, False), "timeout": (_NUM, False), "seed": (_INT, False)},
    "close": {"session": (_STR, True)},
    "heartbeat": {"session": (_STR, True)},
    "position": {"session": (_STR, True)},
    "reseed": {"session": (_STR, True), "seed": (_INT, False)},
    "run": {"session": (_STR, True), "items": ((list,), True), "timeout": (_NUM, False)},
    "status": {"cred": (_STR, False)},
    "set_status": {"status": (_STR, True), "reason": (_STR, False), "cred": (_STR, False)},
    "set_policy": {"policy": (_STR, True), "cred": (_STR, False)},
    "drain": {"cred": (_STR, False)},
    "shutdown": {"cred": (_STR, False)},
}
REQUEST_TYPES = frozenset(_SCHEMA)
#: Requests that change the service for everyone: operators only.
CONTROL_TYPES = frozenset({"set_status", "set_policy", "drain", "shutdown"})
#: Requests a client makes within its own sessions (what a job's relay forwards).
SESSION_TYPES = frozenset({"ping", "status", "open", "close", "heartbeat", "position", "reseed", "run"})
_MAX_NAME = 256  # workflow / node / user / session names
_MAX_CRED = 4096  # a MUNGE credential is ~150 characters plus its payload


class ProtocolError(Exception):
    """A request the service cannot accept; becomes an ``error`` reply with ``code``."""

    def __init__(self, code: str, message: str, request_id: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass
class Request:
    type: str
    id: Any
    fields: dict[str, Any]
    buffers: list[bytes] = field(default_factory=list)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.fields.get(name)
        return default if value is None else value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Built once: ``json.dumps``/``json.loads`` with keyword arguments construct a new
# encoder/decoder on every call, a measurable part of a microsecond-scale round trip.
# (Our own headers are never circular: no need for the encoder's per-call cycle bookkeeping.)
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
# Header keys each request type may carry.
_ALLOWED_KEYS = {type_: frozenset(schema) | {"v", "type", "id"} for type_, schema in _SCHEMA.items()}


def encode(header: dict, buffers: Sequence[bytes] = ()) -> list[bytes]:
    frame = _ENCODER.encode(header).encode()
    return [frame, *buffers]


def request(type_: str, request_id: Any, **fields: Any) -> list[bytes]:
    header = {"v": PROTOCOL_VERSION, "type": type_, "id": request_id}
    for name, value in fields.items():
        if value is not None:
            header[name] = value
    return [_ENCODER.encode(header).encode()]


def reply_ok(request_id: Any, buffers: Sequence[bytes] = (), **fields: Any) -> list[bytes]:
    return encode({"v": PROTOCOL_VERSION, "type": "ok", "id": request_id, **fields}, buffers)


def reply_error(request_id: Any, code: str, message: str) -> list[bytes]:
    return encode({"v": PROTOCOL_VERSION, "type": "error", "id": request_id, "code": code, "message": message})


def _safe_id(value: Any) -> Any:
    """Echo only small scalar ids, so an error reply can never amplify a hostile request."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and abs(value) < 2**63:
        return value
    if isinstance(value, str) and len(value) <= 128:
        return value
    return None


def decode_request(frames: Sequence[bytes], max_message: int = MAX_MESSAGE_BYTES) -> Request:
    """Parse and structurally validate one request; ``ProtocolError`` names what is wrong."""
    if not frames:
        raise ProtocolError(E_BAD_MESSAGE, "empty message: expected a JSON header frame")
    size = sum(len(f) for f in frames)
    if size > max_message:
        raise ProtocolError(E_TOO_LARGE, f"message of {size} bytes exceeds the service limit of {max_message} bytes")
    if len(frames) > 1:
        raise ProtocolError(E_BAD_MESSAGE, f"requests are a single JSON frame; got {len(frames)} frames")
    try:
        header = _parse_json(frames[0].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ProtocolError(E_BAD_MESSAGE, f"header is not valid UTF-8 JSON: {err}") from None
    if not isinstance(header, dict):
        raise ProtocolError(E_BAD_MESSAGE, f"header must be a JSON object, got {type(header).__name__}")
    request_id = _safe_id(header.get("id"))
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(E_VERSION, f"protocol version {version!r} is not supported; this service speaks "
                                       f"v={PROTOCOL_VERSION}", request_id)
    type_ = header.get("type")
    if type_ not in _SCHEMA:
        shown = type_ if isinstance(type_, str) and len(type_) < 64 else type(type_).__name__
        raise ProtocolError(E_UNKNOWN_TYPE, f"unknown request type {shown!r}; expected one of {sorted(REQUEST_TYPES)}",
                            request_id)
    schema = _SCHEMA[type_]
    extra = header.keys() - _ALLOWED_KEYS[type_]
    if extra:
        names = sorted(str(k)[:64] for k in extra)[:8]
        raise ProtocolError(E_BAD_MESSAGE, f"{type_}: unexpected fields {names}", request_id)
    fields: dict[str, Any] = {}
    for name, (types, required) in schema.items():
        value = header.get(name)
        if value is None:
            if required:
                raise ProtocolError(E_BAD_MESSAGE, f"{type_}: missing required field {name!r}", request_id)
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            raise ProtocolError(E_BAD_MESSAGE, f"{type_}: field {name!r} must be "
                                               f"{'/'.join(t.__name__ for t in types)}, got {type(value).__name__}",
                                request_id)
        if isinstance(value, str) and len(value) > (_MAX_CRED if name == "cred" else _MAX_NAME):
            raise ProtocolError(E_BAD_MESSAGE, f"{type_}: field {name!r} is too long", request_id)
        if name == "timeout" and not (math.isfinite(value) and 0 <= value <= MAX_TIMEOUT):
            raise ProtocolError(E_BAD_MESSAGE, f"{type_}: timeout must be 0..{MAX_TIMEOUT:.0f} s, got {value}",
                                request_id)
        if name == "priority" and abs(value) > 1_000_000:
            raise ProtocolError(E_BAD_MESSAGE, f"{type_}: priority must be within +-1000000", request_id)
        if name == "seed" and not 0 <= value < 2**64:
            raise ProtocolError(E_BAD_MESSAGE, f"{type_}: seed must be within 0..2**64-1", request_id)
        fields[name] = value
    if type_ == "run":
        count = len(fields["items"])
        if not 0 < count <= MAX_ITEMS_PER_RUN:
            raise ProtocolError(E_BAD_MESSAGE, f"run: items must hold 1..{MAX_ITEMS_PER_RUN} work items, got {count}",
                                request_id)
    return Request(type_, request_id, fields)


def _parse_json(text: str) -> Any:
    """``json.loads`` semantics, but a header without leading whitespace (what every client
    sends) skips ``decode``'s whitespace scans: measurable at a few microseconds per message."""
    if text[:1].isspace():
        return _DECODER.decode(text)
    value, end = _DECODER.raw_decode(text)
    if end != len(text) and not text[end:].isspace():
        raise json.JSONDecodeError("Extra data", text, end)
    return value


def decode_reply(frames: Sequence[bytes]) -> tuple[dict, list[bytes]]:
    """Client side: the header and the buffer frames of a reply."""
    if not frames:
        raise ValueError("empty reply")
    header = _parse_json(frames[0].decode("utf-8"))
    if not isinstance(header, dict) or header.get("v") != PROTOCOL_VERSION:
        raise ValueError(f"reply is not a v{PROTOCOL_VERSION} protocol header")
    return header, list(frames[1:])
