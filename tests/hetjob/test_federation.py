"""C1 -> C2: a quantum node submitted to the QPU-side cluster through its real slurmrestd,
followed there, its checkpoint brought back; the job runs as the submitting user; the JWT
shows up in no log, script, job output or error text."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest

from hcqw.hetjob.federation import RemoteSite, SharedFsStager, run_quantum_node_remote
from hcqw.hetjob.jobs import NodeJobSettings, node_request
from hcqw.checkpoint import load_checkpoint, save_checkpoint
from hcqw.slurm import ComponentSpec, JobRequest, Phase, SlurmError, open_backend
from hcqw.slurm.rest import submit_payload
from hcqw.workflow import RunContext, build_dag, load_loop, run_node

LOOP = "tests.hetjob.loops:make"


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_staged_copies_stay_private_whatever_the_umask(tmp_path):
    original = tmp_path / "c1" / "state-0000.ckpt"
    save_checkpoint(original, {"theta": 1.0}, workflow="wf", iteration=0, producer="init")
    old = os.umask(0o022)  # a usual umask: new files 0644
    try:
        SharedFsStager().stage_in(original, tmp_path / "c2" / "wf" / "state-0000.ckpt")
        SharedFsStager().stage_out(tmp_path / "c2" / "wf" / "state-0000.ckpt", tmp_path / "back.ckpt")
    finally:
        os.umask(old)
    assert mode(original) == mode(tmp_path / "c2" / "wf" / "state-0000.ckpt") == mode(tmp_path / "back.ckpt") == 0o600
    assert load_checkpoint(tmp_path / "back.ckpt", workflow="wf")[0] == {"theta": 1.0}


@pytest.mark.slurm
def test_quantum_node_on_the_qpu_side_cluster(slurm_lab, slurm_lab_c2, job_env, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    token = slurm_lab_c2.token(lifespan=900)
    c2 = open_backend("rest", url=slurm_lab_c2.rest_url, token=token, poll_interval=0.2)
    loop = load_loop(LOOP, {})
    ctx = RunContext("wf-fed", tmp_path / "c1" / "wf-fed")
    nodes = build_dag(loop)
    run_node(loop, nodes[0], ctx, None)  # init on C1
    site = RemoteSite(c2, tmp_path / "c2", environment=dict(slurm_lab_c2.env))

    state = run_quantum_node_remote(site, LOOP, {}, ctx, "q0001", timeout=90)
    assert state.phase is Phase.COMPLETED and state.released == (1,)
    assert ctx.path(nodes[1].output).exists()  # the result came back to C1
    staged = [tmp_path / "c2" / "wf-fed" / "checkpoints" / name for name in (*nodes[1].inputs, nodes[1].output)]
    assert [mode(p) for p in (*staged, ctx.path(nodes[1].output))] == [0o600] * 3  # no copy wider than the original
    run_node(loop, nodes[2], ctx, None)  # and C1 goes on with it
    assert ctx.path(nodes[2].output).exists()

    # C2 ran (and accounts) the job as the user named in the REST request.
    shown = subprocess.run(["scontrol", "-o", "show", "job", state.leader_id], capture_output=True, text=True,
                           env={**os.environ, **slurm_lab_c2.env}, check=True).stdout
    assert f"UserId={c2.user}(" in shown

    # REST cancel on C2.
    sleeper = c2.submit(JobRequest(workflow_id="wf-fed", node="sleeper", body="sleep 60",
                                   components=(ComponentSpec("cpu", time_limit=2),), workdir=tmp_path / "c2",
                                   environment=dict(slurm_lab_c2.env)))
    c2.cancel(sleeper)
    assert c2.wait(sleeper, timeout=30).phase is Phase.CANCELLED

    # An error from C2 carries no token either.
    with pytest.raises(SlurmError) as refused:
        c2.submit(JobRequest(workflow_id="wf-fed", node="bad", body="true",
                             components=(ComponentSpec("nosuchpartition"),), workdir=tmp_path / "c2"))
    script = submit_payload(node_request(nodes[1], loop_ref=LOOP, params={}, workflow="wf-fed",
                                         run_dir=tmp_path / "c2" / "wf-fed", settings=NodeJobSettings()))
    texts = [caplog.text, str(refused.value), repr(c2), str(script)]
    texts += [p.read_text(errors="replace") for root in (tmp_path / "c1", tmp_path / "c2")
              for p in root.rglob("*") if p.is_file() and not p.name.endswith(".ckpt")]
    assert len(texts) > 6
    assert all(token not in text for text in texts)
