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
    """A repetition's directory: its SLURM view (the classical blocks) and each workflow's own metrics (the
    nodes' sessions opening), with ``leaders``' job directories (``<job>.<leader id>``)."""
    rep = tmp_path / "run" / "1-1" / "k2" / "staged-fused" / "rep0"
    for (workflow, job), leader in leaders.items():
        (rep / workflow / "jobs" / f"{job}.{leader}").mkdir(parents=True)
    for workflow in {e["workflow"] for e in events}:
        metrics = rep / workflow / "metrics" / "qpu.jsonl"
        metrics.parent.mkdir(parents=True, exist_ok=True)
        metrics.write_text("".join(json.dumps(e) + "\n" for e in events if e["workflow"] == workflow))
    view = rep / "slurm-view.jsonl"
    view.write_text("".join(json.dumps({"device": "", **e}) + "\n" for e in events if e["kind"] == "cpu"))
    return view


def _event(kind, workflow, node, start, end):
    return {"kind": kind, "workflow": workflow, "node": node, "start": T0 + start, "end": T0 + end}


def test_start_ups_are_measured_from_the_allocation_to_the_session_with_what_ran_meanwhile(tmp_path):
    # w0's node opens its session 0.4 s after its allocation, w1's 1.0 s after, beside w0's classical block all
    # along and w0's start-up for 0.3 s. w2's is a fused node (job qc0001, its quantum part q0001); w3's leader
    # is not in the log.
    events = [_event("hold", "w0", "q0001", 0.4, 4.0), _event("cpu", "w0", "c0001", 0.1, 1.2),
              _event("hold", "w1", "q0001", 1.1, 4.0),
              _event("hold", "w2", "q0001", 2.5, 4.0),
              _event("hold", "w3", "q0001", 0.5, 4.0)]
    view = _repetition(tmp_path, events, {("w0", "q0001"): 5, ("w1", "q0001"): 7, ("w2", "qc0001"): 9,
                                          ("w3", "q0001"): 11})
    allocated = {"5": T0, "7": T0 + 0.1, "9": T0 + 2.0}
    rows = startups(view, allocated)
    assert [(r["workflow"], r["startup"]) for r in rows] == [
        ("w0", pytest.approx(0.4)), ("w1", pytest.approx(1.0)), ("w2", pytest.approx(0.5))]
    assert rows[0]["blocks"] == pytest.approx(0.3 / 0.4) and rows[0]["others"] == pytest.approx(0.3 / 0.4)
    assert rows[1]["blocks"] == pytest.approx(1.0) and rows[1]["others"] == pytest.approx(0.3)
    assert rows[2]["blocks"] == 0 and rows[2]["others"] == 0
    s = summary(rows)
    assert s["nodes"] == 3 and s["median"] == pytest.approx(0.5) and s["p95_above"] == pytest.approx(0.45)
    assert (s["blocks_shorter"], s["blocks_longer"]) == (pytest.approx(0.75), pytest.approx(0.5))


def test_the_command_reads_the_labs_log_and_says_when_nothing_matched(tmp_path, capsys):
    _repetition(tmp_path, [_event("hold", "w0", "q0001", 0.4, 4.0)], {("w0", "q0001"): 5})
    lab = _lab(tmp_path, {5: T0})
    assert main([str(tmp_path / "run"), "--lab-dir", str(lab)]) == 0
    assert "| 1-1/k2/staged-fused/rep0 | 1 | 0.40 | 0.00 |" in capsys.readouterr().out
    other = _lab(tmp_path / "other", {6: T0})
    assert main([str(tmp_path / "run"), "--lab-dir", str(other)]) == 1
    assert "give the lab the runs ran on" in capsys.readouterr().err
