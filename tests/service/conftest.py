"""Live QPU services for the tests (see ``live.py``), authenticating through a private munged."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.live import LiveService
from tests.support.munge import PrivateMunged
from tests.support.unix_users import UnixUsers

from hcqw.environment import MUNGE_SOCKET


@pytest.fixture(scope="session")
def munge_daemon():
    """A private munged, started once for the session. Not under pytest's tmp dir (0700 for root): other users'
    clients must reach the socket."""
    directory = Path(tempfile.mkdtemp(prefix="hcqw-munge-"))
    daemon = PrivateMunged(directory)
    yield daemon
    daemon.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def munged(munge_daemon):
    """``$HCQW_MUNGE_SOCKET`` points every client and service of this directory's modules at the private munged,
    and is put back after each module: the tests of other directories (the lab's, whose clients need the lab's
    munged) may run next in this process, in any order under pytest-xdist."""
    before = os.environ.get(MUNGE_SOCKET)
    os.environ[MUNGE_SOCKET] = str(munge_daemon.socket)
    yield munge_daemon
    if before is None:
        os.environ.pop(MUNGE_SOCKET, None)
    else:
        os.environ[MUNGE_SOCKET] = before


@pytest.fixture(scope="module")
def tcp_service(tmp_path_factory, munged):
    service = LiveService(tmp_path_factory.mktemp("tcp"), "tcp://127.0.0.1:*", "--session-timeout", "1.5")
    yield service
    service.stop()


@pytest.fixture
def ipc_service(tmp_path):
    service = LiveService(tmp_path, f"ipc://{tmp_path}/sock/qpu.ipc")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def two_users() -> UnixUsers:
    """``hcqw-alice`` (victim) and ``hcqw-bob`` (attacker): the lab's real Unix users (created if
    missing), and the site's shared venv, which every user may execute (root's own venv lives
    under a 0700 home). ``$HCQW_SITE_DIR`` picks the site tree (default /opt/hcqw-site)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create users and run processes as them (runuser)")
    from hcqw.lab.software import ensure_site_venv
    from hcqw.lab.users import USERS, ensure_accounts

    ensure_accounts(Path(tempfile.gettempdir()) / "hcqw-test-homes")
    site = ensure_site_venv()
    return UnixUsers(USERS, str(site.bin / "python"))


@pytest.fixture
def lab_munge(slurm_lab, monkeypatch):
    """For a lab test: root's own calls (an operator's status) authenticate through the lab's munged, not
    the private one this conftest points the session at."""
    monkeypatch.setenv(MUNGE_SOCKET, str(slurm_lab.layout.munge_socket))
