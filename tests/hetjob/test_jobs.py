"""The quantum node's batch script (``quantum_body``): what it starts, with which options, where."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hcqw.hetjob.jobs import NodeJobSettings, quantum_body


def body(tmp_path: Path, **settings) -> str:
    return quantum_body("true", tmp_path / "jobs" / "q0001", tmp_path / "gateway.jsonl", NodeJobSettings(**settings))


def test_zmq_gateway_gets_no_address_it_finds_its_node_s_own(tmp_path):
    script = body(tmp_path)
    (gateway,) = [line for line in script.splitlines() if "hcqw.hetjob.gateway" in line]
    assert "--address " not in gateway and "--allow-remote" not in gateway and "127.0.0.1" not in gateway
    mpi = [line for line in body(tmp_path, transport="mpi").splitlines() if "hcqw.hetjob.gateway" in line][0]
    assert '--address "mpi:file:$JOBDIR/gateway.port"' in mpi


def test_device_service_reaches_the_qpu_node_with_percent_n_unexpanded(tmp_path):
    script = body(tmp_path, device_service="ipc:///lab/hosts/%n/qpu/qpu.ipc")
    assert "--upstream ipc:///lab/hosts/%n/qpu/qpu.ipc" in script  # expanded by the gateway, on the qpu node


def test_removed_gateway_options_are_refused():
    with pytest.raises(TypeError):
        NodeJobSettings(gateway_bind="tcp://10.0.0.1:*")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        NodeJobSettings(allow_remote=True)  # type: ignore[call-arg]


@pytest.mark.parametrize("restarts, suffix", [(None, ""), ("0", ""), ("2", ".r2")])
def test_a_requeued_job_gets_a_job_directory_of_its_own(tmp_path, restarts, suffix):
    """SLURM requeues a job under the same id: its gateway address must not be the last run's."""
    head = body(tmp_path).split("release_qpu()")[0] + 'echo "$JOBDIR"\n'
    env = {"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "41"}
    if restarts is not None:
        env["SLURM_RESTART_COUNT"] = restarts
    jobdir = subprocess.run(["bash", "-c", head], env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert jobdir == f"{tmp_path}/jobs/q0001.41{suffix}"
    assert Path(jobdir).is_dir() and Path(jobdir).stat().st_mode & 0o777 == 0o700


def test_a_qpu_marked_command_holds_the_qpu_node_until_it_ends_a_workflow_node_until_its_deadline(tmp_path):
    """A rule or app marked qpu=1 that never opens a lease keeps the qpu node for its whole run (its
    script's trap releases it at the end); a workflow node, which always opens a session, gets the
    gateway's session deadline as a backstop."""
    from hcqw.hetjob.jobs import command_request, node_request
    from hcqw.workflow import build_dag, load_loop

    settings = NodeJobSettings(connect_timeout=90)
    rule = command_request("python rule.py", workflow="smk", name="measure", workdir=tmp_path, settings=settings,
                           quantum=True)
    assert "--connect-timeout 0 " in rule.body
    loop = load_loop("tests.support.loops:make", {})
    quantum = next(n for n in build_dag(loop) if n.name == "q0001")
    node = node_request(quantum, loop_ref="tests.support.loops:make", params={}, workflow="wf", run_dir=tmp_path,
                        settings=settings)
    (gateway,) = [line for line in node.body.splitlines() if "hcqw.hetjob.gateway" in line]
    assert "--connect-timeout 90 " in gateway


FAKE_SRUN = """#!/bin/bash
# srun of SLURM 22.05 failing to create the step with $FAILURE until call $FAIL_UNTIL.
n=$(( $(cat "$CALLS" 2>/dev/null || echo 0) + 1 )); echo $n > "$CALLS"
if [ "$n" -lt "$FAIL_UNTIL" ]; then
  echo "srun: error: Unable to create step for job 88: $FAILURE" >&2
  exit 1
fi
echo "$LAST_WORDS" >&2
[ "$LAST_WORDS" = "gateway stopping: the node's session ended" ]
"""
RAN = "gateway stopping: the node's session ended"
UNREACHABLE = "Unable to contact slurm controller (connect failure)"  # while slurmctld restarts
BUSY = "Requested nodes are busy"  # the qpu host still finishing its last job, past --immediate


@pytest.mark.parametrize("fail_until, failure, last_words, calls, rc", [
    (3, UNREACHABLE, RAN, 3, 0),  # step creation failed twice, then the gateway ran
    (10, BUSY, RAN, 10, 0),  # asked again as long as the host is busy (the node's connect timeout bounds it)
    (3, "Invalid generic resource (gres) specification", RAN, 1, 1),  # a request that cannot succeed: no retry
    (1, UNREACHABLE, "gateway ERROR: gateway failed", 1, 1),  # a gateway that ran and failed is never started again
])
def test_the_gateway_step_is_retried_only_while_srun_could_not_create_it_yet(tmp_path, fail_until, failure,
                                                                          last_words, calls, rc):
    """The script's gateway launch, with a fake ``srun`` (pure logic: the retry decision) -- a real outage is
    in tests/hetjob/test_chain.py, a busy qpu host across an outage in tests/hetjob/test_command_job.py."""
    script = body(tmp_path)
    assert "srun --het-group=1 -n1 --immediate=" in script
    start = script[script.index("start_gateway() {"):script.index("start_gateway &")]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "JOBDIR": str(tmp_path), "CALLS": str(tmp_path / "calls"),
           "FAIL_UNTIL": str(fail_until), "FAILURE": failure, "LAST_WORDS": last_words}
    done = subprocess.run(["bash", "-c", start + "start_gateway"], env=env, capture_output=True, text=True)
    assert done.returncode == rc, done.stderr
    assert (tmp_path / "calls").read_text().strip() == str(calls)


def test_a_per_call_command_is_a_cpu_job_whose_calls_take_the_qpu_settings(tmp_path):
    """``per_call_request`` (the engines' per-call form): the driver job holds no qpu; the qpu component's settings
    and the device service become each call's; each driver keeps its own call records."""
    from hcqw import environment
    from hcqw.hetjob.jobs import per_call_request
    from hcqw.qpu import current_device
    from hcqw.slurm import ComponentSpec

    settings = NodeJobSettings(qpu=ComponentSpec("quantum", gres="qpu:2", time_limit=7, extra=("--nodelist=q1",)),
                               device_service="ipc:///h/%n/qpu.ipc", environment={"MINE": "1"})
    request = per_call_request("python vqe.py --seed 7", workflow="wf", name="vqe.it=1", workdir=tmp_path,
                               settings=settings, output=str(tmp_path / "log-%j"))
    env = request.environment
    assert [c.partition for c in request.components] == ["cpu"] and not request.components[0].wants_qpu
    assert env[environment.DEVICE] == environment.PER_CALL and env["MINE"] == "1"
    assert env[environment.PER_CALL_RECORDS] == str(tmp_path / "calls" / "vqe.it=1")
    calls = current_device(env).settings  # what the driver's open_qpu will read
    assert (calls.partition, calls.gres, calls.time_limit, calls.options) == ("quantum", "qpu:2", "7", ("--nodelist=q1",))
    assert calls.service == "ipc:///h/%n/qpu.ipc" and calls.call_dir == tmp_path / "jobs" / "vqe.it=1.calls"
    assert "/bin/bash -c 'python vqe.py --seed 7' &" in request.body
    assert request.job_name == "hcqw:wf:vqe.it=1.driver" and request.output == str(tmp_path / "log-%j")
