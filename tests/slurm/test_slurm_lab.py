"""Integration tests of hcqw.slurm against the real lab SLURM cluster (Slurm 22.05).

Every job here really runs: plain jobs and cpu+qpu hetjobs through sbatch and
through slurmrestd, the early release of the qpu component, cancellation, and
each typed error produced by the real daemons.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from hcqw.slurm import (
    ComponentSpec,
    ControllerUnreachable,
    InvalidGres,
    JobFailed,
    JobRequest,
    Phase,
    RestAuthError,
    SlurmError,
    UnknownPartition,
    merge_components,
    open_backend,
)
from hcqw.lab.pytest_plugin import wait_for
from hcqw.slurm.rest import submit_payload
from hcqw.slurm.status import CliStatusSource

pytestmark = pytest.mark.slurm
# Timings are logged: see them with --log-cli-level=INFO.
log = logging.getLogger(__name__)

CPU = ComponentSpec("cpu", time_limit=5)
QPU = ComponentSpec("qpu", gres="qpu:1", time_limit=5)
POLL = 0.1


def request(workdir: Path, node: str, body: str, *components: ComponentSpec, **kw) -> JobRequest:
    return JobRequest(workflow_id="itest", node=node, body=body, components=components or (CPU,), workdir=workdir, **kw)


@pytest.fixture
def sbatch(slurm_lab):
    return open_backend("slurm", env=slurm_lab.env, poll_interval=POLL)


@pytest.fixture
def rest(slurm_lab):
    return open_backend("rest", url=slurm_lab.rest_url, token=slurm_lab.token(lifespan=900), poll_interval=POLL)


@pytest.fixture(params=["slurm", "rest"])
def backend(request, sbatch, rest):
    return {"slurm": sbatch, "rest": rest}[request.param]


def test_status_source_detects_missing_accounting(slurm_lab):
    # The lab runs without slurmdbd: sacct exists but exits 1, so scontrol must be used.
    assert CliStatusSource(slurm_lab.env).uses_sacct is False


def test_plain_job_runs_to_completion(backend, tmp_path):
    started = time.monotonic()
    job_id = backend.submit(request(tmp_path, "plain", 'echo "ran on $SLURMD_NODENAME as $SLURM_JOB_NAME"'))
    submitted = time.monotonic()
    wait_for(lambda: backend.status([job_id], force=True)[job_id].phase is not Phase.PENDING, what="start")
    running = time.monotonic() - submitted
    state = backend.wait(job_id, timeout=30)
    assert state.phase is Phase.COMPLETED, state
    leader = state.leader
    assert leader.exit_code == 0 and leader.nodelist and leader.start_time and leader.end_time
    assert leader.partition == "cpu" and leader.name == "hcqw:itest:plain"
    out = (tmp_path / f"hcqw-plain-{job_id}.out").read_text()
    assert "as hcqw:itest:plain" in out
    log.info("%s: submit %.3f s, submit to start %.3f s", backend.name, submitted - started, running)


HETJOB_BODY = """srun --het-group=1 -n1 bash -c 'echo "qpu on $SLURMD_NODENAME"' > qpu.txt
touch qpu-done
while [ ! -e go ]; do sleep 0.05; done
echo "cpu done on $SLURMD_NODENAME"
"""


def test_hetjob_early_release_completes_and_frees_the_qpu(backend, slurm_lab, tmp_path):
    """Across hosts: component 0 on a cpu host, component 1 on a qpu host. Every other qpu node is held, so
    the qpu job submitted meanwhile waits for the very node component 1 holds."""
    holders = [backend.submit(request(tmp_path, f"holder{i}", "sleep 60", QPU))
               for i in range(len(slurm_lab.layout.qpu_node_names) - 1)]
    for holder in holders:
        wait_for(lambda holder=holder: backend.status([holder], force=True)[holder].phase is Phase.RUNNING,
                 what="another qpu node to be held")
    try:
        _early_release(backend, slurm_lab, tmp_path)
    finally:
        for holder in holders:
            backend.cancel(holder)


def _early_release(backend, slurm_lab, tmp_path):
    job_id = backend.submit(request(tmp_path, "het", HETJOB_BODY, CPU, QPU))
    wait_for(lambda: (tmp_path / "qpu-done").exists(), what="the quantum block")
    state = backend.status([job_id], force=True)[job_id]
    assert state.phase is Phase.RUNNING and state.component(1).phase is Phase.RUNNING
    assert state.component(1).partition == "qpu" and state.component(0).partition == "cpu"
    cpu_host, qpu_host = state.component(0).nodelist, state.component(1).nodelist
    assert cpu_host in slurm_lab.layout.cpu_node_names and qpu_host in slurm_lab.layout.qpu_node_names

    # Another user's quantum job waits for the device while we hold it.
    other = backend.submit(request(tmp_path, "other-qpu", "echo other", QPU))
    time.sleep(1.5)  # a couple of backfill ticks: it must still pend
    assert backend.status([other], force=True)[other].phase is Phase.PENDING

    released_at, released_wall = time.monotonic(), time.time()
    backend.cancel_component(job_id, 1)
    wait_for(lambda: backend.status([job_id], force=True)[job_id].component(1).phase is Phase.CANCELLED, what="release")
    state = backend.status([job_id], force=True)[job_id]
    assert state.phase is Phase.RUNNING and state.released == (1,)  # the cpu part runs on
    wait_for(lambda: backend.status([other], force=True)[other].phase is not Phase.PENDING, what="the other qpu job")
    log.info("%s: release to start of the next qpu job %.3f s", backend.name, time.monotonic() - released_at)
    time.sleep(1.0)  # component 0 runs on for a second more (SLURM's records have whole seconds)

    (tmp_path / "go").touch()
    state = backend.wait(job_id, timeout=30)
    assert state.phase is Phase.COMPLETED, state  # not failed: the release was on purpose
    assert state.released == (1,) and state.component(0).state == "COMPLETED"
    qpu, cpu = state.component(1), state.component(0)
    assert qpu.state == "CANCELLED" and qpu.start_time and qpu.end_time and qpu.nodelist == qpu_host
    assert cpu.nodelist == cpu_host
    assert qpu.end_time.timestamp() - released_wall <= 2.0  # SLURM ended the qpu component at once ...
    assert qpu.end_time < cpu.end_time  # ... while component 0 ran on
    assert (tmp_path / "qpu.txt").read_text().startswith(f"qpu on {qpu_host}")
    after = backend.wait(other, timeout=30)
    assert after.phase is Phase.COMPLETED
    # The waiting job got that same qpu node, and started before component 0 ended.
    assert after.leader.nodelist == qpu_host and after.leader.start_time < cpu.end_time


def test_release_from_inside_the_job_counts_as_success(sbatch, tmp_path):
    body = "srun --het-group=1 -n1 true\nscancel $SLURM_JOB_ID_HET_GROUP_1\nsleep 1\necho done"
    job_id = sbatch.submit(request(tmp_path, "self-release", body, CPU, QPU))
    state = sbatch.wait(job_id, timeout=30)
    assert state.phase is Phase.COMPLETED and state.released == (1,)


def test_cancel_whole_job(backend, tmp_path):
    job_id = backend.submit(request(tmp_path, "cancel-me", "touch started; sleep 60", CPU, QPU))
    wait_for(lambda: (tmp_path / "started").exists(), what="job start")
    backend.cancel(job_id)
    state = backend.wait(job_id, timeout=30)
    assert state.phase is Phase.CANCELLED and state.released == ()
    assert isinstance(backend.failure(state), JobFailed)


def test_component_of_pending_hetjob_cannot_be_released(backend, tmp_path):
    blocker = backend.submit(request(tmp_path, "blocker", "sleep 60"))
    job_id = backend.submit(request(tmp_path, "waits", "true", CPU, QPU, dependencies=(blocker,)))
    try:
        with pytest.raises(SlurmError, match=r"only be released once the job runs"):
            backend.cancel_component(job_id, 1)
    finally:
        backend.cancel(job_id)
        backend.cancel(blocker)
    assert backend.wait(job_id, timeout=30).phase is Phase.CANCELLED


def test_failed_dependency_cancels_the_dependent_job(sbatch, tmp_path):
    first = sbatch.submit(request(tmp_path, "fails", "exit 1"))
    second = sbatch.submit(request(tmp_path, "after", "echo never", dependencies=(first,)))
    assert sbatch.wait(first, timeout=30).phase is Phase.FAILED
    assert sbatch.wait(second, timeout=30).phase is Phase.CANCELLED  # kill-on-invalid-dep, not pending forever


def test_failed_job_reports_exit_code_and_output_tail(backend, tmp_path):
    job_id = backend.submit(request(tmp_path, "boom", "echo step one\necho 'it went boom' >&2\nexit 7"))
    state = backend.wait(job_id, timeout=30)
    assert state.phase is Phase.FAILED and state.exit_code == 7
    err = backend.failure(state)
    assert err.exit_code == 7 and err.job_id == job_id and err.state == "FAILED"
    assert "it went boom" in err.output_tail and "it went boom" in str(err)
    assert err.output_path == str(tmp_path / f"hcqw-boom-{job_id}.out")


def test_unknown_partition(backend, tmp_path):
    with pytest.raises(UnknownPartition, match="nosuch") as info:
        backend.submit(request(tmp_path, "p", "true", ComponentSpec("nosuch")))
    assert "sinfo" in str(info.value)


@pytest.mark.parametrize("spec", [ComponentSpec("qpu", gres="qpux:1"), ComponentSpec("qpu", gres="qpu:5"), ComponentSpec("cpu", gres="qpu:1")])
def test_invalid_gres(backend, tmp_path, spec):
    with pytest.raises(InvalidGres) as info:
        backend.submit(request(tmp_path, "g", "true", spec))
    assert spec.gres in str(info.value)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_controller_down_sbatch(slurm_lab, tmp_path):
    # A copy of the lab's configuration whose controller port has nothing listening.
    conf = tmp_path / "slurm.conf"
    port = _free_port()
    lines = []
    for line in slurm_lab.slurm_conf.read_text().splitlines():
        if line.startswith("SlurmctldPort="):
            line = f"SlurmctldPort={port}"
        elif line.startswith("MessageTimeout="):
            line = "MessageTimeout=2"  # clients give up after ~1 s instead of ~9 s
        lines.append(line)
    conf.write_text("\n".join(lines) + "\n")
    down = open_backend("slurm", env={"SLURM_CONF": str(conf)}, poll_interval=0)
    with pytest.raises(ControllerUnreachable, match="scontrol ping"):
        down.submit(request(tmp_path, "x", "true"))
    with pytest.raises(ControllerUnreachable):
        down.status(["1"])
    with pytest.raises(ControllerUnreachable):
        down.cancel("1")


def test_rest_daemon_down(tmp_path):
    down = open_backend("rest", url=f"http://127.0.0.1:{_free_port()}", token="x.y.z", poll_interval=0)
    with pytest.raises(ControllerUnreachable, match="slurmrestd"):
        down.submit(request(tmp_path, "x", "true"))


def test_rest_without_token_is_401(slurm_lab, tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JWT", raising=False)
    monkeypatch.delenv("HCQW_SLURM_JWT", raising=False)
    backend = open_backend("rest", url=slurm_lab.rest_url)
    with pytest.raises(RestAuthError) as info:
        backend.submit(request(tmp_path, "x", "true"))
    assert info.value.status == 401 and "scontrol token" in str(info.value)


def test_rest_with_bad_or_expired_token(slurm_lab, tmp_path):
    expired = slurm_lab.token(lifespan=1)
    time.sleep(2.1)
    for token, hint in (("not-a-jwt", "scontrol token"), (expired, "expired at")):
        backend = open_backend("rest", url=slurm_lab.rest_url, token=token, poll_interval=0)
        with pytest.raises(RestAuthError, match=hint) as info:
            backend.submit(request(tmp_path, "x", "true"))
        assert token not in str(info.value)
        with pytest.raises(RestAuthError):
            backend.status(["1"])


def test_token_never_leaks(slurm_lab, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    token = slurm_lab.token(lifespan=900)
    token_file = tmp_path / "jwt"
    token_file.write_text(token)
    token_file.chmod(0o600)
    # Also in our own environment: neither backend may pass it on to jobs.
    monkeypatch.setenv("SLURM_JWT", token)
    monkeypatch.setenv("HCQW_SLURM_JWT", token)
    rest = open_backend("rest", url=slurm_lab.rest_url, token_file=token_file, poll_interval=POLL)
    sbatch = open_backend("slurm", env=slurm_lab.env, poll_interval=POLL)
    body = "env > env.$SLURM_JOB_ID.txt\nsrun --het-group=1 -n1 true && echo srun-ok"
    texts = [repr(rest), repr(sbatch)]
    for backend in (rest, sbatch):
        req = request(tmp_path, f"leak-{backend.name}", body, CPU, QPU)
        texts.append(str(submit_payload(req)))
        job_id = backend.submit(req)
        state = backend.wait(job_id, timeout=30)
        assert state.phase is Phase.COMPLETED, state
        env_dump = (tmp_path / f"env.{job_id}.txt").read_text()
        assert token not in env_dump and "SLURM_JWT=" not in env_dump
        assert "srun-ok" in (tmp_path / f"hcqw-leak-{backend.name}-{job_id}.out").read_text()
        texts.append(env_dump)
    for bad in ("nosuch",):
        with pytest.raises(SlurmError) as info:
            rest.submit(request(tmp_path, "bad", "true", ComponentSpec(bad)))
        texts.append(str(info.value))
    texts.append(caplog.text)
    texts.extend(str(r.args) for r in caplog.records)
    assert not [t for t in texts if token in t]


def test_rest_hetjob_on_second_cluster(slurm_lab_c2, tmp_path):
    c2 = open_backend("rest", url=slurm_lab_c2.rest_url, token=slurm_lab_c2.token(), poll_interval=POLL)
    body = "srun --het-group=1 -n1 bash -c 'echo qpu $SLURM_CLUSTER_NAME'\necho cpu done"
    job_id = c2.submit(request(tmp_path, "c2", body, CPU, QPU))
    state = c2.wait(job_id, timeout=30)
    assert state.phase is Phase.COMPLETED, state
    assert state.component(1).partition == "qpu"
    out = (tmp_path / f"hcqw-c2-{job_id}.out").read_text()
    assert f"qpu {slurm_lab_c2.cluster_name}" in out and "cpu done" in out


def test_sacct_status_with_accounting(slurm_acct_lab, tmp_path):
    backend = open_backend("slurm", env=slurm_acct_lab.env, poll_interval=POLL)
    source = CliStatusSource(slurm_acct_lab.env)
    assert source.uses_sacct is True
    body = "srun --het-group=1 -n1 true\nscancel $SLURM_JOB_ID_HET_GROUP_1\nsleep 1\necho 'sacct says' >&2\nexit 5"
    job_id = backend.submit(request(tmp_path, "acct", body, CPU, QPU))
    state = backend.wait(job_id, timeout=30)
    # The cpu part failed; the released qpu part is still not what failed.
    assert state.phase is Phase.FAILED and state.failed_component == f"{job_id}+0" and state.exit_code == 5
    assert state.released == (1,)
    # slurmdbd catches up a few seconds later; then sacct gives the same verdict
    # (what status falls back to once the controller has forgotten the job).
    started_waiting = time.monotonic()
    wait_for(lambda: len(source.query_sacct([job_id])) == 2, timeout=30, what="slurmdbd to record both components")
    lag = time.monotonic() - started_waiting
    log.info("sacct showed both hetjob components %.1f s after the job ended", lag)
    from_sacct = merge_components(job_id, source.query_sacct([job_id]))
    assert (from_sacct.phase, from_sacct.released, from_sacct.exit_code) == (Phase.FAILED, (1,), 5)
    assert from_sacct.component(1).state == "CANCELLED" and from_sacct.component(1).start_time
    err = backend.failure(from_sacct)  # sacct has no StdOut: the path comes from the request
    assert "sacct says" in err.output_tail


def _stop_slurmctld(lab) -> None:
    """Stop only the controller of a cluster this test started (by its PID file, checked)."""
    pid_file = lab.layout.pid_file("slurmctld")
    pid = int(pid_file.read_text().split()[0])
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "slurmctld" in cmdline and str(lab.slurm_conf) in cmdline, cmdline
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not _alive(pid), what="slurmctld to stop")


def _alive(pid: int) -> bool:
    # Zombies linger here (slow reaper): read the state, not just kill -0.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_controller_down_behind_slurmrestd(throwaway_lab, tmp_path):
    rest = open_backend("rest", url=throwaway_lab.rest_url, token=throwaway_lab.token(), poll_interval=0)
    _stop_slurmctld(throwaway_lab)
    # slurmrestd still answers HTTP; the controller behind it does not.
    with pytest.raises(ControllerUnreachable, match="slurmctld behind"):
        rest.submit(request(tmp_path, "x", "true"))
    with pytest.raises(ControllerUnreachable, match="slurmctld behind"):
        rest.status(["1"])
