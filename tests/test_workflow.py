"""Checkpoints bound to their place, checked where every engine resumes: ``node_done`` and ``run_node``."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcqw.cli import main as hcqw_main
from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_split
from hcqw.errors import CheckpointMismatch
from hcqw.metrics import read_events
from hcqw.workflow import HybridLoop, RunContext, build_dag, dag_to_resume, load_loop, run_fingerprint, run_node

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


VQE = "examples.vqe.pipeline:make_loop"


def test_a_fused_run_writes_the_split_run_s_checkpoints_and_events_and_the_same_energy(tmp_path):
    params = {"iterations": 3, "shots": 300, "seed": 5}
    split = Workflow.create(load_loop(VQE, params), tmp_path, "vqe-split")
    fused = Workflow.create(load_loop(VQE, params), tmp_path, "vqe-fused")
    run_split([split], LocalDevice("qsim", directory=tmp_path / "device"))
    run_split([fused], LocalDevice("qsim", directory=tmp_path / "device"), fused=True)
    assert fused.final_state().energies == split.final_state().energies
    assert list(snapshot(fused.ctx)) == list(snapshot(split.ctx))  # the same files, so either form resumes the other
    for kind in ("ready", "hold", "exec", "cpu"):
        nodes = lambda wf: sorted(e["node"] for e in read_events(wf.ctx.metrics_path, kind))  # noqa: E731
        assert nodes(fused) == nodes(split), kind
    # Every fused iteration ended its hold before its classical step started.
    holds = {e["node"][1:]: e for e in read_events(fused.ctx.metrics_path, "hold")}
    assert all(holds[e["node"][1:]]["end"] <= e["start"] for e in read_events(fused.ctx.metrics_path, "cpu"))


def test_a_fused_node_whose_job_died_after_its_quantum_part_resumes_without_the_device(tmp_path):
    params = {"iterations": 3, "shots": 300, "seed": 5}
    loop = load_loop(VQE, params)
    wf = Workflow.create(loop, tmp_path, "vqe-fused")
    device = LocalDevice("qsim", directory=tmp_path / "device")
    run_split([wf], device, fused=True)
    expected = wf.final_state()
    for name in ("state-0002.ckpt", "state-0003.ckpt", "quantum-0003.ckpt"):  # died in c0002's step
        wf.ctx.path(name).unlink()
    holds = len(list(read_events(wf.ctx.metrics_path, "hold")))
    released = []
    qc0002 = build_dag(loop, fused=True)[2]
    assert qc0002.name == "qc0002" and [p.name for p in qc0002.parts] == ["q0002", "c0002"]
    run_node(loop, qc0002, wf.ctx, device, release=lambda: released.append(True))
    assert released == [True]  # the qpu is given back although no block ran
    assert len(list(read_events(wf.ctx.metrics_path, "hold"))) == holds  # q0002's checkpoint was used
    run_split([wf], device, fused=True)
    assert wf.final_state().energies == expected.energies
    assert len(list(read_events(wf.ctx.metrics_path, "hold"))) == holds + 1  # only q0003 ran again


def test_a_half_done_fused_iteration_resumes_as_its_classical_node(tmp_path):
    loop = load_loop(VQE, {"iterations": 3, "shots": 300, "seed": 5})
    wf = Workflow.create(loop, tmp_path, "vqe-fused")
    run_split([wf], LocalDevice("qsim", directory=tmp_path / "device"), fused=True)
    for name in ("state-0002.ckpt", "state-0003.ckpt", "quantum-0003.ckpt"):
        wf.ctx.path(name).unlink()
    nodes = [(n.name, n.kind.value, n.after) for n in dag_to_resume(loop, wf.ctx, fused=True)]
    assert nodes == [("init", "classical", ()), ("qc0001", "fused", ("init",)),
                     ("c0002", "classical", ("qc0001",)), ("qc0003", "fused", ("c0002",))]
