"""A step's hold of the local device (hcqw.device.hold), with real processes, flocks and qsimcirq:
held from the step's start to its end; its first ``open_qpu`` lease is the hold and closing it
frees the device while the step runs on; nothing a killed holder or step leaves keeps the device."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cirq
import pytest

from hcqw.device import LocalDevice
from hcqw.device.backend import SIMULATORS, make_backend
from hcqw.device.hold import call_held, hold_command
from hcqw.environment import DEVICE_HOLD
from hcqw.lab.pytest_plugin import wait_for
from hcqw.metrics import MetricsLog, read_events
from hcqw.qpu import open_qpu
from tests.support import ROOT

WAIT = 120  # s; generous bounds on waits for other processes, never an expected duration

# A step: marks that it runs, optionally uses open_qpu (once, or twice), then waits for the test's go.
STEP = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    import cirq
    from hcqw.device import LocalDevice
    from hcqw.qpu import open_qpu

    out, leases = Path(sys.argv[1]), int(sys.argv[2])
    report = {"pid": os.getpid(), "started": time.time(), "queues": []}
    q = cirq.LineQubit(0)
    for _ in range(leases):
        with open_qpu(workflow="wf", node=out.name) as qpu:
            report["queues"].append(LocalDevice("qsim").queue())  # who holds, while this lease is open
            qpu.run(cirq.Circuit(cirq.X(q), cirq.measure(q, key="m")), repetitions=5)
    report["closed"] = time.time()
    out.with_suffix(".tmp").write_text(json.dumps(report))
    os.replace(out.with_suffix(".tmp"), out.with_suffix(".json"))  # the test polls for it: never half-written
    while not out.with_suffix(".go").exists():
        time.sleep(0.02)
""")


def start_step(tmp_path: Path, name: str, leases: int = 0) -> subprocess.Popen:
    argv = hold_command("qsim", "wf", name, tmp_path / "qpu.jsonl") + [sys.executable, "-c", STEP,
                                                                        str(tmp_path / name), str(leases)]
    return subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(ROOT)})


def report(tmp_path: Path, name: str) -> dict | None:
    path = tmp_path / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def holders() -> list[str]:
    return [entry["node"] for entry in LocalDevice("qsim").queue()]


def test_a_step_holds_the_device_from_its_start_to_its_end(tmp_path):
    first = start_step(tmp_path, "s1")
    wait_for(lambda: report(tmp_path, "s1"), WAIT, "step s1 to run")
    second = start_step(tmp_path, "s2")
    wait_for(lambda: holders() == ["s1", "s2"], WAIT, "s2 to queue behind s1")
    assert report(tmp_path, "s2") is None  # s1 never opened a lease, yet s2 waits for all of it
    (tmp_path / "s1.go").touch()
    assert first.wait(WAIT) == 0
    wait_for(lambda: report(tmp_path, "s2"), WAIT, "step s2 to run")
    (tmp_path / "s2.go").touch()
    assert second.wait(WAIT) == 0
    assert holders() == []
    holds = {e["node"]: e for e in read_events(tmp_path / "qpu.jsonl", "hold")}
    assert holds["s1"]["start"] <= report(tmp_path, "s1")["started"]  # held before the step began
    assert holds["s1"]["end"] <= holds["s2"]["start"] <= report(tmp_path, "s2")["started"]
    assert list((LocalDevice("qsim").directory / "holds").iterdir()) == []  # channels cleaned up


def test_the_steps_lease_is_the_hold_and_closing_it_frees_the_device_while_the_step_runs(tmp_path):
    step = start_step(tmp_path, "s1", leases=1)
    done = wait_for(lambda: report(tmp_path, "s1"), WAIT, "the step to close its lease")
    assert [[entry["pid"] for entry in queue] for queue in done["queues"]] == [[step.pid]]  # no second ticket
    # The step still runs (it waits for its go), and the device is free for anyone else.
    with LocalDevice("qsim").acquire("other", "o1", timeout=WAIT):
        assert step.poll() is None
    (tmp_path / "s1.go").touch()
    assert step.wait(WAIT) == 0
    holds = list(read_events(tmp_path / "qpu.jsonl", "hold"))
    assert len(holds) == 1  # recorded once, by the lease, from the start of the hold
    assert holds[0]["start"] <= done["started"] <= holds[0]["end"] <= done["closed"]


def test_a_later_lease_of_the_step_queues_like_any_other(tmp_path):
    step = start_step(tmp_path, "s1", leases=2)
    done = wait_for(lambda: report(tmp_path, "s1"), WAIT, "the step's two leases")
    (tmp_path / "s1.go").touch()
    assert step.wait(WAIT) == 0
    hold_ticket, own_ticket = ([entry["pid"] for entry in queue] for queue in done["queues"])
    assert hold_ticket == [step.pid] and own_ticket == [done["pid"]]  # the holder's ticket, then its own


