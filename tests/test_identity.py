"""MUNGE identity through libmunge (ctypes), against a real private munged and real Unix users."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from hcqw import environment, identity
from hcqw.errors import AuthError
from tests.support.munge import PrivateMunged


@pytest.fixture(scope="module")
def munged():
    directory = Path(tempfile.mkdtemp(prefix="hcqw-munge-"))
    directory.chmod(0o755)
    daemon = PrivateMunged(directory)
    yield daemon
    daemon.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def socket_env(munged, monkeypatch):
    monkeypatch.setenv(environment.MUNGE_SOCKET, str(munged.socket))
    return munged


def test_a_credential_proves_the_callers_uid_once(socket_env):
    credential = identity.encode(b"payload")
    who, payload = identity.decode_with_payload(credential)
    assert (who.uid, who.gid, payload) == (os.getuid(), os.getgid(), b"payload")
    assert who == identity.current()
    with pytest.raises(AuthError, match="replayed") as replayed:
        identity.decode(credential)
    assert replayed.value.reason == "replayed"


def test_forged_tampered_and_foreign_credentials_are_refused_by_name(socket_env):
    credential = identity.encode()
    body = credential[len("MUNGE:"):-1]
    flipped = "MUNGE:" + body[:40] + ("A" if body[40] != "A" else "B") + body[41:] + ":"
    for bad, reason in ((flipped, "invalid"), ("MUNGE:garbage:", "invalid"), ("not a credential", "invalid"),
                        ("MUNGE:" + "\u00e9" * 10, "invalid")):
        with pytest.raises(AuthError) as refused:
            identity.decode(bad)
        assert refused.value.reason == reason, (bad, refused.value)
    elsewhere = Path(tempfile.mkdtemp(prefix="hcqw-munge-other-"))
    elsewhere.chmod(0o755)
    other = PrivateMunged(elsewhere)  # same software, another key: another cluster
    try:
        os.environ[environment.MUNGE_SOCKET] = str(other.socket)
        foreign = identity.encode()
    finally:
        os.environ[environment.MUNGE_SOCKET] = str(socket_env.socket)
        other.stop()
        shutil.rmtree(elsewhere, ignore_errors=True)
    with pytest.raises(AuthError, match="munge key") as refused:
        identity.decode(foreign)
    assert refused.value.reason == "invalid"


def test_expired_credential(socket_env):
    made = subprocess.run(["munge", "-n", "-t", "1", "-S", str(socket_env.socket)], capture_output=True, text=True,
                          check=True)
    time.sleep(2.5)
    with pytest.raises(AuthError, match="expired") as refused:
        identity.decode(made.stdout.strip())
    assert refused.value.reason == "expired"


def test_another_users_credential_decodes_to_that_user(socket_env):
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs root and runuser to act as another user")
    user = "nobody"
    made = subprocess.run(["runuser", "-u", user, "--", "munge", "-n", "-S", str(socket_env.socket)],
                          capture_output=True, text=True, check=True)
    who = identity.decode(made.stdout.strip())
    assert (who.user, who.uid) == (user, identity.uid_of(user))


def test_no_munged_says_what_to_start(monkeypatch, tmp_path):
    monkeypatch.setenv(environment.MUNGE_SOCKET, str(tmp_path / "nothing-here"))
    assert not identity.munge_reachable()
    with pytest.raises(AuthError, match=r"is munged running at .*nothing-here.*HCQW_MUNGE_SOCKET") as refused:
        identity.encode()
    assert refused.value.reason == "socket"


def test_socket_from_slurm_conf(monkeypatch, tmp_path):
    monkeypatch.delenv(environment.MUNGE_SOCKET, raising=False)
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=lab\nAuthType=auth/munge\nAuthInfo=cred_expire=120,socket=/lab/munge/munge.socket\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    assert identity.munge_socket() == "/lab/munge/munge.socket"
    monkeypatch.setenv(environment.MUNGE_SOCKET, "/explicit.socket")
    assert identity.munge_socket() == "/explicit.socket"
    monkeypatch.delenv(environment.MUNGE_SOCKET)
    conf.write_text("ClusterName=lab\n")
    assert identity.munge_socket() is None  # libmunge's default
