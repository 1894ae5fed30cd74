"""HetjobSlurmProvider status: hetjob components merged into one Parsl block state, with and
without accounting.

- ``test_block_states_from_components`` (pure merge logic, no SLURM): what Parsl sees for the
  component combinations a hetjob block goes through, incl. the early qpu release.
- ``test_hetjob_block_on_cluster_without_accounting`` (real lab cluster, which runs without
  slurmdbd: sacct exits 1): a hetjob block whose command releases the qpu part early is one
  COMPLETED block, from ``scontrol`` records alone.
"""

from __future__ import annotations

import pytest
from parsl.jobs.states import JobState

from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.slurm import ComponentInfo, ComponentSpec, merge_components
from hcqw.slurm.status import CliStatusSource
from hcqw.lab.pytest_plugin import wait_for
from parsl_hcqw.provider import HetjobSlurmProvider, job_status


def _hetjob(leader: str, cpu: str, qpu: str) -> list[ComponentInfo]:
    return [ComponentInfo(f"{leader}+0", leader, 0, cpu), ComponentInfo(f"{leader}+1", leader, 1, qpu)]


@pytest.mark.parametrize("cpu, qpu, expected", [
    ("PENDING", "PENDING", JobState.PENDING),
    ("RUNNING", "CANCELLED", JobState.RUNNING),  # qpu released, the block still works
    ("COMPLETED", "CANCELLED", JobState.COMPLETED),  # early release is success
    ("COMPLETED", "COMPLETED", JobState.COMPLETED),
    ("CANCELLED", "CANCELLED", JobState.CANCELLED),  # scale-in / user cancel of the whole job
    ("FAILED", "CANCELLED", JobState.FAILED),
    ("TIMEOUT", "CANCELLED", JobState.TIMEOUT),  # walltime: Parsl must not count it as a failure
])
def test_block_states_from_components(cpu, qpu, expected):
    status = job_status(merge_components("41", _hetjob("41", cpu, qpu)))
    assert status.state is expected
    assert status.terminal is (expected not in (JobState.PENDING, JobState.RUNNING))


@pytest.mark.slurm
def test_hetjob_block_on_cluster_without_accounting(slurm_lab, job_env, tmp_path):
    settings = NodeJobSettings(cpu=ComponentSpec("cpu", time_limit=2), qpu=ComponentSpec("qpu", gres="qpu:1", time_limit=2))
    provider = HetjobSlurmProvider(quantum=True, settings=settings, workflow="prov-test", workdir=str(tmp_path),
                                   backend_options={"env": slurm_lab.env}, status_polling_interval=0.2)
    # The block's command frees the qpu part itself (as a qpu app closing its lease does), then works on.
    job = provider.submit('scancel "$SLURM_JOB_ID_HET_GROUP_1"; sleep 2', 1, "parsl.test.block-0")
    assert CliStatusSource(slurm_lab.env).uses_sacct is False  # this lab has no accounting: sacct exits 1
    seen = set()

    def finished():
        status = provider.status([job])[0]
        seen.add(status.state)
        return status.terminal and status

    status = wait_for(finished, 60, "the hetjob block to finish", pause=0.2)
    assert status.state is JobState.COMPLETED, status
    assert "released early" in (status.message or "")
    assert JobState.RUNNING in seen and not seen & {JobState.CANCELLED, JobState.FAILED, JobState.UNKNOWN}
    state = provider.slurm.status([job])[job]
    assert [c.state for c in state.components] == ["COMPLETED", "CANCELLED"]
    assert provider.cancel([job]) == [True]  # cancelling a finished block is harmless
