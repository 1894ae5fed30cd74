"""The device interface on real simulators, and the cross-process FIFO device lock."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import cirq
import numpy as np
import pytest
import sympy

from hcqw.codec import circuit_from_json, circuit_to_json, samples_from_wire, samples_to_wire, work_item_from_wire
from hcqw.device import DeviceStatus, LocalDevice, WorkItem, make_backend
from hcqw.errors import CircuitError, DeviceError, DeviceOffline
from tests.support import ROOT

Q = cirq.LineQubit.range(3)
THETA = sympy.Symbol("theta")


def bell() -> cirq.Circuit:
    return cirq.Circuit(cirq.H(Q[0]), cirq.CNOT(Q[0], Q[1]), cirq.measure(Q[0], Q[1], key="m"))


@pytest.mark.parametrize("backend", ["qsim", "cirq"])
def test_bell_state_statistics_agree_on_both_backends(backend):
    samples = make_backend(backend, seed=3).execute([WorkItem.build(bell(), 4000)])[0][0]["m"]
    assert samples.shape == (4000, 2)
    assert np.all(samples[:, 0] == samples[:, 1])  # only 00 and 11
    assert 0.45 < samples[:, 0].mean() < 0.55


@pytest.mark.parametrize("backend", ["qsim", "cirq"])
def test_sweep_points_come_back_in_order(backend):
    circuit = cirq.Circuit(cirq.ry(THETA).on_each(*Q), cirq.measure(*Q, key="m"))
    points = make_backend(backend).execute([WorkItem.build(circuit, 50, cirq.Points("theta", [0.0, np.pi, 0.0]))])[0]
    assert [int(p["m"].sum()) for p in points] == [0, 150, 0]


def test_qsim_uses_the_available_cores_and_seed_reproduces():
    backend = make_backend("qsim", seed=5)
    assert backend.threads == len(os.sched_getaffinity(0))
    circuit = cirq.Circuit(cirq.H.on_each(*Q), cirq.measure(*Q, key="m"))
    first = backend.execute([WorkItem.build(circuit, 100)])[0][0]["m"]
    backend.reseed(5)
    again = backend.execute([WorkItem.build(circuit, 100)])[0][0]["m"]
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("item, message", [
    (lambda: WorkItem.build(cirq.Circuit(cirq.measure(*cirq.LineQubit.range(31), key="m")), 10),
     "acts on 31 qubits but device 'qsim' has 30"),
    (lambda: WorkItem.build("H 0; measure 0", 10), "expected a cirq.Circuit, got str"),
    (lambda: WorkItem.build(bell(), 0), r"repetitions=0 is outside 1\.\.1000000"),
    (lambda: WorkItem.build(bell(), -3), r"repetitions=-3 is outside"),
    (lambda: WorkItem.build(cirq.Circuit(cirq.H(Q[0])), 10), "no measurements"),
    (lambda: WorkItem.build(cirq.Circuit(cirq.ry(THETA)(Q[0]), cirq.measure(Q[0])), 10), r"unresolved parameters \['theta'\]"),
    (lambda: WorkItem.build(bell(), 10, object()), "params must be a Cirq sweepable"),
])
def test_bad_work_items_get_clear_errors(item, message):
    with pytest.raises(CircuitError, match=message):
        make_backend("qsim").execute([item()])


def test_a_bad_item_fails_the_batch_before_any_runs():
    backend = make_backend("qsim")
    with pytest.raises(CircuitError, match="work item 1"):
        backend.execute([WorkItem.build(bell(), 10), WorkItem.build(bell(), 0)])


def test_codec_round_trip_and_refusals():
    item = WorkItem.build(bell(), 10)
    assert circuit_from_json(circuit_to_json(item.circuit)) == item.circuit
    header, buffers = samples_to_wire([{"m": np.array([[0, 1], [1, 0]], dtype=np.int8)}])
    np.testing.assert_array_equal(samples_from_wire(header, buffers)[0]["m"], [[0, 1], [1, 0]])
    with pytest.raises(CircuitError, match="not valid JSON"):
        circuit_from_json("{oops")
    with pytest.raises(CircuitError, match="type 'NoSuchGate' is not accepted"):
        circuit_from_json('{"cirq_type": "NoSuchGate"}')
    with pytest.raises(CircuitError, match="type '_PauliX' is not accepted"):
        circuit_from_json(cirq.to_json(cirq.X))
    with pytest.raises(CircuitError, match="repetitions must be an integer"):
        work_item_from_wire({"circuit": circuit_to_json(bell()), "repetitions": "10"})
    with pytest.raises(ValueError, match="not an integer dtype"):
        samples_from_wire([{"m": {"dtype": "|O", "shape": [1, 1], "buffer": 0}}], [b"12345678"])
    with pytest.raises(ValueError, match="does not match"):
        samples_from_wire([{"m": {"dtype": "|i1", "shape": [4, 4], "buffer": 0}}], [b"1234"])


def test_lease_runs_circuits_records_metrics_and_refuses_work_once_closed(tmp_path):
    from hcqw.metrics import MetricsLog

    device = LocalDevice("qsim", directory=tmp_path / "dev")
    log = MetricsLog(tmp_path / "m.jsonl")
    with device.acquire("wf", "q0001", metrics=log) as qpu:
        assert device.status() is DeviceStatus.EXECUTING
        result = qpu.run(bell(), 100)[0]
        assert isinstance(result, cirq.ResultDict) and result.measurements["m"].shape == (100, 2)
    assert device.status() is DeviceStatus.IDLE
    with pytest.raises(DeviceError, match="lease of wf/q0001 is closed"):
        qpu.run(bell(), 10)
    kinds = [(e["kind"], e["workflow"], e["node"]) for e in log.events()]
    assert kinds == [("exec", "wf", "q0001"), ("hold", "wf", "q0001")]
    hold = log.events("hold")[0]
    execute = log.events("exec")[0]
    assert hold["start"] <= execute["start"] <= execute["end"] <= hold["end"]
    assert (execute["qubits"], execute["shots"]) == (2, 100)


QUEUER = textwrap.dedent("""
    import sys, time
    from hcqw.device import LocalDevice
    device = LocalDevice("cirq", directory=sys.argv[1])
    lease = device.acquire("wf", sys.argv[2])
    print("got", sys.argv[2], time.time(), flush=True)
    if sys.argv[3] == "hold":
        time.sleep(600)
    lease.close()
