"""Parsers of scontrol / sacct / slurmrestd output, on output captured from Slurm 22.05.8."""

from __future__ import annotations

from datetime import datetime

from hcqw.slurm.parsing import (
    SACCT_FIELDS,
    component_from_rest,
    gres_count,
    group_by_leader,
    parse_exit_code,
    parse_sacct,
    parse_scontrol,
    parse_tres,
)
from hcqw.slurm.states import Phase, merge_components

# `scontrol -o show job` on the lab cluster after an early-release hetjob (4, 5)
# and a plain job that exited 3 (trimmed to the fields that matter + neighbours).
SCONTROL = (
    "JobId=3 JobName=hcqw:wf:n UserId=root(0) GroupId=root(0) JobState=FAILED Reason=NonZeroExitCode "
    "Dependency=(null) ExitCode=3:0 RunTime=00:00:00 SubmitTime=2026-11-21T10:27:27 StartTime=2026-11-21T10:27:27 "
    "EndTime=2026-11-21T10:27:27 Partition=cpu AllocNode:Sid=localhost:2655 NodeList=dev2-c1 ReqB:S:C:T=0:0:*:* "
    "Socks/Node=* WorkDir=/tmp/dev2w Comment=a b=c  StdErr=/tmp/dev2w/slurm-3.out StdIn=/dev/null "
    "StdOut=/tmp/dev2w/slurm-3.out Power= \n"
    "JobId=4 HetJobId=4 HetJobOffset=0 JobName=hcqw:wf1:n1 JobState=COMPLETED Reason=None ExitCode=0:0 "
    "SubmitTime=2026-11-21T10:27:34 StartTime=2026-11-21T10:27:35 EndTime=2026-11-21T10:27:36 Partition=cpu "
    "NodeList=dev2-c1 Comment=hcqw:wf1:n1 StdOut=/tmp/dev2w/hcqw-n1-4.out Power= \n"
    "JobId=5 HetJobId=4 HetJobOffset=1 JobName=hcqw:wf1:n1 UserId=alice(1001) Account=phys "
    "TRES=cpu=1,node=1,billing=1,gres/qpu=1 JobState=CANCELLED Reason=None ExitCode=0:0 "
    "SubmitTime=2026-11-21T10:27:34 StartTime=2026-11-21T10:27:35 EndTime=2026-11-21T10:27:35 Partition=qpu "
    "NodeList=dev2-q1 Comment=hcqw:wf1:n1 StdOut=/tmp/dev2w/hcqw-n1-4.out Power= \n"
    "JobId=6 JobName=x JobState=PENDING Reason=Dependency ExitCode=0:0 StartTime=Unknown EndTime=Unknown "
    "Partition=cpu NodeList=(null) StdOut=/tmp/x.out\n"
)

# sacct -X -n --parsable2 --format=<SACCT_FIELDS> (accounting mode; hetjob rows are id+offset)
SACCT = (
    "7+0|7|COMPLETED|0:0|cpu|c1|2026-11-21T10:00:00|2026-11-21T10:00:01|2026-11-21T10:00:05|None|alice|phys|"
    "billing=1,cpu=1,node=1|hcqw:wf:a\n"
    "7+1|8|CANCELLED by 0|0:15|qpu|q1|2026-11-21T10:00:00|2026-11-21T10:00:01|2026-11-21T10:00:02|None|alice|phys|"
    "billing=1,cpu=1,gres/qpu=1,node=1|hcqw:wf:a\n"
    "7+0.batch|7|COMPLETED|0:0||c1|2026-11-21T10:00:01|2026-11-21T10:00:01|2026-11-21T10:00:05|||||batch\n"
    "9|9|RUNNING|0:0|cpu|c2|2026-11-21T10:00:00|2026-11-21T10:00:03|Unknown|None|bob|chem|cpu=2,node=1|a|b\n"
)


def test_exit_code():
    assert parse_exit_code("3:0") == (3, 0)
    assert parse_exit_code("0:15") == (0, 15)
    assert parse_exit_code("") == (None, None)


