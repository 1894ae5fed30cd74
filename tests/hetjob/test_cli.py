"""``hcqw slurm run``, the user's entry point: run by a lab user on the site lab, as README shows it,
over ZeroMQ and over MPI (the same energies as the embedded run with the same seed, each quantum
node's components on a cpu and a qpu host, the run's files the user's alone); and over slurmrestd
with a token file, followed to its result."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from examples.qaoa_maxcut.pipeline import brute_force_max_cut
from hcqw.checkpoint import load_checkpoint
from hcqw.cli import main as hcqw_main
from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_split
from hcqw.lab.pytest_plugin import make_user_dir
from hcqw.slurm import BACKENDS
from hcqw.paths import state_file
from hcqw.workflow import load_loop
from tests.support import ROOT  # `python -m hcqw` there runs this checkout's hcqw
from tests.support.lab_user import ALICE, BOB, assert_private, checkpoint_key, quantum_nodes_across_hosts, run_as

pytestmark = pytest.mark.slurm
VQE = "examples.vqe.pipeline:make_loop"
VQE_PARAMS = {"iterations": 2, "shots": 500, "seed": 11}
TRANSPORTS = ("zmq", "mpi")


@pytest.fixture(scope="module")
def embedded_vqe(tmp_path_factory):
    """The same VQE on the embedded default (its own key and device queue: module scope)."""
    home = tmp_path_factory.mktemp("embedded-vqe")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HCQW_CHECKPOINT_KEY", str(home / "key"))
        mp.setenv("HCQW_STATE_DIR", str(home / "state"))
        workflow = Workflow.create(load_loop(VQE, VQE_PARAMS), home / "runs", "vqe-emb")
        run_split([workflow], LocalDevice("qsim", directory=home / "device"))
        return workflow.final_state()


@pytest.fixture(scope="module")
def alice_chains(slurm_lab):
    """``hcqw slurm run`` of the VQE as hcqw-alice, over each transport, both at once: (runs dir, transport ->
    workflow id)."""
    runs = make_user_dir(slurm_lab, ALICE, "slurm-run") / "runs"
    workflows = {transport: f"vqe-{transport}-{uuid.uuid4().hex[:6]}" for transport in TRANSPORTS}
    params = [arg for name, value in VQE_PARAMS.items() for arg in ("--param", f"{name}={value}")]
    with ThreadPoolExecutor(len(workflows)) as pool:
        for done in [pool.submit(run_as, slurm_lab, ALICE, ["hcqw", "slurm", "run", VQE, *params, "--runs-dir",
                                                            str(runs), "--workflow-id", workflow, "--transport",
                                                            transport], timeout=400)
                     for transport, workflow in workflows.items()]:
            done.result()
    yield runs, workflows
    shutil.rmtree(runs.parent, ignore_errors=True)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_slurm_run_as_a_lab_user_matches_the_embedded_run(transport, alice_chains, embedded_vqe, slurm_lab):
    runs, workflows = alice_chains
    workflow = workflows[transport]
    final = runs / workflow / "checkpoints" / state_file(VQE_PARAMS["iterations"])
    state, _ = load_checkpoint(final, workflow=workflow, key=checkpoint_key(slurm_lab, ALICE))
    assert state.energies == embedded_vqe.energies
    assert len(quantum_nodes_across_hosts(slurm_lab, workflow, ALICE)) == VQE_PARAMS["iterations"]
    gateway_logs = sorted((runs / workflow / "jobs").glob("q*/gateway.log"))
    assert len(gateway_logs) == VQE_PARAMS["iterations"]
    if transport == "mpi":
        assert all("MPI port open" in path.read_text() for path in gateway_logs)
    job_dir = gateway_logs[0].parent
    assert_private(slurm_lab, ALICE, [runs / workflow, final, job_dir, gateway_logs[0], job_dir / "node.pid"], BOB)


def test_slurm_run_over_rest_completes_a_chain_and_never_shows_the_token(slurm_lab, job_env, tmp_path, capsys):
    token = slurm_lab.token(lifespan=600)
    token_file = tmp_path / "jwt"
    token_file.write_text(token)
    token_file.chmod(0o600)
    code = hcqw_main(["slurm", "run", "examples.qaoa_maxcut.pipeline:make_loop", "--param", "iterations=1",
                      "--runs-dir", str(tmp_path / "runs"), "--workflow-id", "cli-rest", "--backend", "rest",
                      "--rest-url", slurm_lab.rest_url, "--token-file", str(token_file)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "qc0001: SLURM job" in out and "resuming" not in out  # fused by default; the submitter wrote init
    assert f"{brute_force_max_cut()}" in out  # the loop's summary line names the optimum
    assert token not in out + err
    for path in (tmp_path / "runs").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"token leaked into {path}"


def slurm_run(*args: str) -> subprocess.CompletedProcess:
    """``hcqw slurm run`` as a user types it (with no SLURM to reach: every case here is refused first)."""
    return subprocess.run([sys.executable, "-m", "hcqw", "slurm", "run", "examples.qaoa_maxcut.pipeline:make_loop",
                           *args], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "SLURM_CONF": "/nonexistent/slurm.conf"})


@pytest.mark.parametrize("backend", ["sbatch", "embedded", "cluster"])
def test_slurm_run_refuses_an_unknown_backend_with_the_valid_choices(backend):
    done = slurm_run("--backend", backend)
    assert done.returncode == 2 and f"invalid choice: '{backend}'" in done.stderr
    assert all(f"'{choice}'" in done.stderr for choice in BACKENDS)


@pytest.mark.parametrize(("args", "says"), [
    (("--backend", "local"), "choose one of 'slurm' (sbatch on this cluster), 'rest'"),  # that is `hcqw run`
    (("--backend", "rest"), "backend 'rest' needs the slurmrestd URL: set --rest-url"),
    (("--token-file", "/tmp/jwt"), "backend 'slurm' (sbatch on this cluster) reads no --token-file"),
    (("--backend", "slurm", "--rest-url", "http://127.0.0.1:6820"), "reads no --rest-url"),
    (("--window", "3"), "window must be at least 4 job records"),
    (("--window", "many"), "--window takes a number of job records or 'whole'"),
    (("--no-wait", "--window", "5"), "--window needs a follower"),
])
def test_slurm_run_refuses_combinations_that_mean_nothing_before_submitting(args, says):
    done = slurm_run(*args)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "SLURM job" not in done.stdout
