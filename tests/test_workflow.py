"""Checkpoints bound to their place, checked where every engine resumes: ``node_done`` and ``run_node``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcqw.cli import main as hcqw_main
from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_split
from hcqw.errors import CheckpointMismatch
from hcqw.metrics import read_events
from hcqw.workflow import HybridLoop, RunContext, build_dag, load_loop, run_fingerprint, run_node

QAOA = "examples.qaoa_maxcut.pipeline:make_loop"


def counting_loop(iterations: int = 4) -> HybridLoop:
    def quantum(state, qpu):
        import cirq

        q = cirq.LineQubit(0)
        return int(qpu.run(cirq.Circuit(cirq.X(q), cirq.measure(q, key="m")), 3)[0].measurements["m"].sum())

    return HybridLoop("count", lambda: 0, quantum, lambda state, measured: state + measured, iterations=iterations)


def snapshot(ctx: RunContext) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(ctx.checkpoints.iterdir())}


def test_a_rolled_back_checkpoint_stops_the_resume_before_any_node_runs(tmp_path):
    wf = Workflow.create(counting_loop(), tmp_path, "count-1")
    run_split([wf], LocalDevice("cirq"))
    assert wf.final_state() == 12
    wf.ctx.path("state-0003.ckpt").write_bytes(wf.ctx.path("state-0001.ckpt").read_bytes())  # roll back 3 to 1
    before, holds = snapshot(wf.ctx), len(list(read_events(wf.ctx.metrics_path, "hold")))
    with pytest.raises(CheckpointMismatch, match=r"state-0003\.ckpt: was written as state-0001\.ckpt"):
        run_split([wf], LocalDevice("cirq"))
    assert snapshot(wf.ctx) == before and len(list(read_events(wf.ctx.metrics_path, "hold"))) == holds


def test_a_node_refuses_a_swapped_input(tmp_path):
    """An engine that runs one node (a SLURM job) checks its inputs the same way."""
    loop = counting_loop(2)
    wf = Workflow.create(loop, tmp_path, "count-2")
    run_split([wf], LocalDevice("cirq"))
    ctx, c0002 = wf.ctx, build_dag(loop)[4]
    assert c0002.inputs == ("state-0001.ckpt", "quantum-0002.ckpt")
    ctx.path("quantum-0002.ckpt").write_bytes(ctx.path("quantum-0001.ckpt").read_bytes())
    with pytest.raises(CheckpointMismatch, match=r"quantum-0002\.ckpt: was written as quantum-0001\.ckpt"):
        run_node(loop, c0002, ctx, None)


def test_fingerprints_follow_the_loop_definition():
    assert load_loop(QAOA, {"iterations": 2}).fingerprint == run_fingerprint(QAOA, {"iterations": 2})
    assert load_loop(QAOA, {"iterations": 2}).fingerprint != load_loop(QAOA, {"iterations": 2, "shots": 100}).fingerprint
    assert load_loop(QAOA, {"shots": 100, "iterations": 2}).fingerprint == run_fingerprint(
        QAOA, {"iterations": 2, "shots": 100})  # order of --param flags does not matter
    loop = load_loop(QAOA, {"iterations": 2})
    assert {node.fingerprint for node in build_dag(loop)} == {loop.fingerprint}
    assert counting_loop(3).fingerprint == counting_loop(3).fingerprint != counting_loop(4).fingerprint


def run_cli(tmp_path: Path, *params: str) -> int:
    args = ["run", QAOA, "--runs-dir", str(tmp_path), "--workflow-id", "qaoa"]
    for param in params:
        args += ["--param", param]
    return hcqw_main(args)


def test_a_resume_with_other_parameters_is_refused_and_leaves_the_run_alone(tmp_path, capsys):
    assert run_cli(tmp_path, "iterations=2", "shots=200") == 0
    ctx = RunContext("qaoa", tmp_path / "qaoa")
    before = snapshot(ctx)
    capsys.readouterr()
    assert run_cli(tmp_path, "iterations=2", "shots=300") == 2
    err = capsys.readouterr().err
    assert "state-0000.ckpt: was written by a run of workflow 'qaoa' with another loop or other parameters" in err
    assert "use a new workflow id" in err
    assert snapshot(ctx) == before  # nothing recomputed, nothing overwritten
    assert run_cli(tmp_path, "shots=200", "iterations=2") == 0  # the same parameters resume (nothing left to do)
    assert snapshot(ctx) == before
