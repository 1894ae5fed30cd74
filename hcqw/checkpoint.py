"""Checkpoint artifacts: the state that passes between workflow nodes.

A checkpoint is a cloudpickle payload behind a small JSON header, signed with the
user's HMAC key. Loading a pickle runs code, so nothing is unpickled before the
signature has been checked against the key; a file that is truncated, tampered with,
unsigned or signed with another key is refused with an error naming the file and why.

File layout::

    b"HCQWCKPT" | u32 header length (big endian) | header JSON | HMAC-SHA256 (32 bytes) | payload

The HMAC covers everything except itself. Writes are atomic (temp file, fsync,
rename, fsync of the directory), so a writer killed mid-write leaves the previous
checkpoint intact.

A valid signature says who wrote a file, not where it belongs. The signed header also
names the file it was written as (``artifact``) and the run that wrote it (``workflow``
and the ``fingerprint`` of the loop's import path and parameters), and a loader that
passes the ``Place`` it expects gets ``CheckpointMismatch`` for a file copied over another
(a rolled-back or swapped iteration) or left by a run with other parameters.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import os
import secrets
import struct
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from hcqw.errors import CheckpointError, CheckpointMismatch
from hcqw.paths import key_path

log = logging.getLogger(__name__)

MAGIC = b"HCQWCKPT"
FORMAT_VERSION = 1
_LENGTH = struct.Struct(">I")
_MAC_SIZE = hashlib.sha256().digest_size
_MAX_HEADER = 64 * 1024
_KEY_SIZE = 32


@dataclass(frozen=True)
class CheckpointHeader:
    workflow: str
    iteration: int
    producer: str
    created: float
    payload_sha256: str
    payload_size: int
    key_id: str
    format: int = FORMAT_VERSION
    meta: dict = field(default_factory=dict)
    artifact: str = ""  # the file name it was written as ("" before checkpoints were bound to their place)
    fingerprint: str = ""  # of the run that wrote it: loop import path and parameters


@dataclass(frozen=True)
class Place:
    """The run a loader expects a checkpoint from; the checkpoint's own file name is the rest of its place."""

    workflow: str
    fingerprint: str


def load_key(path: Path | None = None) -> bytes:
    """Read the user's signing key, creating it (mode 0600) on first use."""
    path = Path(path) if path else key_path()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return _create_key(path)
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode & 0o777
        if mode & 0o077:
            raise CheckpointError(path, f"signing key is accessible to other users (mode {mode:04o}); run: chmod 600 {path}")
        key = f.read()
    if len(key) < 16:
        raise CheckpointError(path, f"signing key is only {len(key)} bytes; delete it to have a new one created")
    return key