def test_a_killed_step_or_holder_never_keeps_the_device(tmp_path):
    step = start_step(tmp_path, "s1")
    wait_for(lambda: report(tmp_path, "s1"), WAIT, "the step to run")
    os.kill(report(tmp_path, "s1")["pid"], signal.SIGKILL)
    assert step.wait(WAIT) == -signal.SIGKILL  # the holder ends as its step did...
    assert holders() == []  # ...and freed the device

    holder = start_step(tmp_path, "s2")
    wait_for(lambda: report(tmp_path, "s2"), WAIT, "the second step to run")
    holder.kill()  # no clean-up at all: the kernel drops the ticket's flock
    holder.wait()
    try:
        with LocalDevice("qsim").acquire("other", "o1", timeout=WAIT):
            pass
        (orphan,) = (LocalDevice("qsim").directory / "holds").iterdir()  # the killed holder's channel
        third = start_step(tmp_path, "s3")  # the next hold clears it
        wait_for(lambda: report(tmp_path, "s3"), WAIT, "the third step to run")
        channels = list((LocalDevice("qsim").directory / "holds").iterdir())
        assert len(channels) == 1 and orphan not in channels
        (tmp_path / "s3.go").touch()
        assert third.wait(WAIT) == 0
    finally:
        os.kill(report(tmp_path, "s2")["pid"], signal.SIGKILL)


def test_an_in_process_step_hands_back_its_hold_and_runs_on(tmp_path):
    """``call_held``, as a Parsl worker runs a qpu app."""
    device, metrics = LocalDevice("qsim"), MetricsLog(tmp_path / "qpu.jsonl")

    def app(x: int) -> dict:
        qubit = cirq.LineQubit(0)
        with open_qpu(workflow="wf", node="app") as qpu:
            held = [entry["pid"] for entry in device.queue()]
            qpu.run(cirq.Circuit(cirq.X(qubit), cirq.measure(qubit, key="m")), repetitions=5)
        wait_for(lambda: device.queue() == [], WAIT, "the hold to be handed back")
        return {"x": x, "held": held, "inside": DEVICE_HOLD in os.environ}

    result = call_held(device, "wf", "app", metrics, app, 3)
    assert result == {"x": 3, "held": [os.getpid()], "inside": True}
    assert DEVICE_HOLD not in os.environ
    assert [e["node"] for e in metrics.events("hold")] == ["app"]


def test_an_app_that_never_opens_a_lease_is_held_until_it_returns(tmp_path):
    device, metrics = LocalDevice("qsim"), MetricsLog(tmp_path / "qpu.jsonl")
    seen = call_held(device, "wf", "direct", metrics, lambda: [entry["node"] for entry in device.queue()])
    assert seen == ["direct"] and device.queue() == []
    assert [e["node"] for e in metrics.events("hold")] == ["direct"]


def test_a_registered_simulator_is_loaded_on_first_use_only(tmp_path):
    """A holder only queues: it never pays for importing the simulator."""
    probe = ("import sys; from hcqw.device import LocalDevice; d = LocalDevice('qsim', directory=sys.argv[1]); "
             "d.acquire('wf', 'n').close(); print('qsimcirq' in sys.modules, d.backend.name, 'qsimcirq' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "dev")], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=WAIT)
    assert out.stdout.split() == ["False", "qsim", "True"], out.stderr
    for name in SIMULATORS:  # the lazy device's name is the simulator's own
        assert make_backend(name).name == name


@pytest.mark.parametrize("value", ["not json", '{"channel": "/x"}', "[]"])
def test_a_malformed_hold_variable_is_refused_by_name(monkeypatch, value):
    from hcqw.errors import DeviceError

    monkeypatch.setenv(DEVICE_HOLD, value)
    with pytest.raises(DeviceError, match=f"\\${DEVICE_HOLD} is not a device hold.*unset it"):
        open_qpu()


# A fused step whose quantum part had nothing to run: it gives the hold back without ever opening a lease.
RELEASE_STEP = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hcqw.qpu import current_device

    out = Path(sys.argv[1])
    current_device().release()
    out.with_suffix(".released").write_text(str(time.time()))
    while not out.with_suffix(".go").exists():
        time.sleep(0.02)
""")


def test_a_step_that_releases_its_hold_without_a_lease_frees_the_device_while_it_runs_on(tmp_path):
    argv = hold_command("qsim", "wf", "s1", tmp_path / "qpu.jsonl") + [sys.executable, "-c", RELEASE_STEP,
                                                                        str(tmp_path / "s1")]
    step = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wait_for(lambda: (tmp_path / "s1.released").exists(), WAIT, "s1 to release its hold")
    wait_for(lambda: holders() == [], WAIT, "the device to be free while s1 runs on")
    assert step.poll() is None
    go_at = time.time()
    (tmp_path / "s1.go").touch()
    assert step.wait(WAIT) == 0
    (hold,) = [e for e in read_events(tmp_path / "qpu.jsonl", "hold") if e["node"] == "s1"]
    assert hold["start"] <= hold["end"] <= go_at  # the hold was recorded, and ended while the step still ran
