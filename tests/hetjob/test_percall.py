"""Per-call holding (``hcqw.hetjob.percall``): the provider's choice, its jobs, and unsplit drivers on the lab.

The lab test runs ``tests/hetjob/percall_driver.py`` -- quantum calls separated by classical sleeps,
nothing in it about SLURM -- as hcqw-alice and hcqw-bob at once through ``hcqw slurm submit``, and
checks SLURM's own job records: a qpu job per call, none between a driver's calls, and the two
users' calls taking turns on one qpu host.
"""

from __future__ import annotations

import json
import shlex
import statistics
import time
import uuid
from pathlib import Path

import pytest

from hcqw import environment
from hcqw.errors import DeviceError
from hcqw.hetjob.percall import PerCallDevice, PerCallSettings, call_request, driver_request
from hcqw.lab.users import USERS
from hcqw.qpu import current_device, local_simulator
from hcqw.slurm import ComponentSpec, SlurmSettingsError
from hcqw.lab.pytest_plugin import wait_for
from tests.support.lab_jobs import DONE, run, wait_done
from tests.support.per_call import (PERCALL_DRIVER, as_both_users, assert_calls_held_per_call, assert_turns,
                                    call_jobs, on_host, submit_driver)

ALICE, BOB = USERS
CALLS = 3
PAUSE_S = 3.0  # classical work between calls: longer than SLURM's 1 s time resolution plus a release


# -- the provider's choice and its jobs (pure logic) ----------------------------------------------------------------

def test_per_call_mode_chooses_the_per_call_provider_with_its_settings(tmp_path):
    env = {environment.DEVICE: environment.PER_CALL, environment.PER_CALL_PARTITION: "quantum",
           environment.PER_CALL_GRES: "qpu:2", environment.PER_CALL_OPTIONS: "--nodelist=q1 --exclusive",
           environment.PER_CALL_SERVICE: "ipc:///run/hcqw/%n/qpu.ipc", environment.PER_CALL_DIR: str(tmp_path)}
    device = current_device(env)
    assert isinstance(device, PerCallDevice)
    assert device.settings == PerCallSettings(partition="quantum", gres="qpu:2", options=("--nodelist=q1", "--exclusive"),
                                              service="ipc:///run/hcqw/%n/qpu.ipc", call_dir=tmp_path)
    assert local_simulator(env) is None  # no engine holds a local device for it
    defaults = current_device({environment.DEVICE: environment.PER_CALL}).settings
    assert (defaults.partition, defaults.gres, defaults.options, defaults.service) == ("qpu", "qpu:1", (), None)


def test_requesting_ahead_is_a_yes_or_no_setting_passed_on_to_the_driver(tmp_path):
    per_call = {environment.DEVICE: environment.PER_CALL}
    assert not current_device(per_call).settings.ahead
    assert not current_device({**per_call, environment.PER_CALL_AHEAD: "0"}).settings.ahead
    assert current_device({**per_call, environment.PER_CALL_AHEAD: "1"}).settings.ahead
    # open_qpu asks for the device at every call: the same provider, so the next call finds the job requested ahead
    assert current_device({**per_call, environment.PER_CALL_AHEAD: "1"}) is current_device({**per_call,
                                                                                          environment.PER_CALL_AHEAD: "1"})
    with pytest.raises(DeviceError, match=r"HCQW_PER_CALL_AHEAD is 'soon': set it to 1"):
        current_device({**per_call, environment.PER_CALL_AHEAD: "soon"})
    settings = PerCallSettings(call_dir=tmp_path, ahead=True)
    request = driver_request(["python", "vqe.py"], workflow="wf", run_dir=tmp_path, cwd=tmp_path, cpu=ComponentSpec("cpu"),
                             settings=settings)
    assert current_device(request.environment).settings == settings


def test_a_quantum_jobs_own_gateway_comes_before_per_call():
    from hcqw.hetjob.device import GatewayDevice

    env = {environment.DEVICE: environment.PER_CALL, environment.GATEWAY_ADDRESS_FILE: "/x/gateway.address"}
    assert isinstance(current_device(env), GatewayDevice)


