"""One status snapshot per user and host for every follower there (issue 22): the file-and-lock logic of
``hcqw.slurm.status.SharedStatusSource``, with a stand-in for ``scontrol -o show job`` that counts its
calls across processes (pure logic; the lab benchmark ``bench/scale.py`` measures slurmctld's side with sdiag)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from hcqw.trust import UntrustedPath
from hcqw.slurm.status import SharedStatusSource, StatusPoller

LINE = "JobId={id} JobName=hcqw:wf:q0001 UserId=root(0) JobState={state} Reason=None ExitCode=0:0\n"


class CountingScontrol:
    """What ``CliStatusSource`` offers the shared source, answering from a fixed text; each call appends a
    line to ``calls`` (a file, so calls from several processes add up)."""

    uses_sacct = False

    def __init__(self, calls: Path, text: str = LINE.format(id=7, state="RUNNING")):
        self.calls, self.text = calls, text

    def scontrol_text(self) -> str:
        with open(self.calls, "a") as handle:
            handle.write("call\n")
        return self.text


def calls(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_followers_share_one_query_per_interval(tmp_path):
    counter = tmp_path / "calls"
    followers = [SharedStatusSource(CountingScontrol(counter), tmp_path / "status", max_age=0.5) for _ in range(5)]
    for _ in range(4):
        for follower in followers:
            assert [r.state for r in follower(["7"])] == ["RUNNING"]
    assert calls(counter) == 1
    time.sleep(0.6)
    followers[3](["7"])
    followers[1](["7"])
    assert calls(counter) == 2
    followers[0].fresh(["7"])  # force=True asks now, whatever the snapshot's age
    assert calls(counter) == 3
    assert oct((tmp_path / "status").stat().st_mode & 0o777) == "0o700"


def test_a_poller_on_the_shared_source_asks_again_when_forced(tmp_path):
    counter = tmp_path / "calls"
    poller = StatusPoller(SharedStatusSource(CountingScontrol(counter), tmp_path / "status", max_age=60), 60)
    assert poller.status(["7"])["7"].state == "RUNNING"
    poller.status(["7"], force=True)
    assert calls(counter) == 2


def _follow(directory: str, counter: str, start: float, rounds: int) -> None:
    source = SharedStatusSource(CountingScontrol(Path(counter)), Path(directory), max_age=30)
    while time.time() < start:
        time.sleep(0.001)
    for _ in range(rounds):
        assert source(["7"])


def test_concurrent_processes_make_one_query(tmp_path):
    counter = tmp_path / "calls"
    start = time.time() + 1.0
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_follow, args=(str(tmp_path / "status"), str(counter), start, 20))
                 for _ in range(8)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert calls(counter) == 1  # the lock: the others waited and read its snapshot


def test_a_status_directory_others_may_write_is_refused(tmp_path):
    shared = tmp_path / "status"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    with pytest.raises(UntrustedPath, match="status directory"):
        SharedStatusSource(CountingScontrol(tmp_path / "calls"), shared)(["7"])
    assert calls(tmp_path / "calls") == 0


def test_a_job_submitted_after_the_snapshot_is_found_and_a_purged_one_asks_only_once(tmp_path):
    counter = tmp_path / "calls"
    scontrol = CountingScontrol(counter)
    source = SharedStatusSource(scontrol, tmp_path / "status", max_age=60)
    assert [r.state for r in source(["7"])] == ["RUNNING"]  # the snapshot, without job 8
    scontrol.text += LINE.format(id=8, state="PENDING")  # job 8 submitted since
    assert [r.state for r in source(["8"])] == ["PENDING"]  # not in the snapshot: asked again, found
    assert calls(counter) == 2
    assert source(["9"]) == [] and source(["9"]) == []  # never known here (purged): one more query, not one per poll
    assert calls(counter) == 3
