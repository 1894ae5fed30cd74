"""Pytest fixtures for the SLURM lab cluster (enable with ``pytest_plugins = ["hcqw.lab.pytest_plugin"]``).

- ``slurm_lab``: the main site (root /tmp/hcqw-pytest-lab, port base 6900: two
  cpu hosts, two qpu hosts with resident QPU services, users hcqw-alice and
  hcqw-bob), started once per session; ``os.environ`` gets ``lab.env``
  (SLURM_CONF, HCQW_MUNGE_SOCKET) for the session so plain ``sbatch``/``squeue``
  calls reach it (as root). Run something as a lab user with
  ``slurm_lab.exec("hcqw-alice", [...], capture_output=True, text=True)``.
- ``slurm_lab_c2``: an independent second site "qpuside" (the QPU-side
  cluster of a two-cluster federation; root /tmp/hcqw-pytest-lab-c2, port base
  6950; one cpu and one qpu host). It does NOT touch os.environ: pass
  ``slurm_lab_c2.env``.

- ``slurm_lab_acct``: a site in accounting mode (root /tmp/hcqw-pytest-lab-usage, port base 7000; MariaDB,
  slurmdbd, fair share), shared by the session's accounting tests; pass ``slurm_lab_acct.env``.

- ``slurm_lab_staged``: a site staging quantum nodes (root /tmp/hcqw-pytest-lab-staged, port base 7020; one qpu
  host, ``Gres=qpu:3``), for the staging tests.

- ``lab_user_dir``: ``lab_user_dir("hcqw-alice")`` makes a fresh directory in that user's
  home, owned by them (0700), for what the test runs as them (pytest's ``tmp_path`` is
  root's and private); removed after the test. ``make_user_dir(lab, user, label)`` makes one
  for a fixture of wider scope.

``HCQW_TEST_LAB_DIR``/``HCQW_TEST_LAB_PORT`` (and ``HCQW_TEST_LAB_C2_DIR``/``_PORT``,
``HCQW_TEST_LAB_ACCT_DIR``/``_PORT``, ``HCQW_TEST_LAB_STAGED_DIR``/``_PORT``) move
them elsewhere, so that independent test runs on one machine need not share a qpu node. Under pytest-xdist
(``-n 2``) each worker runs labs of its own: roots with ``-gwN`` appended, port bases moved by 300 per worker.

Several pytest sessions may share a cluster (e.g. two checkouts tested at
once): each registers itself in ``root/holders`` and only the last one to
finish stops the cluster.

The session labs above that the collected tests use start in the background, main lab first, as soon
as the tests are collected, while the tests that need no lab run first: a clean machine installs the
lab's packages and the site venv meanwhile. Tests that need a lab wait for that start before their setup.

``HCQW_TEST_SLURM=0`` skips tests that use them. Otherwise a cluster that does
not start is a test *error* (never a silent skip): CI must notice.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar
from pathlib import Path

import pytest

from hcqw import environment
from hcqw.lab.cluster import LabCluster
from hcqw.lab.errors import LabConfigChanged, LabError
from hcqw.lab.procs import PidRecord, proc_stat
from hcqw.lab.users import ensure_owned_dir


def _worker() -> int:
    """This pytest-xdist worker's number (``gw1`` -> 1); 0 without xdist. Each worker runs labs of its own."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") and name[2:].isdigit() else 0


WORKER = _worker()
#: How far each worker's labs move their port bases: one worker's labs span 6900-7030.
WORKER_PORT_STRIDE = 300


def lab_root(variable: str, default: str) -> Path:
    """A session lab's root: ``$variable`` or ``default``, then this worker's own (``-gw1``: workers never share)."""
    return Path(os.environ.get(variable, default) + (f"-gw{WORKER}" if WORKER else ""))


def lab_port_base(variable: str, default: int) -> int:
    """A session lab's port base (its subnet and namespaces follow it): ``$variable`` or ``default``, per worker."""
    return int(os.environ.get(variable, default)) + WORKER * WORKER_PORT_STRIDE