def test_scontrol_records_and_hetjob_ids():
    recs = {r.job_id: r for r in parse_scontrol(SCONTROL)}
    assert set(recs) == {"3", "4+0", "4+1", "6"}
    plain = recs["3"]
    assert (plain.state, plain.exit_code, plain.het_offset, plain.leader_id) == ("FAILED", 3, None, "3")
    assert plain.stdout == "/tmp/dev2w/slurm-3.out" and plain.nodelist == "dev2-c1"
    qpu = recs["4+1"]
    assert (qpu.leader_id, qpu.het_offset, qpu.raw_id, qpu.partition) == ("4", 1, "5", "qpu")
    assert qpu.start_time == datetime(2026, 11, 21, 10, 27, 35) and qpu.end_time == datetime(2026, 11, 21, 10, 27, 35)
    assert (qpu.user, qpu.account, gres_count(qpu.tres, "qpu")) == ("alice", "phys", 1)
    pending = recs["6"]
    assert pending.start_time is None and pending.nodelist is None and pending.reason == "Dependency"


def test_scontrol_hetjob_merges_to_completed_after_release():
    groups = group_by_leader(parse_scontrol(SCONTROL))
    state = merge_components("4", groups["4"])
    assert state.phase is Phase.COMPLETED and state.released == (1,)


def test_sacct_rows():
    assert len(SACCT.splitlines()[0].split("|")) == len(SACCT_FIELDS)
    recs = {r.job_id: r for r in parse_sacct(SACCT)}
    assert set(recs) == {"7+0", "7+1", "9"}  # step row skipped
    assert recs["7+1"].state == "CANCELLED" and recs["7+1"].signal == 15 and recs["7+1"].raw_id == "8"
    assert recs["9"].end_time is None and recs["9"].het_offset is None
    assert recs["9"].name == "a|b"  # a '|' in the last field (JobName) stays in it
    assert (recs["7+1"].user, recs["7+1"].account, gres_count(recs["7+1"].tres, "qpu")) == ("alice", "phys", 1)
    assert gres_count(recs["7+0"].tres, "qpu") == 0
    state = merge_components("7", group_by_leader(recs.values())["7"])
    assert state.phase is Phase.COMPLETED


def test_rest_records():
    # Fields as slurmrestd v0.0.38 returns them (22.05.8); exit_code is a raw wait status.
    leader = {"job_id": 4, "het_job_id": 4, "het_job_offset": 0, "job_state": "COMPLETED", "exit_code": 0,
              "start_time": 1795256855, "end_time": 1795256856, "submit_time": 1795256854, "nodes": "c1",
              "partition": "cpu", "state_reason": "None", "standard_output": "/w/hcqw-n1-%j.out"}
    qpu = dict(leader, job_id=5, het_job_offset=1, job_state="CANCELLED", nodes="q1", partition="qpu",
               user_name="alice", account="phys", tres_alloc_str="cpu=1,node=1,billing=1,gres/qpu=1")
    plain = {"job_id": 3, "het_job_id": 0, "het_job_offset": 0, "job_state": "FAILED", "exit_code": 768,
             "start_time": 0, "end_time": 0, "standard_output": ""}
    recs = [component_from_rest(j) for j in (leader, qpu, plain)]
    assert [r.job_id for r in recs] == ["4+0", "4+1", "3"]
    assert recs[1].raw_id == "5" and recs[1].leader_id == "4"
    assert (recs[1].user, recs[1].account, gres_count(recs[1].tres, "qpu")) == ("alice", "phys", 1)
    assert recs[2].exit_code == 3 and recs[2].het_offset is None and recs[2].start_time is None
    assert recs[0].start_time == datetime.fromtimestamp(1795256855)
    assert component_from_rest(dict(plain, exit_code=9)).signal == 9


def test_sacct_keeps_only_the_newest_job_with_an_id():
    from hcqw.slurm.status import _newest_per_leader

    old = "3|3|FAILED|1:0|cpu|c1|2026-11-20T09:00:00|2026-11-20T09:00:00|2026-11-20T09:00:01|None|root|root||allocation\n"
    recs = _newest_per_leader(parse_sacct(old + SACCT.replace("7+", "3+").replace("|7|", "|3|")))
    assert sorted(r.job_id for r in recs if r.leader_id == "3") == ["3+0", "3+1"]


def test_tres_and_gres_counts():
    assert parse_tres("billing=1,cpu=2,gres/qpu=1,mem=100M,node=1")["mem"] == "100M"
    assert parse_tres(None) == {} and parse_tres("") == {}
    assert gres_count("cpu=1,gres/qpu=2,gres/qpu:ibm=2", "qpu") == 2  # total given: types not added again
    assert gres_count("cpu=1,gres/qpu:a=1,gres/qpu:b=2", "qpu") == 3
    assert gres_count("cpu=1,gres/gpu=4", "qpu") == 0
