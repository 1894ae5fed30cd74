"""A qpu app's round trip through its task files, as the SLURM runner does it (no SLURM needed):
the return value comes back, an exception comes back as itself with the remote traceback, and a
call file signed with another key is refused before anything is unpickled; a call or result of
another task, copied into a task's directory, is refused as not that task's (CheckpointMismatch)."""

from __future__ import annotations

import shutil

import pytest

from hcqw.errors import CheckpointError, CheckpointMismatch
from parsl_hcqw import tasks


def double(x: int) -> int:
    return 2 * x


def fail(message: str) -> None:
    raise KeyError(message)


def test_result_and_exception_round_trip(tmp_path):
    first = tasks.write_call(tmp_path / "1", "wf", double, (21,), {})
    assert tasks.run_task(tmp_path / "1", "wf") is True
    assert tasks.read_result(tmp_path / "1", "wf", first) == (True, 42)

    second = tasks.write_call(tmp_path / "2", "wf", fail, ("no such qubit",), {})
    assert tasks.run_task(tmp_path / "2", "wf") is False
    ok, err = tasks.read_result(tmp_path / "2", "wf", second)
    assert not ok and isinstance(err, KeyError) and err.args == ("no such qubit",)
    assert any("remote traceback" in note and "in fail" in note for note in err.__notes__)


def test_foreign_call_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HCQW_CHECKPOINT_KEY", str(tmp_path / "other.key"))
    tasks.write_call(tmp_path / "1", "wf", double, (1,), {})
    monkeypatch.setenv("HCQW_CHECKPOINT_KEY", str(tmp_path / "mine.key"))
    with pytest.raises(CheckpointError):
        tasks.run_task(tmp_path / "1", "wf")
    assert not (tmp_path / "1" / tasks.RESULT).exists()


def test_a_call_or_result_of_another_task_is_refused(tmp_path):
    """Task 1 asks double(1); task 2 double(1000). Task 2's call copied over task 1's is not run as
    task 1, and task 2's result copied over task 1's is not task 1's answer."""
    one = tasks.write_call(tmp_path / "1", "wf", double, (1,), {})
    tasks.write_call(tmp_path / "2", "wf", double, (1000,), {})
    shutil.copy(tmp_path / "1" / tasks.CALL, tmp_path / "1.call")  # the genuine call, kept aside
    shutil.copy(tmp_path / "2" / tasks.CALL, tmp_path / "1" / tasks.CALL)
    with pytest.raises(CheckpointMismatch, match="another task"):
        tasks.run_task(tmp_path / "1", "wf")
    assert not (tmp_path / "1" / tasks.RESULT).exists()

    shutil.copy(tmp_path / "1.call", tmp_path / "1" / tasks.CALL)
    assert tasks.run_task(tmp_path / "2", "wf") is True
    shutil.copy(tmp_path / "2" / tasks.RESULT, tmp_path / "1" / tasks.RESULT)
    with pytest.raises(CheckpointMismatch, match="another loop or other parameters"):
        tasks.read_result(tmp_path / "1", "wf", one)
    assert tasks.run_task(tmp_path / "1", "wf") is True
    assert tasks.read_result(tmp_path / "1", "wf", one) == (True, 2)
