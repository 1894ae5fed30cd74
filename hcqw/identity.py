"""Who is asking: identity from the system (MUNGE), never from a field a client sends.

A client proves its Unix identity to a QPU service, a job's gateway or a relay with a MUNGE
credential: ``encode()`` asks the local munged to seal the calling process's uid/gid (the
daemon reads them from the kernel, so a process cannot claim another's), and ``decode()``
at the other end asks its munged (same key: the cluster's) to open it and returns who made
it. Every SLURM site runs munged already; the lab runs a private one.

A credential is good for one decode (munged keeps a replay cache) and for its time to live
(default 300 s); a replayed, expired, rewound, tampered or foreign credential raises a named
``AuthError``. libmunge is called through ctypes (``libmunge.so.2``, Debian's libmunge2), so
nothing is compiled and no ``munge`` process is spawned per credential.

The daemon's socket is found as: ``$HCQW_MUNGE_SOCKET``, else ``AuthInfo=socket=...`` in the
slurm.conf named by ``$SLURM_CONF``, else libmunge's compiled-in default.

Kernel peer credentials (``SO_PEERCRED``) would identify ipc clients without munged, but
ZeroMQ does not hand them to Python. The embedded default (no munged) therefore relies on the
file system instead: its ipc socket lives in a 0700 directory of the service's own user, so
whoever connects *is* that user (see ``hcqw.service.auth``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

from hcqw import environment
from hcqw.errors import AuthError


# munge.h: enum munge_opt and enum munge_err (the values are part of libmunge's ABI).
_OPT_SOCKET = 8
_OPT_UID_RESTRICTION = 9
_ERRORS = {
    6: ("socket", "cannot talk to munged"),
    8: ("invalid", "malformed credential"),
    9: ("invalid", "credential of an unsupported version"),
    13: ("invalid", "credential of another security realm"),
    14: ("invalid", "credential not made with this cluster's munge key (forged or tampered with)"),
    15: ("expired", "credential expired"),
    16: ("rewound", "credential from the future (clock skew between hosts)"),
    17: ("replayed", "credential replayed: each credential is good for one use"),
    18: ("unauthorized", "credential restricted to another decoder"),
}


@dataclass(frozen=True)
class Identity:
    """A verified Unix identity."""

    uid: int
    gid: int
    user: str

    def __str__(self) -> str:
        return f"{self.user} (uid {self.uid})"


def user_name(uid: int) -> str:
    """The account name of ``uid``, or the number as text when the account database has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def uid_of(user: str) -> int:
    """The uid of an account name (or of a number given as text); ``AuthError`` if there is none."""
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise AuthError("unknown_user", f"no account named {user!r} on this host") from None


def current() -> Identity:
    """This process's own identity (from the kernel: no credential needed to know oneself)."""
    uid = os.getuid()
    return Identity(uid, os.getgid(), user_name(uid))


def current_user() -> str:
    """This process's account name (the number as text where the account database has none)."""
    return user_name(os.getuid())


def munge_socket() -> str | None:
    """The munged socket to use (see the module docstring); ``None`` means libmunge's default."""
    explicit = os.environ.get(environment.MUNGE_SOCKET)
    if explicit:
        return explicit
    conf = os.environ.get("SLURM_CONF")
    if conf:
        try:
            text = Path(conf).read_text()
        except OSError:
            return None
        for line in text.splitlines():
            match = re.match(r"\s*AuthInfo\s*=\s*(\S+)", line, re.IGNORECASE)
            if match:
                for option in match.group(1).split(","):
                    key, _, value = option.partition("=")
                    if key.strip().lower() == "socket" and value.strip():
                        return value.strip()
    return None


_DEFAULT_SOCKET = "/run/munge/munge.socket.2"


def munge_reachable() -> bool:
    """Whether a munged socket exists where ``encode``/``decode`` would look: a cheap check, so a
    client of a service without authentication does not pay libmunge's connect retries."""
    return Path(munge_socket() or _DEFAULT_SOCKET).is_socket()


