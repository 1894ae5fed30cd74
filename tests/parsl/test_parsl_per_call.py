"""The ``per-call`` executor of ``hcqw_config(backend="slurm")`` on the real lab cluster, as hcqw-alice runs it.

tests/parsl/per_call_script.py runs the unsplit driver tests/hetjob/percall_driver.py (quantum calls through
``open_qpu``, classical pauses between them) unchanged in one app: the app is a cpu job, each call gets a qpu
job of its own (SLURM's records, by the calls' job names), none is allocated between calls, and the calls'
samples are those of the same driver on the embedded default.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.lab_user import ALICE, run_as
from tests.support.per_call import (PERCALL_DRIVER, assert_calls_held_per_call, call_jobs, embedded_calls,
                                    read_calls)

CALLS = 3
PAUSE_S = 3  # classical work between calls: longer than SLURM's 1 s time resolution plus a release


@pytest.mark.slurm
def test_a_per_call_app_gives_each_quantum_call_of_its_driver_its_own_qpu_job(slurm_lab, lab_user_dir, tmp_path):
    home = lab_user_dir(ALICE)
    workflow = f"parsl-per-call-{uuid.uuid4().hex[:6]}"
    run_as(slurm_lab, ALICE, ["python", "tests/parsl/per_call_script.py", str(home), workflow,
                              slurm_lab.layout.qpu_service_address_pattern, str(slurm_lab.site.src / PERCALL_DRIVER),
                              str(home / "calls.jsonl"), str(CALLS), str(PAUSE_S)], timeout=300)
    calls = read_calls(home / "calls.jsonl")
    jobs = call_jobs(workflow)
    assert len(calls) == CALLS
    assert_calls_held_per_call(ALICE, jobs, calls, set(slurm_lab.layout.qpu_node_names))
    (name,) = {j["JobName"] for j in jobs}  # the app's calls, named by the app's job
    assert name.startswith(f"hcqw:{workflow}:per-call-app1."), name
    assert [c["samples"] for c in calls] == embedded_calls(tmp_path, CALLS)
