"""bench.model.startups: a run's quantum-node start-ups from slurmctld's millisecond log and the run's view."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from bench.model.startups import main, startups, summary

T0 = 1_796_636_953.0


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t).isoformat(timespec="milliseconds")


def _lab(tmp_path, allocations: dict[int, float]):
    log = tmp_path / "lab" / "log" / "slurmctld.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(
        f"[{_stamp(t)}] sched/backfill: _start_job: Started JobId={job}+1({job + 1}) in qpu on lab-q1\n"
        f"[{_stamp(t + 5)}] _slurm_rpc_kill_job: REQUEST_KILL_JOB JobId={job}+1 uid 0\n"
        for job, t in allocations.items()))
    return log.parent.parent


def _repetition(tmp_path, events: list[dict], leaders: dict[tuple[str, str], int]):
    rep = tmp_path / "run" / "1-1" / "k2" / "split-resident" / "rep0"
    for (workflow, node), leader in leaders.items():
        (rep / workflow / "jobs" / f"{node}.{leader}").mkdir(parents=True)
    view = rep / "slurm-view.jsonl"
    view.write_text("".join(json.dumps({"device": "", **e}) + "\n" for e in events))
    return view


def _event(kind, workflow, node, start, end):
    return {"kind": kind, "workflow": workflow, "node": node, "start": T0 + start, "end": T0 + end}


def test_start_ups_are_measured_from_the_allocation_with_what_ran_meanwhile(tmp_path):
    # w0's node starts alone; w1's overlaps w0's classical block for all of its 1 s and w0's start-up for 0.3 s.
    # w2's node was staged (a session, queued at the device), w3's leader is not in the log: neither is a start-up.
    events = [_event("hold", "w0", "q0001", 0.0, 4.0), _event("exec", "w0", "q0001", 0.4, 3.4),
              _event("exec", "w0", "q0001", 3.4, 3.9),
              _event("cpu", "w0", "c0001", 0.1, 1.2),
              _event("hold", "w1", "q0001", 0.1, 4.0), _event("exec", "w1", "q0001", 1.1, 2.0),
              _event("session", "w2", "q0001", 0.0, 4.0), _event("exec", "w2", "q0001", 2.0, 3.0),
              _event("hold", "w3", "q0001", 0.0, 4.0), _event("exec", "w3", "q0001", 0.5, 1.0)]
    view = _repetition(tmp_path, events, {("w0", "q0001"): 5, ("w1", "q0001"): 7, ("w2", "q0001"): 9,
                                          ("w3", "q0001"): 11})
    allocated = {"5": T0, "7": T0 + 0.1, "9": T0}
    rows = startups(view, allocated)
    assert [(r["workflow"], r["startup"]) for r in rows] == [("w0", pytest.approx(0.4)), ("w1", pytest.approx(1.0))]
    assert rows[0]["blocks"] == pytest.approx(0.3 / 0.4) and rows[0]["others"] == pytest.approx(0.3 / 0.4)
    assert rows[1]["blocks"] == pytest.approx(1.0) and rows[1]["others"] == pytest.approx(0.3)
    s = summary(rows)
    assert s["nodes"] == 2 and s["median"] == pytest.approx(0.7) and s["p95_above"] == pytest.approx(0.27)
    assert (s["blocks_shorter"], s["blocks_longer"]) == (pytest.approx(0.75), pytest.approx(1.0))


def test_the_command_reads_the_labs_log_and_says_when_nothing_matched(tmp_path, capsys):
    _repetition(tmp_path, [_event("hold", "w0", "q0001", 0.0, 4.0), _event("exec", "w0", "q0001", 0.4, 3.4)],
                {("w0", "q0001"): 5})
    lab = _lab(tmp_path, {5: T0})
    assert main([str(tmp_path / "run"), "--lab-dir", str(lab)]) == 0
    assert "| 1-1/k2/split-resident/rep0 | 1 | 0.40 | 0.00 |" in capsys.readouterr().out
    other = _lab(tmp_path / "other", {6: T0})
    assert main([str(tmp_path / "run"), "--lab-dir", str(other)]) == 1
    assert "give the lab the runs ran on" in capsys.readouterr().err
