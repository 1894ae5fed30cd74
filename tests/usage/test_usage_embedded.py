"""``hcqw usage`` on the embedded default: real runs of the VQE example, charge from the logs' holds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hcqw.cli import main as hcqw_main
from hcqw.identity import current_user
from hcqw.metrics import read_events

VQE = "examples.vqe.pipeline:make_loop"


def _usage(capsys, *args: str) -> str:
    capsys.readouterr()
    assert hcqw_main(["usage", *args]) == 0
    return capsys.readouterr().out


def _run(runs: Path, workflow: str, *extra: str) -> Path:
    assert hcqw_main(["run", VQE, "--param", "iterations=3", "--param", "shots=300", "--runs-dir", str(runs),
                      "--workflow-id", workflow, *extra]) == 0
    return runs / workflow / "metrics" / "qpu.jsonl"


def _seconds(log: Path, kind: str) -> tuple[int, float]:
    events = list(read_events(log, kind))
    return len(events), sum(e["end"] - e["start"] for e in events)


def test_usage_of_embedded_runs_per_workflow_and_user(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    logs = {"vqe-split": _run(runs, "vqe-split"), "vqe-mono": _run(runs, "vqe-mono", "--monolithic")}
    # No SLURM accounting reachable: auto falls back to the logs' holds.
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "no-slurm.conf"))
    data = json.loads(_usage(capsys, str(runs), "--json"))
    assert data["charge_source"] == "hold" and data["busy_known"] is True
    rows = {r["workflow"]: r for r in data["rows"]}
    assert set(rows) == {"vqe-split", "vqe-mono"}
    for workflow, log in logs.items():
        row = rows[workflow]
        holds, held = _seconds(log, "hold")
        execs, busy = _seconds(log, "exec")
        assert row["user"] == current_user() and row["account"] is None
        assert (row["charges"], row["batches"]) == (holds, execs)
        assert row["charged_s"] == pytest.approx(held) and row["busy_s"] == pytest.approx(busy)
        assert 0 < row["busy_ratio"] <= 1
    assert rows["vqe-split"]["charges"] == 3 and rows["vqe-mono"]["charges"] == 1  # one hold per quantum node
    assert data["unmatched_batches"] == 0

    by_user = json.loads(_usage(capsys, str(runs), "--charge", "hold", "--by", "user", "--json"))
    (user_row,) = by_user["rows"]
    assert user_row["charged_s"] == pytest.approx(sum(r["charged_s"] for r in rows.values()))

    table = _usage(capsys, str(runs), "--charge", "hold")
    assert "the device's hold intervals in the metrics logs (no SLURM)" in table
    line = next(line for line in table.splitlines() if "vqe-split" in line)
    assert line.split()[:4] == [current_user(), "-", "vqe-split", "3"]

    # A period after the runs holds nothing.
    later = json.loads(_usage(capsys, str(runs), "--charge", "hold", "--since", "2999-01-01", "--json"))
    assert later["rows"] == [] and later["total"]["charged_s"] == 0


def test_usage_errors_name_the_problem(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "no-slurm.conf"))
    assert hcqw_main(["usage"]) == 2
    assert "no metrics logs given" in capsys.readouterr().err
    assert hcqw_main(["usage", str(tmp_path)]) == 2
    assert "no metrics/qpu.jsonl below it" in capsys.readouterr().err
    assert hcqw_main(["usage", str(tmp_path), "--since", "last week"]) == 2
    assert "time 'last week' not understood" in capsys.readouterr().err
