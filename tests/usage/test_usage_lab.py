"""``hcqw usage`` against real SLURM accounting: a lab cluster with slurmdbd and gres/qpu tracked.

The charge must be exactly what SLURM recorded (elapsed x gres/qpu), checked against a
separate ``sacct`` call; the busy time is what the run's gateway logged.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime

import pytest

from hcqw.cli import main as hcqw_main
from hcqw.hetjob.chain import run_chain
from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.lab.pytest_plugin import wait_for
from hcqw.metrics import read_events
from hcqw.slurm import open_backend
from hcqw.usage.collect import collect
from hcqw.usage.period import Period

pytestmark = pytest.mark.slurm


def sacct_rows(env: dict, job_ids: list[str]) -> dict[str, dict]:
    """SLURM's own record of the jobs' allocations, read here without hcqw's parser."""
    fields = ["JobID", "State", "Start", "End", "ElapsedRaw", "AllocTRES", "User", "Account"]
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-o", ",".join(fields), "-j", ",".join(job_ids)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return {row["JobID"]: row for row in (dict(zip(fields, line.split("|"))) for line in out.splitlines())}


def recorded(env: dict, job_ids: list[str], rows: int, since: float) -> dict[str, dict] | None:
    """The rows once slurmdbd has every one of them finished, also to a query by period (measured: on a
    fresh database that answered a few seconds after the query by job id)."""
    found = sacct_rows(env, job_ids)
    done = len(found) == rows and all(r["End"] not in ("Unknown", "") for r in found.values())
    if not done:
        return None
    in_period = subprocess.run(["sacct", "-a", "-X", "-n", "-P", "-o", "JobID,End", "-S",
                                datetime.fromtimestamp(int(since)).isoformat(), "-E", "now"],
                               env=env, capture_output=True, text=True, check=True).stdout
    listed = {line.split("|")[0] for line in in_period.splitlines() if "Unknown" not in line}
    return found if set(found) <= listed else None


def qpu_seconds(rows: dict[str, dict]) -> float:
    return sum(int(r["ElapsedRaw"]) for r in rows.values() if "gres/qpu=1" in r["AllocTRES"].split(","))


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def quiet_since(env: dict) -> float:
    """A period's start that no earlier test's job overlaps: once the lab's queue is empty, past the last end
    (SLURM records whole seconds; a clean-clone run saw the fair-share test's jobs end inside ``now - 1``)."""
    wait_for(lambda: not subprocess.run(["squeue", "-h", "-o", "%i"], env=env, capture_output=True, text=True,
                                        check=True).stdout.strip(), 120, "the accounting lab's queue to drain")
    time.sleep(2)
    return time.time() - 1


