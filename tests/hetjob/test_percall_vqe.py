"""Per-call holding with the front door's Qiskit VQE, and a driver's job cancelled at a random call, on the lab.

- examples/qiskit_vqe (EstimatorV2 in scipy's COBYLA, every energy one ``Estimator.run``, one call) runs
  unchanged as a per-call driver (``hcqw slurm submit``) by hcqw-alice and hcqw-bob at once: both print the
  energy of the embedded run with the same seed, their calls' qpu jobs take turns on one qpu host, interleaved,
  and each job lies within its call as the driver's metrics record it (acquire: the job asked for; release: the
  call returned and the job was cancelled), so the qpu host is allocated to a driver only during its calls.
- ``scancel`` of a per-call driver's job while a call chosen by a seeded RNG holds the QPU (``HCQW_TEST_SEED``,
  logged): the re-run under the same workflow id ends with the samples of an uninterrupted run, bit for bit,
  replays the finished calls and submits a qpu job only for the calls not yet done.
"""

from __future__ import annotations

import logging
import os
import random
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hcqw.lab.pytest_plugin import wait_for
from hcqw.metrics import read_events
from tests.support import ROOT
from tests.support.lab_jobs import DONE, run, wait_done
from tests.support.lab_user import BOB
from tests.support.per_call import (PERCALL_DRIVER, SLURM_RESOLUTION_S, as_both_users, assert_turns, call_jobs,
                                    embedded_calls, on_host, read_calls, stamp, submit_driver)

log = logging.getLogger(__name__)
SEED = 7
MAXITER = 12  # COBYLA's energies per run: the test's length, not the example's code path (--maxiter)
EXAMPLE = "examples/qiskit_vqe/__main__.py"
REPORT = re.compile(r"^VQE energy .*$", re.MULTILINE)


@pytest.fixture(scope="module")
def embedded_vqe(tmp_path_factory) -> subprocess.CompletedProcess:
    """The example on the embedded default, same seed and iterations: the energy line and exit code to match."""
    home = tmp_path_factory.mktemp("embedded-vqe")
    env = {**os.environ, "HCQW_STATE_DIR": str(home / "state"), "HCQW_CHECKPOINT_KEY": str(home / "key"),
           "PYTHONPATH": str(ROOT)}
    env.pop("HCQW_DEVICE", None)
    return subprocess.run([sys.executable, str(ROOT / EXAMPLE), "--seed", str(SEED), "--maxiter", str(MAXITER)],
                          env=env, capture_output=True, text=True, timeout=300)


def driver_output(home: Path, workflow: str) -> str:
    return "\n".join(p.read_text() for p in sorted((home / "runs" / workflow / "slurm").glob("driver-*.out")))


