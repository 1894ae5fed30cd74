"""The embedded default: hybrid loops as DAGs on one machine, with checkpoints and the QPU timeline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from examples.qaoa_maxcut.pipeline import brute_force_max_cut, make_loop as make_qaoa
from examples.vqe.pipeline import exact_ground_energy, make_loop as make_vqe
from hcqw.checkpoint import load_checkpoint
from hcqw.cli import main as hcqw_main
from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_monolithic, run_split
from hcqw.errors import CheckpointError, WorkflowError
from hcqw.metrics import read_events
from hcqw.workflow import HybridLoop, NodeKind, build_dag, load_loop
from tests.support import ROOT


def test_dag_alternates_quantum_and_classical_nodes_linked_by_checkpoints():
    nodes = build_dag(make_vqe(iterations=2))
    assert [(n.name, n.kind) for n in nodes] == [
        ("init", NodeKind.CLASSICAL), ("q0001", NodeKind.QUANTUM), ("c0001", NodeKind.CLASSICAL),
        ("q0002", NodeKind.QUANTUM), ("c0002", NodeKind.CLASSICAL)]
    by_name = {n.name: n for n in nodes}
    assert by_name["q0002"].inputs == (by_name["c0001"].output,)
    assert set(by_name["c0002"].inputs) == {by_name["c0001"].output, by_name["q0002"].output}


def test_vqe_converges_on_the_embedded_default(tmp_path):
    wf = Workflow.create(make_vqe(), tmp_path)
    run_split([wf], LocalDevice("qsim"))
    assert abs(wf.final_state().energy - exact_ground_energy()) <= 1e-2
    holds = list(read_events(wf.ctx.metrics_path, "hold"))
    assert [h["node"] for h in holds] == [f"q{i:04d}" for i in range(1, 31)]  # one device hold per quantum node


def test_monolithic_and_split_agree_with_the_same_seed_but_hold_the_device_differently(tmp_path):
    device = LocalDevice("qsim")
    split = Workflow.create(make_vqe(iterations=4), tmp_path / "split")
    mono = Workflow.create(make_vqe(iterations=4), tmp_path / "mono")
    run_split([split], device)
    run_monolithic(mono, device)
    assert split.final_state().energies == mono.final_state().energies
    assert len(list(read_events(split.ctx.metrics_path, "hold"))) == 4
    (mono_hold,) = read_events(mono.ctx.metrics_path, "hold")
    mono_exec = list(read_events(mono.ctx.metrics_path, "exec"))
    assert mono_hold["start"] <= mono_exec[0]["start"] and mono_exec[-1]["end"] <= mono_hold["end"]


def test_qaoa_finds_a_good_cut(tmp_path):
    wf = Workflow.create(make_qaoa(), tmp_path)
    run_split([wf], LocalDevice("qsim"))
    state = wf.final_state()
    assert state.best_cut == brute_force_max_cut() == 7
    assert state.ratio > 0.8  # p=2 QAOA on this graph; a random assignment averages 4.5/7 = 0.64


FLAKY_FLAG = "HCQW_TEST_FAIL_AT"


def counting_loop(calls: Path) -> HybridLoop:
    """A loop whose classical step fails once at the iteration named in $HCQW_TEST_FAIL_AT."""

    def quantum(state, qpu):
        import cirq

        with calls.open("a") as f:
            f.write(f"q{state}\n")
        q = cirq.LineQubit(0)
        return int(qpu.run(cirq.Circuit(cirq.X(q), cirq.measure(q, key="m")), 3)[0].measurements["m"].sum())

    def classical(state, measured):
        if os.environ.get(FLAKY_FLAG) == str(state + 1):
            raise RuntimeError("node lost its allocation")
        return state + 1 + 0 * measured

    return HybridLoop("count", lambda: 0, quantum, classical, iterations=4)


def test_failed_node_stops_the_run_and_a_rerun_resumes_after_the_last_checkpoint(tmp_path, monkeypatch):
    calls = tmp_path / "calls.txt"
    wf = Workflow.create(counting_loop(calls), tmp_path, workflow_id="count-1")
    monkeypatch.setenv(FLAKY_FLAG, "3")
    with pytest.raises(WorkflowError, match="count-1/c0003: RuntimeError: node lost its allocation"):
        run_split([wf], LocalDevice("cirq"))
    assert calls.read_text().split() == ["q0", "q1", "q2"]
    monkeypatch.delenv(FLAKY_FLAG)
    run_split([wf], LocalDevice("cirq"))
    # q0003 had written its checkpoint before c0003 failed: the resume starts at c0003 and never re-runs it.
    assert calls.read_text().split() == ["q0", "q1", "q2", "q3"]
    assert wf.final_state() == 4


def test_converged_loop_skips_the_remaining_quantum_nodes(tmp_path):
    calls = tmp_path / "calls.txt"
    base = counting_loop(calls)
    loop = HybridLoop("count", base.initial_state, base.quantum_step, base.classical_step, iterations=5,
                      converged=lambda s: s >= 2)
    wf = Workflow.create(loop, tmp_path)
    run_split([wf], LocalDevice("cirq"))
    assert calls.read_text().split() == ["q0", "q1"]
    assert wf.final_state() == 2


def test_tampered_checkpoint_stops_a_resume(tmp_path):
    wf = Workflow.create(counting_loop(tmp_path / "calls"), tmp_path)
    run_split([wf], LocalDevice("cirq"))
    path = wf.ctx.path("state-0002.ckpt")
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CheckpointError, match="state-0002.ckpt: signature mismatch"):
        run_split([wf], LocalDevice("cirq"))


def test_missing_input_checkpoint_is_a_clear_error(tmp_path):
    from hcqw.workflow import RunContext, run_node

    loop = counting_loop(tmp_path / "calls")
    with pytest.raises(CheckpointError, match="state-0000.ckpt: missing"):
        run_node(loop, build_dag(loop)[1], RunContext("wf", tmp_path), LocalDevice("cirq"))


def test_loop_references_are_checked():
    assert load_loop("examples.vqe.pipeline:make_loop", {"iterations": 3}).iterations == 3
    with pytest.raises(WorkflowError, match="must look like"):
        load_loop("examples.vqe.pipeline")
    with pytest.raises(WorkflowError, match="cannot import loop"):
        load_loop("examples.nothing:make_loop")
    with pytest.raises(WorkflowError, match="iterations must be a positive int"):
        load_loop("examples.vqe.pipeline:make_loop", {"iterations": 0})


def test_cli_run_reports_errors_without_traceback(capsys):
    assert hcqw_main(["run", "examples.nothing:loop"]) == 2
    assert "hcqw: error: cannot import loop" in capsys.readouterr().err


def test_cli_runs_a_loop(tmp_path, capsys):
    assert hcqw_main(["run", "examples.qaoa_maxcut.pipeline:make_loop", "--param", "iterations=3",
                      "--runs-dir", str(tmp_path), "--workflow-id", "cli"]) == 0
    assert "approximation ratio" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "cli" / "checkpoints" / "state-0003.ckpt", workflow="cli")[1].iteration == 3


@pytest.mark.slow
def test_two_vqe_runs_started_together_never_overlap_on_the_device_and_both_converge(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen([sys.executable, "-m", "examples.vqe", "--quiet", "--runs-dir", str(tmp_path),
                              "--workflow-id", name], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
            for name in ("alice", "bob")]
    outputs = [proc.communicate(timeout=300)[0] for proc in runs]
    assert [proc.returncode for proc in runs] == [0, 0], outputs
    assert all("(within 1e-2)" in out for out in outputs), outputs
    holds = sorted((e["start"], e["end"], e["workflow"])
                   for name in ("alice", "bob") for e in read_events(tmp_path / name / "metrics/qpu.jsonl", "hold"))
    assert len(holds) == 60
    for (_, end, _), (start, _, _) in zip(holds, holds[1:]):
        assert end <= start, "two quantum nodes held the device at the same time"
    owners = [w for *_, w in holds]
    switches = sum(a != b for a, b in zip(owners, owners[1:]))
    assert switches >= 10, f"runs did not interleave on the device: {owners}"
