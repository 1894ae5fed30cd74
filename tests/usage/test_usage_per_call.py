"""What SLURM charges a per-call driver (``HCQW_DEVICE=per-call``): each call's own qpu job, on the accounting lab.

The calls run in this process (root, as the other ``hcqw usage`` lab tests), each holding the device about
2 s, with classical pauses between them: sacct must show one gres/qpu job per call charged about that hold,
and ``hcqw usage`` the calls as the workflow's charges, next to the device time its gateways logged.
"""

from __future__ import annotations

import time

import cirq
import pytest

from hcqw import environment
from hcqw.lab.pytest_plugin import wait_for
from hcqw.metrics import read_events
from hcqw.qpu import open_qpu
from hcqw.usage.collect import collect
from hcqw.usage.period import Period
from tests.usage.test_usage_lab import qpu_seconds, recorded

pytestmark = pytest.mark.slurm
CALLS, HOLD_S, PAUSE_S = 2, 2.0, 1.5


def test_each_call_is_charged_its_own_qpu_job(lab_env, acct_lab, monkeypatch, tmp_path):
    since = time.time() - 1
    workflow = f"per-call-usage-{int(since)}"
    metrics = tmp_path / "metrics" / "qpu.jsonl"
    for key, value in {environment.DEVICE: environment.PER_CALL, environment.WORKFLOW: workflow,
                       environment.NODE: "driver", environment.METRICS: str(metrics),
                       environment.PER_CALL_SERVICE: acct_lab.layout.qpu_service_address_pattern,
                       environment.PER_CALL_DIR: str(tmp_path / "jobs")}.items():
        monkeypatch.setenv(key, value)
    q = cirq.LineQubit.range(2)
    bell = cirq.Circuit(cirq.H(q[0]), cirq.CNOT(*q), cirq.measure(*q, key="m"))
    for call in range(CALLS):
        if call:
            time.sleep(PAUSE_S)
        with open_qpu(seed=call) as qpu:
            qpu.run(bell, 16)
            time.sleep(HOLD_S)  # the call's own classical work inside its block: held, so charged

    jobs = [event["job"] for event in read_events(metrics, "acquire")]
    assert len(jobs) == CALLS
    rows = wait_for(lambda: recorded(lab_env, jobs, CALLS, since), 60, "slurmdbd to record the calls' jobs")
    for row in rows.values():
        # SLURM's whole seconds: each call's job lived its hold plus its start-up and release.
        assert "gres/qpu=1" in row["AllocTRES"] and HOLD_S <= int(row["ElapsedRaw"]) <= HOLD_S + 3, row
    charged = qpu_seconds(rows)

    table = collect([tmp_path], Period(since=since), "sacct")
    (usage,) = [r for r in table.rows if r.key["workflow"] == workflow]  # the device's execs matched to the calls
    assert (usage.charges, usage.charged_s) == (CALLS, charged)
    execs = list(read_events(metrics.with_name("gateway.jsonl"), "exec"))
    assert (usage.batches, usage.busy_s) == (CALLS, pytest.approx(sum(e["end"] - e["start"] for e in execs)))
    assert table.unmatched_batches == 0
    print(f"per-call usage: {usage.charges} charges, {usage.charged_s:.0f} s charged, busy {usage.busy_s}, "
          f"holds {[round(h['end'] - h['start'], 2) for h in read_events(metrics, 'hold')]}")