class _LibMunge:
    """The few libmunge calls we need, bound once."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("munge") or "libmunge.so.2"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            try:
                lib = ctypes.CDLL("libmunge.so.2")
            except OSError as err:
                raise AuthError("no_libmunge", f"libmunge is not installed ({err}); install it "
                                "(Debian: apt-get install libmunge2 munge)") from None
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        self.free = libc.free
        self.free.argtypes = [ctypes.c_void_p]
        self.ctx_create = lib.munge_ctx_create
        self.ctx_create.restype = ctypes.c_void_p
        self.ctx_destroy = lib.munge_ctx_destroy
        self.ctx_destroy.argtypes = [ctypes.c_void_p]
        self.ctx_set = lib.munge_ctx_set  # variadic: (ctx, opt, ...); argtypes left open
        self.ctx_set.restype = ctypes.c_int
        self.ctx_strerror = lib.munge_ctx_strerror
        self.ctx_strerror.argtypes = [ctypes.c_void_p]
        self.ctx_strerror.restype = ctypes.c_char_p
        self.strerror = lib.munge_strerror
        self.strerror.argtypes = [ctypes.c_int]
        self.strerror.restype = ctypes.c_char_p
        self.encode = lib.munge_encode
        self.encode.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        self.encode.restype = ctypes.c_int
        self.decode = lib.munge_decode
        self.decode.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                                ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_uint),
                                ctypes.POINTER(ctypes.c_uint)]
        self.decode.restype = ctypes.c_int


_lib: _LibMunge | None = None


def _libmunge() -> _LibMunge:
    global _lib
    if _lib is None:
        _lib = _LibMunge()
    return _lib


class _Context:
    """A libmunge context pointed at our socket; one per call (cheap), so threads never share one."""

    def __init__(self, lib: _LibMunge):
        self.lib = lib
        self.socket = munge_socket()
        self.ctx = lib.ctx_create()
        if not self.ctx:
            raise AuthError("internal", "munge_ctx_create failed (out of memory)")
        if self.socket is not None:
            err = lib.ctx_set(ctypes.c_void_p(self.ctx), ctypes.c_int(_OPT_SOCKET), ctypes.c_char_p(self.socket.encode()))
            if err:
                self.close()
                raise AuthError("internal", f"munge_ctx_set(socket={self.socket}): {lib.strerror(err).decode()}")

    def fail(self, err: int, doing: str) -> AuthError:
        reason, meaning = _ERRORS.get(err, ("error", "munge failed"))
        detail = self.lib.ctx_strerror(self.ctx) or self.lib.strerror(err)
        message = f"{doing}: {meaning} ({detail.decode(errors='replace')})"
        if reason == "socket":
            where = self.socket or f"libmunge's default socket ({_DEFAULT_SOCKET})"
            message += (f"; is munged running at {where}? Set ${environment.MUNGE_SOCKET} (or AuthInfo=socket=... in "
                        "$SLURM_CONF) to the cluster's munged socket")
        return AuthError(reason, message)

    def close(self) -> None:
        if self.ctx:
            self.lib.ctx_destroy(self.ctx)
            self.ctx = None


def encode(payload: bytes = b"", restrict_uid: int | None = None) -> str:
    """A credential sealing this process's uid/gid (and ``payload``), for one decode; with
    ``restrict_uid`` munged lets only a process of that uid (or root) decode it."""
    lib = _libmunge()
    context = _Context(lib)
    try:
        if restrict_uid is not None:
            err = lib.ctx_set(ctypes.c_void_p(context.ctx), ctypes.c_int(_OPT_UID_RESTRICTION),
                              ctypes.c_uint(restrict_uid))
            if err:
                raise context.fail(err, f"restricting a MUNGE credential to uid {restrict_uid}")
        cred = ctypes.c_char_p()
        err = lib.encode(ctypes.byref(cred), context.ctx, payload or None, len(payload))
        if err:
            raise context.fail(err, "making a MUNGE credential")
        try:
            return ctypes.string_at(cred).decode("ascii")
        finally:
            lib.free(cred)
    finally:
        context.close()


def decode(credential: str) -> Identity:
    """Verify ``credential`` and return who made it; ``AuthError`` (``reason`` says why) otherwise."""
    return decode_with_payload(credential)[0]


def decode_with_payload(credential: str) -> tuple[Identity, bytes]:
    """``decode`` that also returns the sealed payload."""
    if not isinstance(credential, str) or not credential.startswith("MUNGE:") or len(credential) > 64 * 1024:
        raise AuthError("invalid", "not a MUNGE credential (expected text starting with 'MUNGE:')")
    try:
        raw = credential.encode("ascii")
    except UnicodeEncodeError:
        raise AuthError("invalid", "not a MUNGE credential (non-ASCII text)") from None
    lib = _libmunge()
    context = _Context(lib)
    try:
        buffer, length = ctypes.c_void_p(), ctypes.c_int()
        uid, gid = ctypes.c_uint(), ctypes.c_uint()
        err = lib.decode(raw, context.ctx, ctypes.byref(buffer), ctypes.byref(length), ctypes.byref(uid),
                         ctypes.byref(gid))
        try:
            payload = ctypes.string_at(buffer, length.value) if buffer.value else b""
        finally:
            if buffer.value:
                lib.free(buffer)
        if err:
            raise context.fail(err, "verifying a MUNGE credential")
        return Identity(uid.value, gid.value, user_name(uid.value)), payload
    finally:
        context.close()
