"""hcqw.timeline: the co-scheduling figures, the Gantt renderers, the CLI, and the benchmark's quick mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hcqw.cli import main as hcqw_main
from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_monolithic, run_split
from hcqw.metrics import MetricsLog
from hcqw.timeline.analysis import clip, consistency_problems, covered, gaps, quantum_nodes, summarize, union
from hcqw.timeline.events import Event, TimelineError, find_metrics, load_run
from hcqw.workflow import HybridLoop, RunContext

ROOT = Path(__file__).resolve().parents[1]


def ev(kind: str, wf: str, node: str, start: float, end: float | None = None, device: str = "qsim") -> Event:
    return Event(kind, wf, node, start, start if end is None else end, device if kind in ("hold", "exec") else "")


# -- interval algebra -----------------------------------------------------------------------------


def test_union_merges_overlapping_touching_and_nested_spans_and_drops_empty_ones():
    spans = [(5, 6), (0, 2), (1, 3), (3, 4), (7, 7), (9, 8), (10, 12), (10.5, 11)]
    assert union(spans) == [(0, 4), (5, 6), (10, 12)]
    assert covered(spans) == pytest.approx(4 + 1 + 2)
    assert union([]) == [] and covered([]) == 0


def test_gaps_are_the_complement_within_the_window():
    spans = [(1, 2), (1.5, 3), (5, 6), (8, 20)]
    assert gaps(spans, 0, 10) == [(0, 1), (3, 5), (6, 8)]
    assert gaps(spans, 2.5, 5.5) == [(3, 5)]
    assert gaps([], 0, 1) == [(0, 1)]
    assert gaps([(0, 1)], 0, 1) == []


def test_clip_cuts_spans_to_a_window():
    assert clip([(0, 2), (3, 5), (6, 7)], 1, 4) == [(1, 2), (3, 4)]


# -- figures on hand-made timelines ---------------------------------------------------------------


def hand_made() -> list[Event]:
    """Two workflows, split style. a: ready 0, holds 1-3 (exec 1.5-2.5), cpu 3-5, ready 5, holds 6-7 (exec 6-7).
    b: ready 0, holds 3-4 (exec 3-4), cpu 4-8. Device idle (no hold) during 0-1, 4-6; wait a/q1 = 1, a/q2 = 1, b/q1 = 3."""
    return [
        ev("ready", "a", "q1", 0), ev("ready", "b", "q1", 0),
        ev("hold", "a", "q1", 1, 3), ev("exec", "a", "q1", 1.5, 2.5), ev("cpu", "a", "c1", 3, 5),
        ev("ready", "a", "q2", 5), ev("hold", "a", "q2", 6, 7), ev("exec", "a", "q2", 6, 7),
        ev("hold", "b", "q1", 3, 4), ev("exec", "b", "q1", 3, 4), ev("cpu", "b", "c1", 4, 8),
    ]


def test_summary_figures_of_a_hand_made_timeline():
    s = summarize(hand_made())
    assert (s.workflows, s.quantum_nodes, s.classical_nodes) == (2, 3, 2)
    assert s.makespan == 8
    assert s.qpu_busy == 3 and s.qpu_busy_fraction == pytest.approx(3 / 8)
    assert s.qpu_allocated == 4 and s.qpu_allocated_fraction == pytest.approx(0.5)
    assert s.qpu_allocated_idle == pytest.approx(1.0)  # a/q1 held 2 s, executed 1 s
    assert s.qpu_free == pytest.approx(4.0)
    assert s.idle_gaps == 4 and s.longest_idle_gap == pytest.approx(2.0)  # no exec: 0-1.5, 2.5-3, 4-6, 7-8
    assert s.wait_mean == pytest.approx((1 + 1 + 3) / 3) and s.wait_max == 3 and s.waits_measured == 3
    assert s.quantum_work == 3 and s.classical_work == 6
    assert s.longest_workflow == pytest.approx(5)  # b: 1 s exec + 4 s cpu
    assert s.bound == 5 and s.makespan_over_bound == pytest.approx(8 / 5)
    assert s.hold_per_workflow == {"a": 3, "b": 1}
    # a/q1 -> b/q1 (b waiting since 0): 2.5 -> 3; b/q1 -> a/q2 is no hand-over: a/q2 became ready at 5, after 4.
    assert s.handovers_measured == 1 and s.handover_median == pytest.approx(0.5) == s.handover_p95


def test_hand_over_is_per_device_and_skips_interleaved_blocks_and_idle_demand():
    events = [ev("ready", "a", "q1", 0), ev("ready", "b", "q1", 0), ev("ready", "c", "q1", 0),
              ev("exec", "a", "q1", 1, 2), ev("exec", "b", "q1", 2.25, 3), ev("exec", "c", "q1", 4, 5),
              ev("exec", "d", "q1", 1.5, 2.5, device="other"),  # another device: no hand-over with a
              ev("exec", "a", "q2", 6, 7), ev("exec", "b", "q2", 6.5, 7.5), ev("ready", "a", "q2", 5.5)]  # b/q2 interleaves with a/q2
    s = summarize(events)
    assert s.handovers_measured == 2  # a->b 0.25 s, b->c 1 s; c->a/q2 (ready 5.5 > 5) and a/q2~b/q2 are not
    assert s.handover_median == pytest.approx(0.625) and s.handover_p95 == pytest.approx(0.25 + 0.95 * 0.75)


def test_lower_bound_counts_the_shortest_final_classical_stretch():
    # Both workflows end with classical work after their last block: the device's 2 s of work plus
    # the shorter of the two final stretches (1 s) is more than either workflow alone (2.5 s).
    events = [ev("exec", "a", "q1", 0, 1), ev("cpu", "a", "c1", 1, 2.5),
              ev("exec", "b", "q1", 1, 2), ev("cpu", "b", "c1", 2, 3)]
    s = summarize(events)
    assert s.longest_workflow == 2.5 and s.bound == pytest.approx(3.0)


def test_wait_without_ready_events_falls_back_to_the_workflows_previous_interval():
    events = [e for e in hand_made() if e.kind != "ready"]
    waits = {(n.workflow, n.node): n.wait for n in quantum_nodes(events)}
    assert waits == {("a", "q1"): None, ("a", "q2"): 1.0, ("b", "q1"): None}  # a/q2 after a's cpu ended at 5
    assert summarize(events).waits_measured == 1


def test_monolithic_hold_counts_the_classical_time_inside_it_as_allocated_but_idle():
    events = [ev("ready", "m", "monolithic", 0), ev("hold", "m", "monolithic", 0, 4),
              ev("exec", "m", "monolithic", 0, 1), ev("cpu", "m", "c1", 1, 2),
              ev("exec", "m", "monolithic", 2, 3), ev("cpu", "m", "c2", 3, 4)]
    s = summarize(events)
    assert s.qpu_allocated_fraction == 1 and s.qpu_busy_fraction == 0.5 and s.qpu_allocated_idle == 2
    assert s.bound == 4 and s.makespan_over_bound == 1
    assert consistency_problems(events) == []


def test_service_sessions_share_the_device_so_only_their_own_execs_count_as_allocated(tmp_path):
    """The QPU service logs each session as a hold with a session id; sessions overlap by design."""
    log = MetricsLog(tmp_path / "service" / "metrics" / "qpu.jsonl")
    for wf, start, end in (("a", 0, 6), ("b", 0.5, 5)):
        log.record("hold", workflow=wf, node="q1", device="qsim", session=f"s-{wf}", start=start, end=end)
    log.record("exec", workflow="a", node="q1", device="qsim", session="s-a", start=1, end=3)
    log.record("exec", workflow="b", node="q1", device="qsim", session="s-b", start=3, end=4)
    run = MetricsLog(tmp_path / "a" / "metrics" / "qpu.jsonl")
    run.record("ready", workflow="a", node="q1", start=0)
    run.record("session", workflow="a", node="q1", device="tcp://127.0.0.1:1", start=0, end=6.1)  # the client's
    MetricsLog(tmp_path / "b" / "metrics" / "qpu.jsonl").record("ready", workflow="b", node="q1", start=0.5)
    events = load_run(tmp_path)
    assert {e.kind for e in events} == {"session", "exec", "ready"}
    assert consistency_problems(events) == []
    s = summarize(events)
    assert s.quantum_nodes == 2 and s.qpu_busy == 3
    assert s.qpu_allocated == s.qpu_busy and s.qpu_allocated_idle == 0
    assert s.hold_per_workflow == {"a": 2, "b": 1}
    assert {(n.workflow, n.wait) for n in quantum_nodes(events)} == {("a", 1), ("b", 2.5)}  # ready to first exec
    stray = events + [ev("exec", "c", "q1", 7, 8)]
    assert "exec c/q1" in "\n".join(consistency_problems(stray))


def test_a_gateway_session_inside_its_nodes_hold_is_not_a_second_quantum_node():
    """SLURM quantum nodes: the lease logs the hold, the job's gateway (a one-session service) the session."""
    events = [ev("ready", "a", "q1", 0), ev("hold", "a", "q1", 1, 4, device="gateway"),
              Event("session", "a", "q1", 1.1, 3.9, "qsim"), ev("exec", "a", "q1", 2, 3)]
    s = summarize(events)
    assert s.quantum_nodes == 1 and s.qpu_allocated == 3 and s.qpu_allocated_idle == 2 and s.wait_max == 1
    assert consistency_problems(events) == []