""")


def spawn(directory, name, mode):
    return subprocess.Popen([sys.executable, "-c", QUEUER, str(directory), name, mode], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for_queue(device, length, timeout=30):
    deadline = time.monotonic() + timeout
    while len(device.queue()) < length:
        assert time.monotonic() < deadline, f"queue never reached {length}: {device.queue()}"
        time.sleep(0.02)


def test_fifo_order_across_processes_and_a_killed_holder_frees_the_device(tmp_path):
    device = LocalDevice("cirq", directory=tmp_path)
    holder = spawn(tmp_path, "holder", "hold")
    waiters = []
    try:
        assert holder.stdout.readline().startswith("got holder")
        for i, name in enumerate(["first", "second", "third"]):
            waiters.append(spawn(tmp_path, name, "release"))
            wait_for_queue(device, i + 2)  # each joins the queue before the next starts
        assert [o["node"] for o in device.queue()] == ["holder", "first", "second", "third"]
        holder.send_signal(signal.SIGKILL)  # a dead job must not keep the device
        times = {}
        for proc in waiters:
            _, name, stamp = proc.stdout.readline().split()
            times[name] = float(stamp)
            assert proc.wait(timeout=30) == 0
        assert sorted(times, key=times.get) == ["first", "second", "third"]
        assert device.queue() == [] and device.status() is DeviceStatus.IDLE
    finally:
        for proc in [holder, *waiters]:
            proc.kill()
            proc.wait()


def test_calibrating_device_makes_work_wait_then_time_out(tmp_path):
    device = LocalDevice("cirq", directory=tmp_path)
    device.set_status("calibrating", reason="weekly calibration")
    assert device.status() is DeviceStatus.CALIBRATING
    started = time.monotonic()
    with pytest.raises(DeviceOffline, match="is calibrating"):
        device.acquire("wf", "q1", timeout=0.3)
    assert time.monotonic() - started >= 0.3
    assert device.queue() == []  # the timed-out waiter left the queue
    device.set_status("idle")
    with device.acquire("wf", "q1", timeout=5) as qpu:
        assert qpu.run(bell(), 5)


def test_queue_timeout_while_another_holds(tmp_path):
    device = LocalDevice("cirq", directory=tmp_path)
    with device.acquire("a", "q1"):
        with pytest.raises(DeviceError, match="timed out waiting in the device queue"):
            device.acquire("b", "q1", timeout=0.2)
    assert device.queue() == []


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_queue_is_private_to_its_user(tmp_path):
    device = LocalDevice("cirq", directory=tmp_path / "dev")
    with device.acquire("wf", "q1"):
        tickets = list((tmp_path / "dev" / "tickets").iterdir())
        assert len(tickets) == 1 and mode(tickets[0]) == 0o600
    assert mode(tmp_path / "dev") == mode(tmp_path / "dev" / "tickets") == 0o700
    assert mode(tmp_path / "dev" / "counter") == 0o600


@pytest.mark.parametrize("shared_mode", [0o1777, 0o777, 0o770, 0o755 | 0o020], ids=lambda m: f"{m:04o}")
def test_a_queue_directory_others_may_write_is_refused(tmp_path, shared_mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(shared_mode)
    with pytest.raises(DeviceError) as refused:
        LocalDevice("cirq", directory=shared)
    assert f"writable by other users (mode {shared_mode:04o})" in str(refused.value)
    assert f"run: chmod 700 {shared}." in str(refused.value) and "hcqw device serve" in str(refused.value)
    assert not (shared / "tickets").exists()  # refused before anything was created in it
    shared.chmod(0o755)  # readable is fine: the tickets themselves are 0600
    with LocalDevice("cirq", directory=shared).acquire("wf", "q1") as qpu:
        assert qpu.run(bell(), 5)


USERS = ("hcqw-alice", "hcqw-bob")


@pytest.fixture(scope="session")
def unix_users() -> tuple[str, ...]:
    """Two real, ordinary Unix users (the lab creates them too; created here when missing)."""
    for name in USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            if os.geteuid() != 0:
                pytest.fail(f"user {name} is missing and only root can create it")
            subprocess.run(["useradd", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", name], check=True)
    return USERS


def as_user(user: str, action) -> str:
    """Run ``action()`` in a child process that has become ``user`` (real uid/gid, no extra groups)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: modules are imported already, so nothing under /root must be read as the user
        try:
            entry = pwd.getpwnam(user)
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            outcome = f"ok: {action()}"
        except BaseException as err:  # reported to the parent, which asserts on it
            outcome = f"{type(err).__name__}: {err}"
        os.write(write_end, outcome.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    return outcome


@pytest.fixture
def reachable_dir():
    """A directory every user can reach and create in, like /tmp (pytest's own tmp dirs are root's, mode 0700)."""
    base = Path(tempfile.mkdtemp(prefix="hcqw-users-"))
    base.chmod(0o1777)
    yield base
    shutil.rmtree(base)


def test_two_users_cannot_share_one_local_queue(unix_users, reachable_dir):
    """A queue directory shared by two users is refused for both, with what to do instead."""
    alice, bob = unix_users
    base = reachable_dir
    backend = make_backend("cirq")

    def use(directory: Path):
        return lambda: LocalDevice(backend, directory=directory).acquire("wf", "q1").close() or "used"

    assert as_user(alice, use(base / "alice")) == "ok: used"
    assert mode(base / "alice") == 0o700
    refused = as_user(bob, use(base / "alice"))  # bob pointing HCQW_DEVICE_DIR at alice's queue
    assert refused.startswith("DeviceError") and f"belongs to {alice}, not to you ({bob})" in refused
    assert "hcqw device serve" in refused and "HCQW_DEVICE_ADDRESS" in refused

    def make_shared() -> str:  # what the README once advised: one world-writable directory for everyone
        (base / "shared").mkdir()
        (base / "shared").chmod(0o1777)
        return "made"

    assert as_user(alice, make_shared) == "ok: made"
    for user, reason in ((alice, "writable by other users (mode 1777)"), (bob, f"belongs to {alice}")):
        outcome = as_user(user, use(base / "shared"))
        assert outcome.startswith("DeviceError") and reason in outcome, (user, outcome)
