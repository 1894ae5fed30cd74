"""Merge rules of hetjob components into one NodeState (pure logic)."""

from __future__ import annotations

import pytest

from hcqw.slurm import JobFailed
from hcqw.slurm.states import ComponentInfo, Phase, component_phase, merge_components, normalize_state


def comp(offset: int | None, state: str, exit_code: int | None = 0) -> ComponentInfo:
    job_id = "100" if offset is None else f"100+{offset}"
    return ComponentInfo(job_id=job_id, leader_id="100", het_offset=offset, state=normalize_state(state), exit_code=exit_code)


def merged(*states: str):
    comps = [comp(i, s) for i, s in enumerate(states)] if len(states) > 1 else [comp(None, states[0])]
    return merge_components("100", comps)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("CANCELLED by 0", "CANCELLED"), ("RUNNING+", "RUNNING"), ("CD", "COMPLETED"), ("pd", "PENDING"), ("OOM", "OUT_OF_MEMORY")],
)
def test_normalize_state(raw, normal):
    assert normalize_state(raw) == normal


def test_component_phases():
    assert component_phase("COMPLETING") is Phase.RUNNING
    assert component_phase("REQUEUED") is Phase.PENDING
    assert component_phase("NODE_FAIL") is Phase.FAILED
    assert component_phase("WEIRD") is Phase.UNKNOWN


@pytest.mark.parametrize(
    ("states", "phase"),
    [
        (("PENDING",), Phase.PENDING),
        (("RUNNING",), Phase.RUNNING),
        (("COMPLETED",), Phase.COMPLETED),
        (("FAILED",), Phase.FAILED),
        (("TIMEOUT",), Phase.FAILED),
        (("CANCELLED",), Phase.CANCELLED),
        # hetjob, both parts
        (("PENDING", "PENDING"), Phase.PENDING),
        (("RUNNING", "RUNNING"), Phase.RUNNING),
        (("COMPLETED", "COMPLETED"), Phase.COMPLETED),
        # early release: qpu part cancelled on purpose, cpu part runs on, then completes
        (("RUNNING", "CANCELLED"), Phase.RUNNING),
        (("COMPLETING", "CANCELLED"), Phase.RUNNING),
        (("COMPLETED", "CANCELLED"), Phase.COMPLETED),
        # never final while a part still holds resources
        (("COMPLETED", "RUNNING"), Phase.RUNNING),
        (("FAILED", "RUNNING"), Phase.RUNNING),
        # failures anywhere fail the node
        (("FAILED", "CANCELLED"), Phase.FAILED),
        (("COMPLETED", "NODE_FAIL"), Phase.FAILED),
        (("COMPLETED", "FAILED"), Phase.FAILED),
        (("TIMEOUT", "COMPLETED"), Phase.FAILED),
        # the whole job cancelled (scancel <leader>, or a failed dependency)
        (("CANCELLED", "CANCELLED"), Phase.CANCELLED),
        (("CANCELLED", "COMPLETED"), Phase.CANCELLED),
        (("COMPLETED", "MYSTERY"), Phase.UNKNOWN),
    ],
)
def test_merge(states, phase):
    assert merged(*states).phase is phase


def test_release_is_recorded_and_not_a_failure():
    state = merged("COMPLETED", "CANCELLED")
    assert state.done and state.released == (1,) and state.failed_component is None
    assert state.state == "COMPLETED"


def test_whole_job_cancel_is_not_a_release():
    state = merged("CANCELLED", "CANCELLED")
    assert state.released == () and state.failed_component == "100+0"


def test_failed_component_is_named_with_its_exit_code():
    comps = [comp(0, "COMPLETED"), comp(1, "FAILED", exit_code=7)]
    state = merge_components("100", comps)
    assert state.phase is Phase.FAILED
    assert state.failed_component == "100+1" and state.exit_code == 7 and state.state == "FAILED"


def test_order_of_records_does_not_matter_and_component_lookup():
    state = merge_components("100", [comp(1, "CANCELLED"), comp(0, "COMPLETED")])
    assert state.phase is Phase.COMPLETED
    assert state.leader.job_id == "100+0" and state.component(1).job_id == "100+1"
    assert merged("RUNNING").component(0).job_id == "100"


def test_no_records_is_unknown():
    state = merge_components("100", [])
    assert state.phase is Phase.UNKNOWN and not state.done and state.leader is None


def test_a_job_that_hit_its_time_limit_is_told_to_raise_it():
    assert "the time limit was hit before the job finished: raise it" in str(JobFailed("12", "TIMEOUT", 0))
    assert "time limit" not in str(JobFailed("12", "FAILED", 1))


def test_a_job_whose_node_failed_or_ran_out_of_memory_is_told_what_to_do():
    assert "slurmd down longer than SlurmdTimeout); `sinfo -R` says which" in str(JobFailed("12", "NODE_FAIL", None))
    assert "raise ComponentSpec.mem_mb" in str(JobFailed("12", "OUT_OF_MEMORY", 0))