MAIN_ROOT = lab_root(environment.TEST_LAB_DIR, "/tmp/hcqw-pytest-lab")
MAIN_PORT_BASE = lab_port_base(environment.TEST_LAB_PORT, 6900)
C2_ROOT = lab_root(environment.TEST_LAB_C2_DIR, "/tmp/hcqw-pytest-lab-c2")
C2_PORT_BASE = lab_port_base(environment.TEST_LAB_C2_PORT, 6950)
C2_NAME = "qpuside"
#: Seconds a session lab's daemons may take to start: the first start of an accounting lab initialises MariaDB,
#: and the tests that need no lab load the machine meanwhile.
UP_TIMEOUT = 180
# 7000..7010: the 6900-6999 range of the other lab fixtures has no 11 free ports left.
ACCT_ROOT = lab_root(environment.TEST_LAB_ACCT_DIR, "/tmp/hcqw-pytest-lab-usage")
ACCT_PORT_BASE = lab_port_base(environment.TEST_LAB_ACCT_PORT, 7000)
STAGED_ROOT = lab_root(environment.TEST_LAB_STAGED_DIR, "/tmp/hcqw-pytest-lab-staged")
STAGED_PORT_BASE = lab_port_base(environment.TEST_LAB_STAGED_PORT, 7020)
#: The staged lab's Gres=qpu count: two nodes staged behind an executing one (tests/hetjob/test_staging.py).
STAGING_DEPTH = 3


def _skip_if_disabled() -> None:
    if os.environ.get(environment.TEST_SLURM) == "0":
        pytest.skip("SLURM lab tests disabled (HCQW_TEST_SLURM=0)")


def _holder_file(lab: LabCluster) -> Path:
    return lab.root / "holders" / str(os.getpid())


def _register(lab: LabCluster) -> None:
    """Register this session as a user of the cluster (before it starts: a concurrent session's end keeps it)."""
    holder = _holder_file(lab)
    lab.secure_root()  # before root writes anything there
    holder.parent.mkdir(parents=True, exist_ok=True)
    stat = proc_stat(os.getpid())
    tmp = holder.with_name(f"{holder.name}.tmp")
    tmp.write_text(f"{os.getpid()} {stat.start_time if stat else 0}\n")
    tmp.replace(holder)  # atomic: a concurrent _release never reads half a file


def _up(lab: LabCluster) -> None:
    try:
        lab.up(timeout=UP_TIMEOUT)
    except LabConfigChanged:
        # A crashed earlier session left the cluster running with another configuration
        # (e.g. older hcqw). These roots belong to the test suite: restart it.
        lab.down()
        lab.up(timeout=UP_TIMEOUT)


def _start(lab: LabCluster) -> None:
    """Register this session as a user of the cluster, then bring it up."""
    _register(lab)
    _up(lab)


def _release(lab: LabCluster) -> None:
    """Unregister this session; stop the cluster unless another live session still uses it."""
    _holder_file(lab).unlink(missing_ok=True)
    for other in (lab.root / "holders").glob("*"):
        if other.name.endswith(".tmp"):
            continue
        try:
            parts = other.read_text().split()
        except FileNotFoundError:
            continue
        if len(parts) == 2 and PidRecord(int(parts[0]), int(parts[1])).is_running():
            return
        other.unlink(missing_ok=True)  # a crashed session
    lab.down()


#: The session's shared labs, by fixture: started once, by the first test that needs them or in the
#: background before (see ``_EarlyStart``), and stopped when the last session using them ends.
SESSION_LABS: dict[str, Callable[[], LabCluster]] = {
    "slurm_lab": lambda: LabCluster(MAIN_ROOT, port_base=MAIN_PORT_BASE),
    "slurm_lab_c2": lambda: LabCluster(C2_ROOT, name=C2_NAME, port_base=C2_PORT_BASE, cpu_nodes=1, qpu_nodes=1),
    "slurm_lab_acct": lambda: LabCluster(ACCT_ROOT, name="usageacct", port_base=ACCT_PORT_BASE, cpu_nodes=2,
                                         accounting=True),
    "slurm_lab_staged": lambda: LabCluster(STAGED_ROOT, name="staged", port_base=STAGED_PORT_BASE, cpu_nodes=2,
                                           qpu_nodes=1, staging_depth=STAGING_DEPTH),
}