def test_an_unknown_device_mode_is_refused_by_name():
    with pytest.raises(DeviceError, match=r"HCQW_DEVICE is 'percall': use 'per-call'"):
        current_device({environment.DEVICE: "percall"})


def test_a_calls_job_is_the_gateway_relaying_and_releasing_its_own_job(tmp_path):
    settings = PerCallSettings(service="ipc:///h/%n/qpu.ipc", options=("--nodelist=q1",), python="/site/python")
    request = call_request(settings, "wf", "driver", tmp_path, tmp_path / "gateway.jsonl")
    assert request.job_name == "hcqw:wf:driver" and not request.is_hetjob  # the lease's names: `hcqw usage` matches
    assert request.components[0].wants_qpu and request.components[0].extra == ("--nodelist=q1",)
    assert "exec /site/python -m hcqw.hetjob.gateway" in request.body
    assert '--release-job "$SLURM_JOB_ID"' in request.body and "--upstream ipc:///h/%n/qpu.ipc " in request.body
    assert f"--address-file {tmp_path}/gateway.address" in request.body


def test_options_hcqw_sets_itself_are_refused_in_a_calls_options(tmp_path):
    with pytest.raises(SlurmSettingsError, match="--gres is not allowed"):
        call_request(PerCallSettings(options=("--gres=qpu:2",)), "wf", "driver", tmp_path)
    with pytest.raises(DeviceError, match=r"HCQW_PER_CALL_OPTIONS: --gres is not allowed.*variables of their own"):
        current_device({environment.DEVICE: environment.PER_CALL, environment.PER_CALL_OPTIONS: "--gres=qpu:2"})


def test_the_driver_job_selects_per_call_holding(tmp_path):
    settings = PerCallSettings(call_dir=tmp_path / "jobs", service="ipc:///h/%n/qpu.ipc")
    request = driver_request(["/site/python", "/home/a/vqe.py", "--x", "1"], workflow="wf", run_dir=tmp_path,
                             cwd=Path("/home/a"), cpu=ComponentSpec("cpu"), settings=settings)
    env = request.environment
    assert env[environment.DEVICE] == environment.PER_CALL and env[environment.PER_CALL_DIR] == str(tmp_path / "jobs")
    assert env[environment.PER_CALL_SERVICE] == "ipc:///h/%n/qpu.ipc" and env[environment.WORKFLOW] == "wf"
    assert current_device(env).settings == settings  # what the driver's open_qpu will read
    assert not any(c.wants_qpu for c in request.components)  # the driver itself holds no qpu
    assert "/site/python /home/a/vqe.py --x 1 &" in request.body
    assert "--name=hcqw:wf:driver " in request.body  # left-over calls are cancelled when it ends
    assert request.job_name == "hcqw:wf:driver.driver"  # ... and the driver's own job is named apart


# -- on the lab ---------------------------------------------------------------------------------------------------------