@pytest.mark.slurm
def test_two_users_qiskit_vqe_unchanged_per_call_interleave_on_one_qpu_held_only_in_calls(slurm_lab, lab_user_dir,
                                                                                          embedded_vqe):
    lab = slurm_lab
    qpu_host = lab.layout.qpu_node_names[0]
    script = str(lab.site.src / EXAMPLE)

    def run_vqe(user: str) -> dict:
        home = lab_user_dir(user)
        workflow = f"qiskit-vqe-{user[-1]}-{uuid.uuid4().hex[:6]}"
        done = submit_driver(lab, user, home, workflow, script, "--seed", str(SEED), "--maxiter", str(MAXITER),
                             call_options=(f"--nodelist={qpu_host}",))
        return {"home": home, "workflow": workflow, "done": done}

    runs = as_both_users(run_vqe)

    expected = REPORT.search(embedded_vqe.stdout)
    assert expected, embedded_vqe.stdout + embedded_vqe.stderr
    held = []
    for user, r in runs.items():
        output = driver_output(r["home"], r["workflow"])
        # The example exits 1 when its energy misses the tolerance: per-call, it does whatever it does embedded.
        assert r["done"].returncode == embedded_vqe.returncode, f"{user}: {r['done'].stdout}{r['done'].stderr}\n{output[-3000:]}"
        assert REPORT.search(output) and REPORT.search(output).group(0) == expected.group(0), (user, output[-2000:])
        jobs = call_jobs(r["workflow"])
        events = r["home"] / "runs" / r["workflow"] / "metrics" / "qpu.jsonl"
        acquired = {e["job"]: e for e in read_events(events, "acquire")}
        released = {e["job"]: e for e in read_events(events, "release")}
        evaluations = int(re.search(r"(\d+) energy evaluations", expected.group(0)).group(1))
        assert len(jobs) == len(acquired) == len(released) == evaluations + 1  # COBYLA's energies and the final one
        assert {j["NodeList"] for j in jobs} == {qpu_host}
        assert all(j["UserId"].startswith(f"{user}(") for j in jobs)
        for job in jobs:
            call = (acquired[job["JobId"]]["start"], released[job["JobId"]]["end"])
            # The allocation lies within the call (SLURM's times are whole seconds, truncated).
            assert call[0] - SLURM_RESOLUTION_S < stamp(job["StartTime"]), (user, job, call)
            assert stamp(job["EndTime"]) <= call[1], (user, job, call)
        held += on_host(user, jobs)

    # One qpu host, one call at a time, the two users' calls interleaved.
    owners = assert_turns(held)
    switches = sum(a != b for a, b in zip(owners, owners[1:]))
    log.info("qpu jobs on %s by owner, in start order: %s (%d switches)", qpu_host, owners, switches)


@pytest.mark.slurm
def test_scancel_of_the_drivers_job_at_a_random_call_then_rerun_ends_bit_identical_running_only_calls_not_done(
        slurm_lab, lab_user_dir, tmp_path):
    lab = slurm_lab
    calls, pause, hold = 4, "1", "2"  # the call holds the QPU 2 s after its result: scancel lands inside it
    seed = int(os.environ.get("HCQW_TEST_SEED", "2111"))
    cut = random.Random(seed).randint(2, calls)  # after the first: at least one finished call to replay
    log.info("scancel of the driver's job during call %d of %d (HCQW_TEST_SEED=%d)", cut, calls, seed)
    home = lab_user_dir(BOB)
    workflow = f"percall-scancel-{uuid.uuid4().hex[:6]}"
    driver = str(lab.site.src / PERCALL_DRIVER)
    out = home / "calls.jsonl"

    submitted = submit_driver(lab, BOB, home, workflow, driver, str(out), str(calls), pause, hold, wait=False)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job = submitted.stdout.split("driver job ")[1].split(",")[0]
    wait_for(lambda: driver_output(home, workflow).count("in call") >= cut, 180, f"call {cut} to hold the qpu")
    run(["scancel", job])
    assert wait_done(job, timeout=60)[job] == "CANCELLED"
    wait_for(lambda: all(j["JobState"] in DONE for j in call_jobs(workflow)), 30, "the cut call's qpu job to end")
    jobs_before = len(call_jobs(workflow))
    records = sorted((home / "runs" / workflow / "calls").glob("call-*.ckpt"))
    assert jobs_before == cut and len(records) == cut - 1  # the cut call left no record: it runs again
    assert (len(read_calls(out)) if out.exists() else 0) == cut - 1

    rerun = submit_driver(lab, BOB, home, workflow, driver, str(out), str(calls), pause, hold)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr + driver_output(home, workflow)[-3000:]
    resumed = read_calls(out)[cut - 1:]
    assert [c["samples"] for c in resumed] == embedded_calls(tmp_path, calls)  # bit for bit an uninterrupted run's
    assert len(call_jobs(workflow)) - jobs_before == calls - (cut - 1)  # no finished call on the device again
    events = read_events(home / "runs" / workflow / "metrics" / "qpu.jsonl", "replay")
    assert [e["call"] for e in events] == list(range(1, cut))
