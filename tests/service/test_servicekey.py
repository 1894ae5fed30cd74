"""Service keys (hcqw.service.servicekey): the card in an address, and what a client refuses to trust."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hcqw.errors import DeviceError
from hcqw.service import servicekey
from hcqw.service.servicekey import ServerKey

KEY = ServerKey(bytes(range(32)), 1234)


def test_a_card_carries_the_key_uid_and_client_key_file():
    assert servicekey.split(servicekey.card("tcp://10.0.0.5:4242", KEY)) == ("tcp://10.0.0.5:4242", KEY)
    with_client = ServerKey(KEY.public, KEY.uid, "/home/a/jobs/x/gateway.address.client")
    assert servicekey.split(servicekey.card("ipc:///run/x.ipc", with_client)) == ("ipc:///run/x.ipc", with_client)
    assert servicekey.split("tcp://127.0.0.1:1") == ("tcp://127.0.0.1:1", None)
    for bad in ("tcp://h:1#curve=zz&uid=1", "tcp://h:1#curve=00&uid=1", "tcp://h:1#curve=" + "00" * 32 + "&uid=x"):
        with pytest.raises(DeviceError, match="malformed service address"):
            servicekey.split(bad)


def _published(directory: Path, mode: int = 0o644) -> Path:
    path = directory / "qpu.ipc.key"
    servicekey.publish(path, ServerKey(KEY.public, os.getuid()))
    path.chmod(mode)
    return path


def test_a_published_key_is_read_with_its_owner_as_the_service_uid(tmp_path):
    directory = tmp_path / "svc"
    directory.mkdir(mode=0o755)
    path = _published(directory)
    assert servicekey.read_published(path) == ServerKey(KEY.public, os.getuid())
    endpoint, key = servicekey.for_address(f"ipc://{directory}/qpu.ipc")
    assert endpoint == f"ipc://{directory}/qpu.ipc" and key == ServerKey(KEY.public, os.getuid())
    assert servicekey.for_address(f"ipc://{tmp_path}/none/qpu.ipc")[1] is None  # a service that publishes none


def test_a_client_refuses_keys_others_could_have_planted(tmp_path):
    directory = tmp_path / "svc"
    directory.mkdir(mode=0o755)
    path = _published(directory, 0o666)
    with pytest.raises(DeviceError, match="writable by other users"):
        servicekey.read_published(path)
    path.chmod(0o644)
    directory.chmod(0o777)
    with pytest.raises(DeviceError, match="its directory .* is writable by other users"):
        servicekey.read_published(path)
    directory.chmod(0o755)
    link = directory / "link.key"
    link.symlink_to(path)
    with pytest.raises(DeviceError, match="a link is refused"):
        servicekey.read_published(link)
    path.write_text(f"{KEY.public.hex()} {os.getuid() + 1}\n")  # claims another account than its owner
    with pytest.raises(DeviceError, match="of its owner"):
        servicekey.read_published(path)
    socket = directory / "qpu.ipc"
    socket.write_text("")
    os.chown(socket, 65534, 65534)  # the socket is someone else's: so is the service
    _published(directory)
    with pytest.raises(DeviceError, match="but the socket"):
        servicekey.read_published(directory / "qpu.ipc.key", socket)


def test_a_client_key_must_be_its_users_alone(tmp_path):
    path = tmp_path / "gateway.address.client"
    public = servicekey.write_client_key(path)
    assert servicekey.read_client_key(str(path))[0] == public and path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError):
        servicekey.write_client_key(path)  # never over an existing file (or link)
    path.chmod(0o644)
    with pytest.raises(DeviceError, match="readable by nobody else"):
        servicekey.read_client_key(str(path))
