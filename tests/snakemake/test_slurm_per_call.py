"""``resources: qpu="per-call"`` on the real lab cluster, as hcqw-alice runs it.

The rule (tests/snakemake/per_call/Snakefile) runs the unsplit driver tests/hetjob/percall_driver.py -- quantum
calls through ``open_qpu``, classical pauses between them -- as a cpu job; each call gets a qpu job of its own
(SLURM's records, by the calls' job names), none is allocated between calls, and the calls' samples are those of
the same driver on the embedded default.
"""

from __future__ import annotations

import shutil
import uuid

import pytest

from hcqw.lab.pytest_plugin import make_user_dir
from tests.support.lab_user import ALICE
from tests.support.per_call import assert_calls_held_per_call, call_jobs, embedded_calls, read_calls
from tests.support.snakemake_runs import run_snakemake_as

pytestmark = [pytest.mark.slurm]
CALLS = 3
PAUSE_S = 3  # classical work between calls: longer than SLURM's 1 s time resolution plus a release


def test_a_per_call_rule_gives_each_quantum_call_its_own_qpu_job(slurm_lab, tmp_path):
    workdir = make_user_dir(slurm_lab, ALICE, "smk-per-call")
    workflow = f"smk-per-call-{uuid.uuid4().hex[:6]}"
    try:
        run = run_snakemake_as(slurm_lab, ALICE, workdir, "--hcqw-backend", "slurm", "--hcqw-workflow-id", workflow,
                               "--hcqw-poll-interval", "0.5",
                               "--hcqw-device-service", slurm_lab.layout.qpu_service_address_pattern,
                               "--config", f"calls={CALLS}", f"pause={PAUSE_S}",
                               snakefile="tests/snakemake/per_call/Snakefile")
        assert run.returncode == 0, run.output
        assert "per-call job (a qpu job per quantum call)" in run.output
        calls = read_calls(workdir / "calls.jsonl")
        jobs = call_jobs(workflow)
        assert len(calls) == CALLS
        assert_calls_held_per_call(ALICE, jobs, calls, set(slurm_lab.layout.qpu_node_names))
        assert {j["JobName"] for j in jobs} == {f"hcqw:{workflow}:calls"}  # the rule's calls, named by the rule
        assert [c["samples"] for c in calls] == embedded_calls(tmp_path, CALLS)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