def test_consistency_catches_overlapping_holds_and_stray_execs():
    events = [ev("hold", "a", "q1", 0, 2), ev("hold", "b", "q1", 1, 3), ev("exec", "a", "q1", 0, 1),
              ev("exec", "b", "q2", 1.5, 2.5), ev("cpu", "a", "c1", 3, 2)]
    problems = "\n".join(consistency_problems(events))
    assert "held twice at once" in problems
    assert "exec b/q2" in problems and "outside every hold" in problems
    assert "cpu a/c1 ends before it starts" in problems
    assert consistency_problems(hand_made()) == []


def test_summarize_filters_by_device_and_rejects_empty_input():
    events = hand_made() + [ev("hold", "z", "q1", 100, 101, device="other")]
    assert summarize(events, device="qsim") == summarize(hand_made())
    with pytest.raises(ValueError):
        summarize([])


def test_find_metrics_collects_every_workflows_log_and_explains_a_wrong_path(tmp_path):
    for wf in ("w0", "w1"):
        MetricsLog(tmp_path / "cell" / wf / "metrics" / "qpu.jsonl").record("hold", workflow=wf, node="q1", start=0, end=1)
    (tmp_path / "cell" / "stray.jsonl").write_text("")
    found = find_metrics(tmp_path / "cell")
    assert [p.parent.parent.name for p in found] == ["w0", "w1"]
    assert find_metrics(found[0]) == [found[0]]
    assert {e.workflow for e in load_run(tmp_path / "cell")} == {"w0", "w1"}
    with pytest.raises(TimelineError, match="no such file"):
        find_metrics(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TimelineError, match="no metrics/qpu.jsonl"):
        find_metrics(tmp_path / "empty")


# -- a small real run, rendered -------------------------------------------------------------------


def tiny_loop(iterations: int) -> HybridLoop:
    """Two-qubit Bell sampling; the core logs its ready, hold, exec and cpu events."""
    import cirq

    q = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.H(q[0]), cirq.CNOT(*q), cirq.measure(*q, key="m"))

    def classical_step(state: int, measured) -> int:
        bits = measured[0].measurements["m"]
        assert (bits[:, 0] == bits[:, 1]).all()  # a Bell pair
        return state + 1

    return HybridLoop("tiny", lambda: 0, lambda s, qpu: qpu.run(circuit, 20), classical_step, iterations, seed=3)


def make_workflows(runs: Path, count: int = 2, iterations: int = 3) -> list[Workflow]:
    return [Workflow(tiny_loop(iterations), RunContext(f"w{j}", runs / f"w{j}")) for j in range(count)]


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
    assert "<script" not in html and "src=" not in html and "href=" not in html  # nothing external
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

    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # job scripts import tests.hetjob.loops
    backend = open_backend("sbatch", env=slurm_lab.env, poll_interval=0.2)
    run_chain(backend, "tests.hetjob.loops:make", {"iterations": 2}, "chain", tmp_path, timeout=120)
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
