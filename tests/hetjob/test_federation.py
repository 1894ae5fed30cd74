"""C1 -> C2: a quantum node submitted to the QPU-side cluster through its real slurmrestd,
followed there, its checkpoint brought back; the job runs as the submitting user; the JWT
shows up in no log, script, job output or error text."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest

from hcqw.hetjob.federation import RemoteSite, run_quantum_node_remote
from hcqw.hetjob.jobs import NodeJobSettings, node_request
from hcqw.slurm import ComponentSpec, JobRequest, Phase, SlurmError, open_backend
from hcqw.slurm.rest import submit_payload
from hcqw.workflow import RunContext, build_dag, load_loop, run_node

pytestmark = pytest.mark.slurm
LOOP = "tests.hetjob.loops:make"


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