def test_plain_qpu_job_is_charged_its_elapsed_time(lab_env, capsys):
    since = quiet_since(lab_env)  # every job of the period is this test's
    job = subprocess.run(["sbatch", "--parsable", "-p", "qpu", "--gres=qpu:1", "-o", "/dev/null", "--wrap", "sleep 2"],
                         env=lab_env, capture_output=True, text=True, check=True).stdout.strip()
    (row,) = wait_for(lambda: recorded(lab_env, [job], 1, since), 60, "slurmdbd to record the job").values()
    assert int(row["ElapsedRaw"]) >= 2 and "gres/qpu=1" in row["AllocTRES"]

    table = collect([], Period(since=since), "sacct")
    (usage,) = table.rows
    assert usage.key == {"user": row["User"], "account": row["Account"], "workflow": None}
    assert (usage.charges, usage.charged_s) == (1, int(row["ElapsedRaw"]))
    assert table.charge_source == "sacct" and not table.busy_known  # no logs given: busy unknown

    # Cut to a period inside the job: half a second off each end.
    start, end = epoch(row["Start"]), epoch(row["End"])
    inside = collect([], Period(start + 0.5, end - 0.5), "sacct")
    assert inside.total.charged_s == pytest.approx(end - start - 1)

    # The command line, auto-detecting accounting, gives the same figure.
    capsys.readouterr()
    assert hcqw_main(["usage", "--since", datetime.fromtimestamp(since).isoformat(), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["charge_source"] == "sacct" and data["total"]["charged_s"] == int(row["ElapsedRaw"])


def test_hetjob_chain_charge_beside_its_busy_time(lab_env, tmp_path, capsys):
    since = time.time() - 1
    sbatch = open_backend("slurm", poll_interval=0.2)
    workflow = f"usage-{int(since)}"
    # Two quantum nodes, each holding the device a second after its batch ran: charged > busy.
    chain = run_chain(sbatch, "tests.support.loops:make", {"iterations": 2, "hold": 1.0}, workflow, tmp_path / "runs",
                      timeout=300)
    leaders = [job for node, job in chain.jobs]
    quantum = [job for node, job in chain.jobs if node.startswith("q")]
    assert len(quantum) == 2
    # sacct -X: one row per plain job, two per hetjob.
    rows = wait_for(lambda: recorded(lab_env, leaders, len(leaders) + len(quantum), since), 60, "slurmdbd to record the chain")
    charged = qpu_seconds(rows)
    assert {job for job, r in rows.items() if "gres/qpu=1" in r["AllocTRES"]} == {f"{q}+1" for q in quantum}
    execs = list(read_events(chain.run_dir / "metrics" / "gateway.jsonl", "exec"))
    assert len(execs) == 2
    busy = sum(e["end"] - e["start"] for e in execs)

    table = collect([chain.run_dir], Period(since=since), "sacct")
    by_workflow = {r.key["workflow"]: r for r in table.rows}
    assert set(by_workflow) == {workflow}  # the chain's cpu-only jobs charge nothing
    usage = by_workflow[workflow]
    assert usage.key["user"] == rows[f"{quantum[0]}+1"]["User"]
    assert (usage.charges, usage.charged_s) == (2, charged)
    assert (usage.batches, usage.busy_s) == (2, pytest.approx(busy))
    assert usage.ratio == pytest.approx(busy / charged) and 0 < usage.ratio < 1
    assert charged >= 2  # each qpu component lived at least its 1 s hold
    assert table.unmatched_batches == 0

    capsys.readouterr()
    assert hcqw_main(["usage", str(chain.run_dir), "--since", datetime.fromtimestamp(since).isoformat()]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if workflow in line)
    assert line.split()[2:6] == [workflow, "2", f"{charged:.2f}", "2"]


def test_resident_service_log_gives_the_busy_time_once(lab_env, resident, tmp_path):
    """Quantum nodes relaying to a resident QPU service: its exec log alone gives the busy time, matched to
    SLURM's charges; given together with the run (whose gateway logs the same execs) nothing counts twice."""
    upstream, service_log = resident
    since = time.time() - 1
    sbatch = open_backend("slurm", poll_interval=0.2)
    workflow = f"usage-relay-{int(since)}"
    chain = run_chain(sbatch, "tests.support.loops:make", {"iterations": 2, "hold": 0.5}, workflow, tmp_path / "runs",
                      settings=NodeJobSettings(device_service=upstream), timeout=300)
    leaders = [job for _, job in chain.jobs]
    quantum = [job for node, job in chain.jobs if node.startswith("q")]
    rows = wait_for(lambda: recorded(lab_env, leaders, len(leaders) + len(quantum), since), 60,
                    "slurmdbd to record the chain")
    served = [e for e in read_events(service_log, "exec") if e["workflow"] == workflow]
    relayed = list(read_events(chain.run_dir / "metrics" / "gateway.jsonl", "exec"))
    assert len(served) == 2 and len(relayed) == 2  # the same two batches, in both logs

    from_service = collect([service_log], Period(since=since), "sacct")
    both = collect([service_log, chain.run_dir], Period(since=since), "sacct")
    for table in (from_service, both):
        (usage,) = [r for r in table.rows if r.key["workflow"] == workflow]
        assert (usage.charges, usage.charged_s) == (2, qpu_seconds(rows))
        assert (usage.batches, usage.busy_s) == (2, pytest.approx(sum(e["end"] - e["start"] for e in served)))
        assert usage.key["user"] == rows[f"{quantum[0]}+1"]["User"] and table.unmatched_batches == 0