def needs_lab(item: pytest.Item) -> bool:
    """Whether ``item`` needs a lab cluster: it is marked ``slurm`` or uses a fixture whose name ends in ``_lab``
    (or a session lab's)."""
    names = getattr(item, "fixturenames", ())
    return item.get_closest_marker("slurm") is not None or any(n in SESSION_LABS or n.endswith("_lab") for n in names)


class _EarlyStart:
    """The start of the session labs its tests use, one after the other in a child process (``python -m
    hcqw.lab.pytest_plugin <fixture>...``), from collection on, while the tests that need no lab run. A child, not a
    thread: the tests running meanwhile change ``os.environ``. Its failure is the fixture's to report: the
    fixture's own ``up()`` meets it again and names what to do."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.started: set[str] = set()  # the fixtures whose lab this session registered for early
        self.set_up: set[str] = set()  # the fixtures set up since (they release their lab themselves)

    def begin(self, fixtures: list[str]) -> None:
        if os.geteuid() != 0:
            return  # the fixture's up() says why a lab needs root
        for name in fixtures:
            try:
                _register(SESSION_LABS[name]())  # ours from now on: another session ending meanwhile leaves it up
            except (LabError, OSError):
                continue  # a root another user prepared, say: the fixture reports it
            self.started.add(name)
        if self.started:
            self.proc = subprocess.Popen([sys.executable, "-m", "hcqw.lab.pytest_plugin",
                                          *[name for name in fixtures if name in self.started]],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self) -> None:
        """Let the background start end, however it ends."""
        if self.proc is not None:
            self.proc.wait()

    def fixture_setup(self, name: str) -> None:
        self.wait()
        self.set_up.add(name)

    def finish(self) -> None:
        """At the session's end: release the labs started early that no test set up."""
        self.wait()
        for name in sorted(self.started - self.set_up):
            _release(SESSION_LABS[name]())


_early = _EarlyStart()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need no lab first, otherwise in their collected order (a stable sort: deterministic)."""
    items.sort(key=needs_lab)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the session labs the collected tests use, main lab first, in the background."""
    if session.config.option.collectonly or os.environ.get(environment.TEST_SLURM) == "0":
        return
    used = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    _early.begin([name for name in SESSION_LABS if name in used])


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test that needs a lab waits for the background start: labs starting side by side would install
    packages at once (one dpkg lock), and a start competes with the test for the two cores."""
    if needs_lab(item):
        _early.wait()


def pytest_sessionfinish() -> None:
    _early.finish()


def _start_early(fixtures: list[str]) -> None:
    """The child process of ``_EarlyStart``: start these session labs (their holder is the parent session)."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in fixtures:
        try:
            _up(SESSION_LABS[name]())
        except Exception:  # noqa: BLE001 - the fixture tries again and reports it; the other labs still start
            logging.exception("could not start %s early", name)


@pytest.fixture(scope="session")
def slurm_lab() -> Iterator[LabCluster]:
    """The session's main lab cluster; SLURM_CONF in os.environ points at it."""
    _skip_if_disabled()
    _early.fixture_setup("slurm_lab")
    lab = SESSION_LABS["slurm_lab"]()
    try:
        _start(lab)
    except BaseException:
        _release(lab)
        raise
    saved = {key: os.environ.get(key) for key in lab.env}
    os.environ.update(lab.env)
    try:
        yield lab
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _release(lab)


@pytest.fixture(scope="session")
def slurm_lab_c2() -> Iterator[LabCluster]:
    """A second, independent site ("qpuside", 1 cpu and 1 qpu host); use ``slurm_lab_c2.env`` explicitly."""
    yield from _session_lab("slurm_lab_c2")