@pytest.mark.slurm
def test_two_users_unsplit_drivers_hold_the_qpu_per_call_and_take_turns(slurm_lab, lab_user_dir):
    lab = slurm_lab
    qpu_host = lab.layout.qpu_node_names[0]
    driver = str(lab.site.src / PERCALL_DRIVER)

    def submit(user: str) -> dict:
        home = lab_user_dir(user)
        workflow = f"percall-{user}-{uuid.uuid4().hex[:6]}"  # records stay for MinJobAge: one run's own
        done = submit_driver(lab, user, home, workflow, driver, str(home / "calls.jsonl"), str(CALLS), str(PAUSE_S),
                             call_options=(f"--nodelist={qpu_host}",))
        return {"home": home, "workflow": workflow, "done": done}

    runs = as_both_users(submit)

    for user, r in runs.items():
        output = "\n".join(p.read_text() for p in (r["home"] / "runs" / r["workflow"] / "slurm").glob("*.out"))
        assert r["done"].returncode == 0, f"{user}: {r['done'].stdout}{r['done'].stderr}\n{output[-3000:]}"
        r["calls"] = [json.loads(line) for line in (r["home"] / "calls.jsonl").read_text().splitlines()]
        r["jobs"] = call_jobs(r["workflow"])
        assert len(r["calls"]) == CALLS

    for user, r in runs.items():
        assert_calls_held_per_call(user, r["jobs"], r["calls"], {qpu_host})

    # The same seeded calls give the same samples whoever runs them.
    assert [c["samples"] for c in runs[ALICE]["calls"]] == [c["samples"] for c in runs[BOB]["calls"]]

    # One qpu host, the two users' calls in turn: one job at a time, and each user's calls with the other's between.
    assert_turns([job for user, r in runs.items() for job in on_host(user, r["jobs"])])

    # What acquiring costs: call start (lease asked for) -> first result, per call, as the driver saw it.
    costs = sorted(c["result"] - c["begin"] for r in runs.values() for c in r["calls"])
    print(f"per-call submit-to-first-result over {len(costs)} calls: median {statistics.median(costs):.2f} s, "
          f"min {costs[0]:.2f} s, max {costs[-1]:.2f} s")


@pytest.mark.slurm
def test_the_same_driver_on_the_submit_host_and_in_a_plain_sbatch_job_holds_per_call(slurm_lab, lab_user_dir):
    """The documented launch without ``hcqw slurm submit``: the variables set by hand (README, "Per-call")."""
    lab = slurm_lab
    qpu_host = lab.layout.qpu_node_names[0]
    python, driver = lab.site.bin / "python", lab.site.src / "tests" / "hetjob" / "percall_driver.py"
    per_call = {environment.DEVICE: environment.PER_CALL,
                environment.PER_CALL_SERVICE: lab.layout.qpu_service_address_pattern,
                environment.PER_CALL_OPTIONS: f"--nodelist={qpu_host}"}
    alice, bob = lab_user_dir(ALICE), lab_user_dir(BOB)
    in_sbatch, on_host_wf = (f"{where}-{uuid.uuid4().hex[:6]}" for where in ("in-sbatch", "on-host"))
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in {**per_call, environment.WORKFLOW: in_sbatch}.items())
    script = f"#!/bin/bash\n#SBATCH -p cpu -t 10 -o {bob}/job.out\n{exports}{python} {driver} {bob}/calls.jsonl 2 {PAUSE_S}\n"
    submitted = lab.exec(BOB, ["sbatch", "--parsable"], cwd=bob, input=script, capture_output=True, text=True)
    assert submitted.returncode == 0, submitted.stderr
    on_host = lab.exec(ALICE, [str(python), str(driver), str(alice / "calls.jsonl"), "2", str(PAUSE_S)], cwd=alice,
                       env={**per_call, environment.WORKFLOW: on_host_wf}, capture_output=True, text=True, timeout=300)
    assert on_host.returncode == 0, on_host.stderr[-3000:]
    job = submitted.stdout.strip()
    assert wait_done(job, timeout=300)[job] == "COMPLETED", (bob / "job.out").read_text()[-3000:]
    for user, workflow, home in ((ALICE, on_host_wf, alice), (BOB, in_sbatch, bob)):
        calls = [json.loads(line) for line in (home / "calls.jsonl").read_text().splitlines()]
        assert len(calls) == 2
        assert_calls_held_per_call(user, call_jobs(workflow), calls, {qpu_host})


