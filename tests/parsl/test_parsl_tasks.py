"""A qpu app's round trip through its task files, as the SLURM runner does it (no SLURM needed):
the return value comes back, an exception comes back as itself with the remote traceback, and a
call file signed with another key is refused before anything is unpickled."""

from __future__ import annotations

import pytest

from hcqw.errors import CheckpointError
from parsl_hcqw import tasks


def double(x: int) -> int:
    return 2 * x


def fail(message: str) -> None:
    raise KeyError(message)


def test_result_and_exception_round_trip(tmp_path):
    tasks.write_call(tmp_path / "1", "wf", double, (21,), {})
    assert tasks.run_task(tmp_path / "1", "wf") is True
    assert tasks.read_result(tmp_path / "1", "wf") == (True, 42)

    tasks.write_call(tmp_path / "2", "wf", fail, ("no such qubit",), {})
    assert tasks.run_task(tmp_path / "2", "wf") is False
    ok, err = tasks.read_result(tmp_path / "2", "wf")
    assert not ok and isinstance(err, KeyError) and err.args == ("no such qubit",)
    assert any("remote traceback" in note and "in fail" in note for note in err.__notes__)


def test_foreign_call_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("HCQW_CHECKPOINT_KEY", str(tmp_path / "other.key"))
    tasks.write_call(tmp_path / "1", "wf", double, (1,), {})
    monkeypatch.setenv("HCQW_CHECKPOINT_KEY", str(tmp_path / "mine.key"))
    with pytest.raises(CheckpointError):
        tasks.run_task(tmp_path / "1", "wf")
    assert not (tmp_path / "1" / tasks.RESULT).exists()
