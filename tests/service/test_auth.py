"""Who may do what: the authentication mode of an address, operators, and a gateway that serves
its owner only (a live service, two real users)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.live import LiveService

from hcqw.errors import DeviceError
from hcqw.service import protocol as P
from hcqw.service import servicekey
from hcqw.service.auth import Authenticator, private_ipc, resolve_mode
from hcqw.service.client import ServiceClient
from hcqw.service.transport import check_bind_address

HERE = Path(__file__).parent


def test_auto_is_none_only_for_a_private_ipc_socket(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    assert private_ipc(f"ipc://{private}/qpu.ipc")
    assert resolve_mode("auto", f"ipc://{private}/qpu.ipc") == "none"
    for address in (f"ipc://{shared}/qpu.ipc", "tcp://127.0.0.1:5555", "mpi:file:/tmp/port"):
        assert resolve_mode("auto", address) == "munge"
        if address.startswith("tcp"):
            with pytest.raises(DeviceError, match="--auth none.*private"):
                resolve_mode("none", address)


def test_auto_creates_the_ipc_directory_before_it_checks_it(tmp_path):
    """A missing directory is not taken for private: auto makes it 0700 first, then checks what is there."""
    new = tmp_path / "new" / "deeper"
    assert not private_ipc(f"ipc://{new}/qpu.ipc")  # missing: not private (was: assumed private)
    assert resolve_mode("auto", f"ipc://{new}/qpu.ipc") == "none"
    assert new.is_dir() and new.stat().st_mode & 0o777 == 0o700
    # Someone else's directory made first (here: open to all, or a link to one) is not private after creation.
    raced = tmp_path / "raced"
    raced.mkdir(mode=0o777)
    raced.chmod(0o777)
    assert resolve_mode("auto", f"ipc://{raced}/qpu.ipc") == "munge"
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "new")
    assert resolve_mode("auto", f"ipc://{link}/qpu.ipc") == "munge"
    with pytest.raises(DeviceError, match="--auth none.*private"):
        resolve_mode("none", f"ipc://{raced}/qpu.ipc")


def test_an_unauthenticated_service_binds_loopback_only():
    check_bind_address("tcp://127.0.0.1:*")
    with pytest.raises(DeviceError, match="without authentication.*--auth munge"):
        check_bind_address("tcp://10.1.2.3:*")
    check_bind_address("tcp://10.1.2.3:*", authenticated=True)


def test_operators_are_the_services_account_root_and_the_configured_users():
    auth = Authenticator("none", operator_names=("nobody",))
    assert auth.operators == {0, os.getuid(), auth.service.uid, __import__("pwd").getpwnam("nobody").pw_uid}
    with pytest.raises(Exception, match="no account named"):
        Authenticator("munge", operator_names=("no-such-user-hcqw",))


@pytest.fixture
def owner_only_service(munged):
    directory = Path(tempfile.mkdtemp(prefix="hcqw-owner-"))
    directory.chmod(0o755)
    service = LiveService(directory, f"ipc://{directory}/qpu/qpu.ipc", "--auth", "munge", "--owner-only")
    yield service
    service.stop()
    shutil.rmtree(directory, ignore_errors=True)


def test_a_gateway_serves_its_owner_only(owner_only_service, two_users):
    socket = Path(servicekey.split(owner_only_service.address)[0][len("ipc://"):])
    assert socket.stat().st_mode & 0o777 == 0o666  # every user may connect ... and is authenticated
    done = two_users.run("hcqw-bob", [str(HERE / "attacker.py"), "open", owner_only_service.address])
    assert done.returncode == 0, done.stderr
    assert '"open": "forbidden"' in done.stdout
    with ServiceClient(owner_only_service.address) as owner, owner.session("wf", "mine") as qpu:
        assert qpu.is_open
        assert owner.status()["sessions"][0]["user"] == "root"


def test_control_without_a_credential_is_refused_on_an_authenticated_service(tcp_service):
    with ServiceClient(tcp_service.address, credentials=False) as anonymous:
        with pytest.raises(Exception) as refused:
            anonymous.set_policy("priority")
        assert refused.value.code == P.E_UNAUTHENTICATED and "cred" in str(refused.value)
        with pytest.raises(Exception) as refused:
            anonymous.session("wf", "n")
        assert refused.value.code == P.E_UNAUTHENTICATED
        assert anonymous.status()["operator_view"] is False


def test_without_authentication_the_services_own_user_sees_everything(ipc_service):
    with ServiceClient(ipc_service.address, credentials=False) as owner, owner.session("wf", "mine"):
        with ServiceClient(ipc_service.address, credentials=False) as other_connection:
            status = other_connection.status()
    assert status["auth"] == "none" and status["operator_view"] is True
    assert [s["node"] for s in status["sessions"]] == ["mine"]