@pytest.mark.slurm
def test_cancelling_the_driver_mid_call_releases_the_calls_qpu_job(slurm_lab, lab_user_dir):
    """The QPU is never left held: ``scancel`` of the driver's job while a call holds the device ends that call's job."""
    lab = slurm_lab
    home = lab_user_dir(ALICE)
    workflow = f"percall-cancel-{uuid.uuid4().hex[:6]}"
    submitted = submit_driver(lab, ALICE, home, workflow, str(lab.site.src / PERCALL_DRIVER),
                              str(home / "calls.jsonl"), "1", "0", "300", wait=False, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.split("driver job ")[1].split(",")[0]
    output = home / "runs" / workflow / "slurm" / f"driver-{job}.out"
    wait_for(lambda: output.exists() and "in call" in output.read_text(), 120, "the driver's call to hold the qpu")
    (held,) = call_jobs(workflow)
    assert held["JobState"] == "RUNNING"
    run(["scancel", job])
    cancelled_at = time.time()
    wait_for(lambda: all(j["JobState"] in DONE for j in call_jobs(workflow)), 30, "the call's qpu job to end")
    print(f"call job ended {time.time() - cancelled_at:.2f} s after scancel of the driver")


@pytest.mark.slurm
def test_a_killed_driver_rerun_replays_its_finished_calls_and_refuses_another_command_line(slurm_lab, lab_user_dir):
    """Resume by replay: the re-run (same workflow id) gets the finished calls' results without a qpu job."""
    lab = slurm_lab
    home = lab_user_dir(BOB)
    workflow = f"percall-replay-{uuid.uuid4().hex[:6]}"
    driver = str(lab.site.src / PERCALL_DRIVER)

    def submit(*args: str, env: dict[str, str] | None = None):
        return submit_driver(lab, BOB, home, workflow, driver, str(home / "calls.jsonl"), *args, env=env, timeout=300)

    killed = submit("3", "1", env={"PERCALL_DRIVER_DIE_AFTER": "2"})  # SIGKILL right after call 2 closed
    assert killed.returncode == 1 and "failed" in killed.stdout, killed.stdout + killed.stderr
    first = [json.loads(line) for line in (home / "calls.jsonl").read_text().splitlines()]
    assert len(first) == 2 and len(call_jobs(workflow)) == 2

    resumed = submit("3", "1")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    second = [json.loads(line) for line in (home / "calls.jsonl").read_text().splitlines()][2:]
    assert [c["samples"] for c in second[:2]] == [c["samples"] for c in first]  # replayed, bit for bit
    assert len(second) == 3 and len(call_jobs(workflow)) == 3  # only the call not yet done reached the device
    events = [json.loads(line) for line in (home / "runs" / workflow / "metrics" / "qpu.jsonl").read_text().splitlines()]
    assert [e["call"] for e in events if e["kind"] == "replay"] == [1, 2]

    other = submit("3", "2")  # another command line under the same workflow id
    assert other.returncode == 1
    out = max((home / "runs" / workflow / "slurm").glob("driver-*.out"), key=lambda path: path.stat().st_mtime)
    assert "CheckpointMismatch" in out.read_text() and "other parameters" in out.read_text()
    assert len(call_jobs(workflow)) == 3  # refused before any qpu job


@pytest.mark.slurm
def test_a_call_whose_gateway_cannot_start_fails_with_its_log_and_holds_nothing(slurm_lab, lab_user_dir):
    lab = slurm_lab
    home = lab_user_dir(ALICE)
    workflow = f"percall-broken-{uuid.uuid4().hex[:6]}"
    done = lab.exec(ALICE, [str(lab.site.bin / "python"), str(lab.site.src / "tests/hetjob/percall_driver.py"),
                            str(home / "calls.jsonl"), "1", "0"], cwd=home, capture_output=True, text=True, timeout=120,
                    env={environment.DEVICE: environment.PER_CALL, environment.WORKFLOW: workflow,
                         environment.PER_CALL_SERVICE: f"ipc:///tmp/no-such-service-{workflow}-%n.ipc"})
    assert done.returncode != 0
    assert "DeviceError: the qpu job" in done.stderr and "before its gateway was ready" in done.stderr, done.stderr
    assert "no-such-service" in done.stderr  # the gateway's own words, from its log
    (job,) = call_jobs(workflow)
    assert job["JobState"] in DONE