@pytest.fixture(scope="session")
def slurm_lab_acct() -> Iterator[LabCluster]:
    """A site in accounting mode (MariaDB + slurmdbd, fair share and gres/qpu billing, an account per user; 2 cpu
    and 2 qpu hosts), one for every test of the session that needs accounting; use ``slurm_lab_acct.env``.

    Its accounting database outlives the cluster and the tests share it: select jobs by id or by a period
    that starts with the test."""
    yield from _session_lab("slurm_lab_acct")


@pytest.fixture(scope="session")
def slurm_lab_staged() -> Iterator[LabCluster]:
    """A site that stages quantum nodes: one qpu host with ``Gres=qpu:3`` whose resident service runs with
    ``--exclusive-sessions`` (``hcqw lab up --staging-depth 3``), and two cpu hosts; use ``slurm_lab_staged.env``."""
    yield from _session_lab("slurm_lab_staged")


def _session_lab(fixture: str) -> Iterator[LabCluster]:
    _skip_if_disabled()
    _early.fixture_setup(fixture)
    lab = SESSION_LABS[fixture]()
    try:
        _start(lab)
        yield lab
    finally:
        _release(lab)


def make_user_dir(lab: LabCluster, user: str, label: str) -> Path:
    """A new directory ``<home>/tests/<label>-<random>`` in ``user``'s lab home, theirs alone (0700).

    For fixtures of a wider scope than ``lab_user_dir``'s; the caller removes it."""
    path = lab.home(user) / "tests" / f"{label[:60]}-{uuid.uuid4().hex[:8]}"
    ensure_owned_dir(path.parent, user, 0o700)
    ensure_owned_dir(path, user, 0o700)
    return path


def user_dirs(lab: LabCluster, label: str) -> Iterator[Callable[[str], Path]]:
    """A factory of ``make_user_dir(lab, user, label)`` directories, removed afterwards; for fixtures:
    ``yield from user_dirs(lab, request.node.name)``."""
    made: list[Path] = []

    def make(user: str) -> Path:
        made.append(make_user_dir(lab, user, label))
        return made[-1]

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def lab_user_dir(slurm_lab: LabCluster, request: pytest.FixtureRequest) -> Iterator[Callable[[str], Path]]:
    """A factory: ``lab_user_dir(user)`` is a new directory in ``user``'s lab home, theirs alone (0700)."""
    yield from user_dirs(slurm_lab, request.node.name)


T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition", pause: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy and return that; fail the test after ``timeout`` s.

    For tests against the lab cluster, whose daemons and jobs change state asynchronously."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(pause)
    return value


@contextlib.contextmanager
def controller_down(lab: LabCluster) -> Iterator[None]:
    """slurmctld of ``lab`` stopped (SIGTERM) for the ``with`` block and started again after it, also when
    the block fails: a controller outage, as while a site restarts or fails over slurmctld."""
    os.kill(lab.daemon_pids()["slurmctld"], signal.SIGTERM)
    try:
        wait_for(lambda: lab.daemon_pids()["slurmctld"] is None, 30, "slurmctld to stop")
        yield
    finally:
        lab.up()


def during_controller_outage(lab: LabCluster, call: Callable[[], T], outage: float = 12.0) -> T:
    """``call()`` in a thread while slurmctld is down for ``outage`` s (longer than a SLURM client's own connect
    retries, ~9 s): it must wait for the controller, not fail; its value."""
    outcome: dict[str, object] = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as err:  # noqa: BLE001 - reported by the test
            outcome["error"] = err

    thread = threading.Thread(target=run)
    with controller_down(lab):
        thread.start()
        time.sleep(outage)
        assert thread.is_alive(), outcome  # still waiting for the controller
    thread.join(240)
    assert not thread.is_alive() and "error" not in outcome, outcome
    return outcome["value"]  # type: ignore[return-value]


if __name__ == "__main__":
    _start_early(sys.argv[1:])
