"""Pure logic of ``hcqw usage``: periods, attribution of execs to charges, grouping, output formats.

Small hand-made records only; the same paths run against real sacct output in
``test_usage_lab.py`` and against a real embedded run in ``test_usage_embedded.py``.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import pytest

from hcqw.slurm.parsing import parse_sacct
from hcqw.slurm.settings import parse_tag
from hcqw.usage.logs import event_user
from hcqw.usage.period import Period, UsageError, parse_when
from hcqw.usage.records import Busy, Charge
from hcqw.usage.report import format_table, to_csv, to_json
from hcqw.usage.sacct import charges_from_records, sacct_command
from hcqw.usage.table import parse_groups, usage_table

NOW = datetime(2026, 11, 30, 12, 0, 0).timestamp()


# -- period ---------------------------------------------------------------------------------------


def test_times_relative_absolute_and_named():
    assert parse_when("now", NOW) == NOW
    assert parse_when("-1d", NOW) == parse_when("1d", NOW) == NOW - 86400
    assert parse_when("-90m", NOW) == NOW - 5400 and parse_when("2w", NOW) == NOW - 14 * 86400
    assert parse_when("today", NOW) == datetime(2026, 11, 30).timestamp()
    assert parse_when("2026-11-29", NOW) == datetime(2026, 11, 29).timestamp()
    assert parse_when("2026-11-29T08:30", NOW) == datetime(2026, 11, 29, 8, 30).timestamp()
    assert parse_when("2026-11-29T08:30:00+00:00", NOW) == datetime.fromisoformat("2026-11-29T08:30:00+00:00").timestamp()


@pytest.mark.parametrize("bad", ["yesterday", "-1y", "1 d", "", "2026-13-01"])
def test_bad_times_name_the_accepted_forms(bad):
    with pytest.raises(UsageError, match="ISO date"):
        parse_when(bad, NOW)


def test_period_overlap_and_order():
    period = Period(100.0, 200.0)
    assert period.overlap(50, 150) == 50 and period.overlap(150, 250) == 50 and period.overlap(0, 50) == 0
    assert Period().overlap(3, 10) == 7 and Period(since=5).overlap(3, 10) == 5
    assert Period(100.0, 200.0).touches(150, 150) and Period(100.0, 200.0).touches(200, 300)
    assert not Period(100.0, 200.0).touches(201, 300) and not Period(since=100.0).touches(50, 99)
    with pytest.raises(UsageError, match="before --since"):
        Period(200.0, 100.0)


def test_sacct_query_covers_the_period_outwards():
    cmd = sacct_command(Period(NOW + 0.5, NOW + 10.2))
    assert cmd[-4:] == ["-S", "2026-11-30T12:00:00", "-E", "2026-11-30T12:00:11"]
    assert {"-a", "-X", "-D"} <= set(cmd)  # every user, allocations only, every run of a requeued job
    assert sacct_command(Period())[-4:] == ["-S", "1970-01-01T00:00:00", "-E", "now"]


def test_sacct_query_reads_only_the_qpu_partitions():
    cmd = sacct_command(Period(NOW, NOW + 60))
    assert cmd[cmd.index("-r") + 1] == "qpu"  # the site guide's partition of the qpu hosts
    cmd = sacct_command(Period(NOW, NOW + 60), ("qpu", "qpu-staged"))
    assert cmd[cmd.index("-r") + 1] == "qpu,qpu-staged"
    assert "-r" not in sacct_command(Period(), ())  # --partition all


# -- records --------------------------------------------------------------------------------------


def test_job_tags():
    assert parse_tag("hcqw:vqe-1:q0003") == ("vqe-1", "q0003")
    assert parse_tag("hcqw:a:b:c") == ("a:b", "c")
    assert parse_tag("wrap") is None and parse_tag("hcqw:x") is None and parse_tag(None) is None


def test_charges_are_the_started_components_with_gres_qpu():
    fields = "|{state}|0:0|{part}||2026-11-30T11:00:00|2026-11-30T11:00:{start}|{end}|None|{user}|{acct}|{tres}|{name}"
    rows = [
        ("5+0", fields.format(state="COMPLETED", part="cpu", start="01", end="2026-11-30T11:00:09", user="alice",
                              acct="phys", tres="billing=1,cpu=1,node=1", name="hcqw:wf:q0001")),
        ("5+1", fields.format(state="CANCELLED by 0", part="qpu", start="01", end="2026-11-30T11:00:04", user="alice",
                              acct="phys", tres="billing=1,cpu=1,gres/qpu=1,node=1", name="hcqw:wf:q0001")),
        ("6", fields.format(state="RUNNING", part="qpu", start="30", end="Unknown", user="bob", acct="chem",
                            tres="cpu=1,gres/qpu=2,node=1", name="wrap")),
        ("7", fields.format(state="PENDING", part="qpu", start="", end="Unknown", user="bob", acct="chem",
                            tres="", name="wrap").replace("11:00:|", "Unknown|")),
    ]
    text = "\n".join(f"{job_id}|{job_id.split('+')[0]}{rest}" for job_id, rest in rows) + "\n"
    charges = {c.job_id: c for c in charges_from_records(parse_sacct(text), now=NOW)}
    assert set(charges) == {"5+1", "6"}  # the cpu part and the pending job charge nothing
    het = charges["5+1"]
    assert (het.user, het.account, het.workflow, het.node, het.devices) == ("alice", "phys", "wf", "q0001", 1)
    assert het.end - het.start == 3
    running = charges["6"]
    assert running.workflow is None and running.devices == 2 and running.end == NOW


def test_user_of_an_event_prefers_the_authenticated_identity():
    assert event_user({"user": "alice"}) == "alice"
    assert event_user({"user": {"uid": 1001, "name": "alice"}}) == "alice"
    assert event_user({"identity": {"uid": 1001, "user": "alice"}, "user": "claimed"}) == "alice"
    assert event_user({"user": {"uid": 1001}}) == "uid 1001"
    assert event_user({"uid": 0}) == "uid 0" and event_user({}) is None


# -- the table ------------------------------------------------------------------------------------


def charge(user, account, workflow, node, start, end, devices=1):
    return Charge(user, account, workflow, node, float(start), float(end), devices)


def busy(workflow, node, start, end, user="root"):
    return Busy(user, workflow, node, float(start), float(end), "qsim")


def table(by="user,account,workflow", period=Period(), **kw):
    charges = [
        charge("alice", "phys", "wfA", "q1", 0, 10),
        charge("alice", "phys", "wfA", "q2", 20, 30, devices=2),
        charge("bob", "chem", "wfB", "q1", 10, 20),
        charge("bob", "chem", None, None, 40, 44),  # a plain qpu job, no workflow
    ]
    execs = [
        busy("wfA", "q1", 1, 3), busy("wfA", "q1", 4, 5),
        busy("wfA", "q2", 29.5, 30.8),  # SLURM's whole seconds: a little past the charge still belongs to it
        busy("wfB", "q1", 12, 16, user="claimed-name"),  # the charge's user wins
        busy("wfC", "q9", 50, 51, user="carol"),  # no charge covers it
    ]
    return usage_table(charges, execs, period, "sacct", parse_groups(by), **kw)


def rows(t):
    return {tuple(r.key.values()): r for r in t.rows}


def test_charged_and_busy_per_user_account_and_workflow():
    t = table()
    r = rows(t)
    assert list(r) == [("alice", "phys", "wfA"), ("bob", "chem", "wfB"), ("bob", "chem", None), ("carol", None, "wfC")]
    alice = r[("alice", "phys", "wfA")]
    assert (alice.charges, alice.charged_s, alice.batches) == (2, 10 + 2 * 10, 3)
    assert alice.busy_s == pytest.approx(2 + 1 + 1.3) and alice.ratio == pytest.approx(4.3 / 30)
    bob = r[("bob", "chem", "wfB")]
    assert (bob.charged_s, bob.busy_s, bob.ratio) == (10, 4, 0.4)
    assert r[("bob", "chem", None)].busy_s == 0 and r[("bob", "chem", None)].ratio == 0
    carol = r[("carol", None, "wfC")]
    assert (carol.charged_s, carol.busy_s, carol.ratio) == (0, 1, None) and t.unmatched_batches == 1
    assert (t.total.charged_s, t.total.busy_s, t.total.charges) == (44, pytest.approx(9.3), 4)


def test_grouping_by_fewer_fields_sums_rows():
    r = rows(table(by="user"))
    assert list(r) == [("alice",), ("bob",), ("carol",)]
    assert (r[("bob",)].charged_s, r[("bob",)].busy_s, r[("bob",)].charges) == (14, 4, 2)
    assert rows(table(by="workflow,user"))[("alice", "wfA")].charged_s == 30  # columns keep their fixed order
    with pytest.raises(UsageError, match="choose one or more of user,account,workflow"):
        parse_groups("user,project")


def test_period_cuts_charges_and_execs():
    r = rows(table(period=Period(2, 25)))
    alice = r[("alice", "phys", "wfA")]
    assert alice.charged_s == 8 + 2 * 5 and alice.busy_s == 2  # [2,3] and [4,5]; wfA/q2's exec is after 25
    assert ("bob", "chem", None) not in r and ("carol", None, "wfC") not in r


def test_a_job_shorter_than_slurms_second_counts_with_zero_seconds():
    t = usage_table([charge("alice", "a", None, None, 10, 10)], [], Period(5, 20), "sacct")
    assert [(r.charges, r.charged_s) for r in t.rows] == [(1, 0)]


def test_an_exec_in_another_attempt_of_the_node_finds_that_attempt():
    charges = [charge("alice", "a", "wf", "q1", 0, 5), charge("bob", "b", "wf", "q1", 100, 105)]
    t = usage_table(charges, [busy("wf", "q1", 101, 102)], Period(), "sacct")
    assert rows(t)[("bob", "b", "wf")].busy_s == 1 and rows(t)[("alice", "a", "wf")].busy_s == 0


def test_an_exec_of_a_fused_node_s_quantum_part_belongs_to_the_fused_job_s_charge():
    t = usage_table([charge("alice", "a", "wf", "qc0003", 0, 5)], [busy("wf", "q0003", 1, 2, user="bob")], Period(),
                    "sacct")
    assert rows(t)[("alice", "a", "wf")].busy_s == 1 and t.unmatched_batches == 0


def test_outputs_agree():
    t = table()
    text = format_table(t)
    lines = text.splitlines()
    assert lines[0] == "period: the first record .. now" and "sacct" in lines[1]
    header = next(line for line in lines if line.startswith("user"))
    assert header.split() == ["user", "account", "workflow", "charges", "charged", "s", "batches", "busy", "s",
                              "busy/charged"]
    body = lines[lines.index(header) + 2:]
    assert body[0].split() == ["alice", "phys", "wfA", "2", "30.00", "3", "4.30", "0.143"]
    assert body[3].split() == ["carol", "-", "wfC", "0", "0.00", "1", "1.00", "-"]
    assert lines[-2].split() == ["total", "4", "44.00", "5", "9.30", "0.211"]
    assert lines[-1].startswith("1 batch(es) lay outside every charge")
    assert len({len(line) for line in body[:4]}) == 1  # aligned: right-justified numbers end in one column
    data = json.loads(to_json(t))
    assert data["charge_source"] == "sacct" and data["total"]["charged_s"] == 44
    assert data["rows"][2] == {"user": "bob", "account": "chem", "workflow": None, "charges": 1, "charged_s": 4.0,
                               "batches": 0, "busy_s": 0.0, "busy_ratio": 0.0}
    parsed = list(csv.DictReader(io.StringIO(to_csv(t))))
    assert [(p["user"], p["workflow"], float(p["charged_s"])) for p in parsed] == [
        ("alice", "wfA", 30.0), ("bob", "wfB", 10.0), ("bob", "", 4.0), ("carol", "wfC", 0.0)]
    assert parsed[3]["busy_ratio"] == ""


def test_without_logs_busy_is_unknown_not_zero():
    t = usage_table([charge("alice", "phys", "wfA", "q1", 0, 10)], None, Period(), "sacct")
    assert "n/a" in format_table(t) and "no metrics logs given" in format_table(t)
    assert json.loads(to_json(t))["rows"][0]["busy_s"] is None
    assert next(csv.DictReader(io.StringIO(to_csv(t))))["busy_s"] == ""
