"""hcqw.timeline on real runs: the report's figures, the Gantt renderers, the CLI, and the benchmark's quick mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hcqw.cli import main as hcqw_main
from hcqw.device import LocalDevice
from hcqw.embedded import run_monolithic, run_split
from hcqw.timeline.analysis import consistency_problems, summarize
from hcqw.timeline.events import load_run
from tests.support import ROOT
from tests.timeline.timelines import make_workflows


# -- a small real run, rendered -------------------------------------------------------------------


def independent_figures(run_dir: Path) -> dict:
    """The figures straight from the JSON lines, without hcqw.timeline."""
    lines = [json.loads(line) for path in sorted(run_dir.rglob("qpu.jsonl")) for line in path.read_text().splitlines()]
    start = min(e["start"] for e in lines)
    end = max(e.get("end", e["start"]) for e in lines)
    execs = sorted((e["start"], e["end"]) for e in lines if e["kind"] == "exec")
    busy, cursor = 0.0, float("-inf")
    for a, b in execs:  # sweep-line union
        if b > cursor:
            busy += b - max(a, cursor)
            cursor = b
    holds = [e for e in lines if e["kind"] == "hold"]
    ready = {(e["workflow"], e["node"]): e["start"] for e in lines if e["kind"] == "ready"}
    waits = [h["start"] - ready[(h["workflow"], h["node"])] for h in holds]
    per_wf: dict[str, float] = {}
    for h in holds:
        per_wf[h["workflow"]] = per_wf.get(h["workflow"], 0.0) + h["end"] - h["start"]
    exec_sum = sum(b - a for a, b in execs)
    work = {wf: sum(e["end"] - e["start"] for e in lines if e["workflow"] == wf and e["kind"] in ("exec", "cpu"))
            for wf in per_wf}
    last_exec = {wf: max(e["end"] for e in lines if e["workflow"] == wf and e["kind"] == "exec") for wf in per_wf}
    final = min(sum(e["end"] - e["start"] for e in lines
                    if e["workflow"] == wf and e["kind"] == "cpu" and e["start"] >= last_exec[wf])
                for wf in per_wf)
    return {"makespan": end - start, "qpu_busy": busy, "qpu_allocated_idle": sum(per_wf.values()) - exec_sum,
            "wait_mean": sum(waits) / len(waits), "wait_max": max(waits), "hold_per_workflow": per_wf,
            "bound": max(exec_sum + final, max(work.values())), "quantum_nodes": len(holds)}


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory) -> tuple[Path, Path]:
    """2 workflows x 3 iterations, split and monolithic, on one local device."""
    base = tmp_path_factory.mktemp("timeline-runs")
    device = LocalDevice("qsim", directory=base / "device")
    run_split(make_workflows(base / "split"), device)
    for wf in make_workflows(base / "monolithic"):
        run_monolithic(wf, device)
    return base / "monolithic", base / "split"


def test_report_figures_equal_those_computed_from_the_metrics_log(small_runs, capsys):
    mono, split = small_runs
    assert hcqw_main(["report", str(mono), str(split), "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)
    for label, run_dir in (("monolithic", mono), ("split", split)):
        expected, got = independent_figures(run_dir), reported[label]
        for key in ("makespan", "qpu_busy", "qpu_allocated_idle", "wait_mean", "wait_max", "bound"):
            assert got[key] == pytest.approx(expected[key], abs=1e-9), (label, key)
        assert got["hold_per_workflow"] == pytest.approx(expected["hold_per_workflow"])
        assert got["quantum_nodes"] == expected["quantum_nodes"]
        assert got["qpu_busy"] <= got["makespan"]
        assert consistency_problems(load_run(run_dir)) == []
    assert reported["split"]["quantum_nodes"] == 6 and reported["monolithic"]["quantum_nodes"] == 2
    assert reported["split"]["classical_nodes"] == reported["monolithic"]["classical_nodes"] == 6


def test_report_prints_a_table(small_runs, capsys):
    assert hcqw_main(["report", str(small_runs[1])]) == 0
    out = capsys.readouterr().out
    assert "makespan / bound" in out and "QPU holding per workflow: w0" in out
    assert "hand-over, median" in out and "hand-over, p95" in out


def test_a_run_on_one_device_reads_as_one_qpu(small_runs, capsys):
    """One device: one QPU lane, no device rows, and that device's figures are the run's."""
    from hcqw.timeline.layout import layout

    events = load_run(small_runs[1])
    s = summarize(events)
    assert list(s.devices) == ["qsim"] and s.qpu_devices == 1
    device = s.devices["qsim"]
    for key in ("quantum_nodes", "qpu_busy", "qpu_busy_fraction", "qpu_allocated", "qpu_allocated_idle", "qpu_free",
                "idle_gaps", "wait_mean", "waits_measured", "quantum_work", "hold_per_workflow", "handovers_measured"):
        assert getattr(device, key) == getattr(s, key), key
    assert layout("split", events).lanes == ["QPU", "w0", "w1"]
    assert hcqw_main(["report", str(small_runs[1])]) == 0
    out = capsys.readouterr().out
    assert "QPU devices" not in out and "device qsim" not in out and " on qsim" not in out


def test_timeline_renders_png_svg_and_self_contained_html(small_runs, tmp_path, capsys):
    mono, split = small_runs
    assert hcqw_main(["timeline", str(mono), str(split), "--out", str(tmp_path), "--name", "k2",
                      "--title", "tiny: monolithic vs split"]) == 0
    out = capsys.readouterr().out
    assert "QPU busy fraction" in out
    png, svg, page = (tmp_path / f"k2.{ext}" for ext in ("png", "svg", "html"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "<svg" in svg.read_text()
    html = page.read_text()
    assert html.count("<svg") >= 3  # one per run plus the legend, inline
    assert html.count("<script") == html.count("<script>") == 1  # the tooltip's, inline
    assert "src=" not in html and "href=" not in html and "url(http" not in html  # nothing external
    assert "w0/q0002 exec" in html and "QPU free" in html  # tooltips per bar, idle gaps marked
    split_summary = summarize(load_run(split))
    assert f"{split_summary.makespan:.2f} s" in html


def test_cli_errors_are_clean(tmp_path, capsys):
    assert hcqw_main(["report", str(tmp_path)]) == 2
    assert "no metrics/qpu.jsonl" in capsys.readouterr().err
    assert hcqw_main(["timeline", str(tmp_path), "--format", "gif"]) == 2


def test_report_of_a_plain_slurm_chain_shows_execs_waits_and_classical_work(slurm_lab, tmp_path, monkeypatch, capsys):
    """No benchmark code: the core's ready/cpu events, the lease's holds and the gateway's execs."""
    from hcqw.hetjob.chain import run_chain
    from hcqw.slurm import open_backend

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # job scripts import tests.support.loops
    backend = open_backend("slurm", env=slurm_lab.env, poll_interval=0.2)
    run_chain(backend, "tests.support.loops:make", {"iterations": 2}, "chain", tmp_path, timeout=120)
    events = load_run(tmp_path / "chain")
    assert sorted(e.node for e in events if e.kind == "exec") == ["q0001", "q0002"]
    assert consistency_problems(events) == []
    assert hcqw_main(["report", str(tmp_path / "chain"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["chain"]
    assert (s["quantum_nodes"], s["classical_nodes"], s["waits_measured"]) == (2, 2, 2)
    assert 0 < s["qpu_busy"] <= s["qpu_allocated"] <= s["makespan"]


@pytest.mark.slow
def test_benchmark_quick_mode_is_consistent(tmp_path):
    """The benchmark's own check (exit status) covers consistency; timing goals are only reported."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "coschedule.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["problems"] == []
    assert {(r["k"], r["mode"]) for r in results["rows"]} == {(k, m) for k in (1, 2)
                                                               for m in ("monolithic", "split", "session")}
    for cell in results["cells"]:
        s = cell["summary"]
        assert s["qpu_busy"] <= s["qpu_allocated"] + 1e-3 <= s["makespan"] + 2e-3
