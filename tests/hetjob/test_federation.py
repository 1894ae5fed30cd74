"""C1 -> C2: a quantum node submitted to the QPU-side cluster through its real slurmrestd,
followed there, its checkpoint brought back, all run by a lab user; the job runs as that user,
its components on C2's cpu and qpu hosts; the JWT shows up in no log, script, job output or
error text."""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid

import pytest

from hcqw.hetjob.federation import SharedFsStager
from hcqw.hetjob.jobs import NodeJobSettings, node_request
from hcqw.checkpoint import load_checkpoint, save_checkpoint
from hcqw.slurm import ComponentSpec, JobRequest, Phase, SlurmError, open_backend
from hcqw.slurm.rest import submit_payload
from hcqw.workflow import RunContext, build_dag, load_loop
from tests.support.lab_user import ALICE, BOB, assert_private, quantum_nodes_across_hosts, run_as

LOOP = "tests.support.loops:make"


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
def test_quantum_node_on_the_qpu_side_cluster_as_a_lab_user(slurm_lab, slurm_lab_c2, lab_user_dir):
    """hcqw-alice runs the federation herself (tests/hetjob/federate_node.py with the site's Python), her
    C2 token in a 0600 file of hers."""
    token = slurm_lab_c2.token(lifespan=900, username=ALICE)
    home = lab_user_dir(ALICE)
    token_file = home / "c2.jwt"
    token_file.write_text(token)
    token_file.chmod(0o600)
    shutil.chown(token_file, ALICE, ALICE)
    workflow = f"wf-fed-{uuid.uuid4().hex[:6]}"
    run_dir, staging = home / "c1" / workflow, home / "c2"
    env = [arg for name, value in slurm_lab_c2.env.items() for arg in ("--env", f"{name}={value}")]
    done = run_as(slurm_lab, ALICE, ["python", "-m", "tests.hetjob.federate_node", workflow, str(run_dir),
                                     str(staging), "--rest-url", slurm_lab_c2.rest_url, "--token-file", str(token_file),
                                     *env], timeout=300)
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["phase"] == "completed" and outcome["released"] == [1] and outcome["user"] == ALICE, outcome
    nodes = build_dag(load_loop(LOOP, {}))
    ctx = RunContext(workflow, run_dir)
    assert ctx.path(nodes[1].output).exists()  # the result came back to C1 ...
    assert ctx.path(nodes[2].output).exists()  # ... and C1 went on with it
    # C2 ran (and accounts) the job as alice, its two components on C2's cpu and qpu hosts.
    assert list(quantum_nodes_across_hosts(slurm_lab_c2, workflow, ALICE)) == [outcome["leader"]]
    staged = [staging / workflow / "checkpoints" / name for name in (*nodes[1].inputs, nodes[1].output)]
    assert_private(slurm_lab, ALICE, [*staged, ctx.path(nodes[1].output), token_file], BOB)  # no copy wider
    texts = [done.stdout, done.stderr] + [p.read_text(errors="replace") for p in home.rglob("*")
                                           if p.is_file() and p != token_file and not p.name.endswith(".ckpt")]
    assert len(texts) > 6
    assert all(token not in text for text in texts)


@pytest.mark.slurm
def test_rest_cancel_and_errors_on_the_qpu_side_cluster_never_show_the_token(slurm_lab_c2, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    token = slurm_lab_c2.token(lifespan=900)
    c2 = open_backend("rest", url=slurm_lab_c2.rest_url, token=token, poll_interval=0.2)
    sleeper = c2.submit(JobRequest(workflow_id="wf-fed", node="sleeper", body="sleep 60",
                                   components=(ComponentSpec("cpu", time_limit=2),), workdir=tmp_path,
                                   environment=dict(slurm_lab_c2.env)))
    c2.cancel(sleeper)
    assert c2.wait(sleeper, timeout=30).phase is Phase.CANCELLED
    with pytest.raises(SlurmError) as refused:
        c2.submit(JobRequest(workflow_id="wf-fed", node="bad", body="true",
                             components=(ComponentSpec("nosuchpartition"),), workdir=tmp_path))
    nodes = build_dag(load_loop(LOOP, {}))
    script = submit_payload(node_request(nodes[1], loop_ref=LOOP, params={}, workflow="wf-fed",
                                         run_dir=tmp_path / "wf-fed", settings=NodeJobSettings()))
    texts = [caplog.text, str(refused.value), repr(c2), str(script)]
    texts += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert all(token not in text for text in texts)