def _create_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(_KEY_SIZE)
    try:
        # Written in full before it appears under its name: a process racing us must
        # never read a half-written (empty) key.
        _write_atomically(path, [key], replace=False)
    except FileExistsError:  # another process created it first: use theirs
        return load_key(path)
    log.info("created checkpoint signing key %s", path)
    return key


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key, so a foreign-key file can be told apart from a tampered one."""
    return hashlib.sha256(b"hcqw-key-id:" + key).hexdigest()[:16]


def save_checkpoint(path: Path | str, obj: Any, *, workflow: str, iteration: int, producer: str,
                    meta: dict | None = None, key: bytes | None = None, fingerprint: str = "") -> CheckpointHeader:
    """Pickle ``obj`` and write it atomically as a signed checkpoint, bound to its file name and run."""
    path = Path(path)
    key = key or load_key()
    payload = cloudpickle.dumps(obj)
    header = CheckpointHeader(
        workflow=workflow, iteration=iteration, producer=producer, created=time.time(),
        payload_sha256=hashlib.sha256(payload).hexdigest(), payload_size=len(payload), key_id=key_id(key),
        meta=dict(meta or {}), artifact=path.name, fingerprint=fingerprint,
    )
    header_bytes = json.dumps(asdict(header), sort_keys=True).encode()
    signed = MAGIC + _LENGTH.pack(len(header_bytes)) + header_bytes
    mac = hmac.new(key, signed + payload, hashlib.sha256).digest()
    try:
        _write_atomically(path, [signed, mac, payload])
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        # The temp file is gone and nothing was renamed: whatever was at ``path`` is still there, intact.
        kept = "the previous checkpoint there is unchanged" if path.exists() else "nothing was written there"
        raise CheckpointError(path, f"not written ({err.strerror}: {len(signed) + len(mac) + len(payload)} bytes "
                                    f"did not fit); {kept}: free space (or raise the quota) and re-run to "
                                    "resume from the last checkpoint") from err
    return header


def load_checkpoint(path: Path | str, *, key: bytes | None = None, workflow: str | None = None,
                    place: Place | None = None) -> tuple[Any, CheckpointHeader]:
    """Verify and unpickle a checkpoint; ``workflow`` (if given) must match the one that wrote it,
    ``place`` (if given) the whole binding (see ``check_place``). Nothing is unpickled before both pass."""
    path = Path(path)
    header, payload = _read_verified(path, key or load_key())
    _check_workflow(path, header, workflow)
    if place is not None:
        check_place(path, header, place)
    return cloudpickle.loads(payload), header


def read_header(path: Path | str, *, key: bytes | None = None, workflow: str | None = None,
                place: Place | None = None) -> CheckpointHeader:
    """The verified (and, with ``place``, placed) header, without unpickling the payload."""
    path = Path(path)
    header = _read_verified(path, key or load_key())[0]
    _check_workflow(path, header, workflow)
    if place is not None:
        check_place(path, header, place)
    return header


def _check_workflow(path: Path, header: CheckpointHeader, workflow: str | None) -> None:
    if workflow is not None and header.workflow != workflow:
        raise CheckpointMismatch(path, f"belongs to workflow {header.workflow!r}, not {workflow!r}; check the run directory")


def check_place(path: Path, header: CheckpointHeader, place: Place) -> None:
    """Raise ``CheckpointMismatch`` unless the verified ``header`` was written as this very file by this run."""
    _check_workflow(path, header, place.workflow)
    if not header.artifact:
        raise CheckpointMismatch(
            path, "carries no record of where it belongs (written by an older hcqw); finish that run with the "
            "hcqw that started it, or start this one under a new workflow id"
        )
    if header.artifact != path.name:
        raise CheckpointMismatch(
            path, f"was written as {header.artifact} (iteration {header.iteration}, by {header.producer}), not as "
            f"{path.name}: copied over it, swapped or rolled back; refusing it. Delete {path.name} and the "
            "checkpoints after it to recompute them"
        )
    if header.fingerprint != place.fingerprint:
        raise CheckpointMismatch(
            path, f"was written by a run of workflow {place.workflow!r} with another loop or other parameters "
            f"(run fingerprint {header.fingerprint or 'none'}, this run's {place.fingerprint}); resuming would mix "
            "two runs. Resume with the same loop and parameters (--param values), or use a new workflow id"
        )


def _read_verified(path: Path, key: bytes) -> tuple[CheckpointHeader, bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(path, "missing: no such file; run the step that produces it first") from None
    except IsADirectoryError:
        raise CheckpointError(path, "is a directory, not a checkpoint file") from None
    if not data.startswith(MAGIC):
        raise CheckpointError(path, "not a signed hcqw checkpoint (no hcqw header); refusing to unpickle unsigned data")
    fixed = len(MAGIC) + _LENGTH.size
    if len(data) < fixed:
        raise CheckpointError(path, f"truncated: {len(data)} bytes, too short for a header")
    (header_size,) = _LENGTH.unpack_from(data, len(MAGIC))
    if header_size > _MAX_HEADER:
        raise CheckpointError(path, f"corrupt: header length {header_size} exceeds {_MAX_HEADER} bytes")
    payload_start = fixed + header_size + _MAC_SIZE
    if len(data) < payload_start:
        raise CheckpointError(path, f"truncated: {len(data)} bytes, header and signature need {payload_start}")
    try:
        fields = json.loads(data[fixed:fixed + header_size])
        header = CheckpointHeader(**fields)
    except (ValueError, TypeError) as err:
        raise CheckpointError(path, f"corrupt header: {err}") from None
    if header.format != FORMAT_VERSION:
        raise CheckpointError(path, f"format version {header.format} is not supported (this hcqw reads {FORMAT_VERSION})")
    payload = data[payload_start:]
    if len(payload) != header.payload_size:
        raise CheckpointError(
            path, f"truncated or padded: payload is {len(payload)} bytes, header says {header.payload_size}"
        )
    if header.key_id != key_id(key):
        raise CheckpointError(
            path, f"signed with another key (key id {header.key_id}, yours is {key_id(key)}): written by another "
            "user or with another HCQW_CHECKPOINT_KEY; refusing to load it"
        )
    expected = hmac.new(key, data[:fixed + header_size] + payload, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, data[fixed + header_size:payload_start]):
        raise CheckpointError(path, "signature mismatch: the file was modified after it was signed; refusing to load it")
    if hashlib.sha256(payload).hexdigest() != header.payload_sha256:  # unreachable unless the key leaked
        raise CheckpointError(path, "payload hash mismatch")
    return header, payload


def copy_private(src: Path | str, dst: Path | str) -> None:
    """Copy a checkpoint (e.g. staging it to another cluster) as the original was written: mode 0600, atomically."""
    _write_atomically(Path(dst), [Path(src).read_bytes()])


def _write_atomically(path: Path, chunks: list[bytes], *, replace: bool = True) -> None:
    """Write to a private temp file, fsync, then publish it under ``path`` in one step.

    With ``replace=False`` an existing ``path`` is left alone and FileExistsError raised
    (``link`` publishes atomically but, unlike ``rename``, never overwrites).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(temp, path)
        else:
            os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
