"""The local SLURM lab cluster (hcqw.lab): partitions, jobs, hetjobs, early QPU release, REST, two clusters."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from hcqw.lab import LabCluster
from hcqw.lab.procs import proc_stat
from hcqw.lab.pytest_plugin import wait_for

pytestmark = pytest.mark.slurm

HETJOB_SCRIPT = """#!/bin/bash
#SBATCH -p cpu -n 1
#SBATCH hetjob
#SBATCH -p qpu --gres=qpu:1 -n 1
echo "het_size=$SLURM_HET_SIZE"
srun --het-group=1 bash -c 'echo qpu_on=$SLURMD_NODENAME'
srun --het-group=0 bash -c 'echo cpu_on=$SLURMD_NODENAME'
"""

DONE = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
        "PREEMPTED"}


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    """Run a Slurm command (against os.environ's SLURM_CONF unless env given), return stdout."""
    full_env = {**os.environ, **(env or {})}
    result = subprocess.run(argv, env=full_env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{argv} failed: {result.stderr}"
    return result.stdout


def job_states(job: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """JobId -> JobState for a job (all components of a hetjob leader)."""
    states = {}
    for line in run(["scontrol", "-o", "show", "job", job], env).splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        states[fields["JobId"]] = fields["JobState"]
    return states




def wait_done(job: str, env: dict[str, str] | None = None, timeout: float = 20) -> dict[str, str]:
    return wait_for(lambda: (s := job_states(job, env)) and all(v in DONE for v in s.values()) and s,
                    timeout, f"job {job} to finish")


def test_partitions_and_qpu_gres(slurm_lab: LabCluster) -> None:
    partitions = {}
    for line in run(["scontrol", "-o", "show", "partition"]).splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        partitions[fields["PartitionName"]] = fields
    assert set(partitions) == {"cpu", "qpu"}
    assert partitions["cpu"]["Default"] == "YES"
    assert partitions["cpu"]["TotalNodes"] == "2"
    assert partitions["qpu"]["TotalNodes"] == "1"
    nodes = run(["sinfo", "-h", "-N", "-o", "%N %P %c %G %t"]).split("\n")
    rows = [line.split() for line in nodes if line]
    assert sorted(r[0] for r in rows) == ["hcqw-c1", "hcqw-c2", "hcqw-q1"]
    by_node = {r[0]: r for r in rows}
    assert by_node["hcqw-q1"][3] == "qpu:1"
    assert all(by_node[n][2] == "4" for n in ("hcqw-c1", "hcqw-c2"))  # faked with config_overrides
    assert run(["scontrol", "show", "config"]).count(f"ClusterName             = {slurm_lab.cluster_name}") == 1


def test_plain_job_completes(slurm_lab: LabCluster, tmp_path: Path) -> None:
    out = tmp_path / "plain.out"
    start = time.monotonic()
    job = run(["sbatch", "--parsable", "-o", str(out), "--wrap", "echo hello from $SLURMD_NODENAME"]).strip()
    states = wait_done(job)
    assert states == {job: "COMPLETED"}, states
    assert time.monotonic() - start < 10
    assert wait_for(lambda: out.exists() and out.read_text()).startswith("hello from hcqw-c")


def test_hetjob_runs_on_cpu_and_qpu(slurm_lab: LabCluster, tmp_path: Path) -> None:
    script = tmp_path / "het.sh"
    script.write_text(HETJOB_SCRIPT)
    out = tmp_path / "het.out"
    leader = run(["sbatch", "--parsable", "-o", str(out), str(script)]).strip()
    states = wait_done(leader)
    assert states == {leader: "COMPLETED", str(int(leader) + 1): "COMPLETED"}, states
    text = out.read_text()
    assert "het_size=2" in text
    assert "qpu_on=hcqw-q1" in text
    assert "cpu_on=hcqw-c" in text


def test_cancel_qpu_component_leaves_leader_running(slurm_lab: LabCluster, tmp_path: Path) -> None:
    script = tmp_path / "hold.sh"
    script.write_text(HETJOB_SCRIPT.split("echo")[0] + "sleep 60\n")
    leader = run(["sbatch", "--parsable", "-o", "/dev/null", str(script)]).strip()
    qpu_component = str(int(leader) + 1)
    try:
        wait_for(lambda: set(job_states(leader).values()) == {"RUNNING"}, what="hetjob to start")
        # A second job that needs the QPU waits until the component is released.
        waiter = run(["sbatch", "--parsable", "-p", "qpu", "--gres=qpu:1", "-o", "/dev/null", "--wrap", "true"]).strip()
        time.sleep(1.5)  # > one backfill tick: it really is blocked
        assert job_states(waiter)[waiter] == "PENDING"
        run(["scancel", f"{leader}+1"])
        states = wait_for(lambda: (s := job_states(leader)) and s[qpu_component] in DONE and s,
                          what="qpu component to end")
        assert states[leader] == "RUNNING", states
        assert wait_done(waiter)[waiter] == "COMPLETED"
        assert job_states(leader)[leader] == "RUNNING"
    finally:
        subprocess.run(["scancel", leader], check=False)
    assert wait_done(leader)[leader] == "CANCELLED"


def _rest(lab: LabCluster, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{lab.rest_url}/slurm/v0.0.38/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"X-SLURM-USER-NAME": "root", "X-SLURM-USER-TOKEN": lab.token(lifespan=120),
                 "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_rest_submit_and_status(slurm_lab: LabCluster, tmp_path: Path) -> None:
    token = slurm_lab.token()
    assert token.count(".") == 2  # a JWT: header.payload.signature
    job_body = {
        "script": "#!/bin/bash\necho via rest\n",
        "job": {"name": "rest-test", "partition": "cpu", "current_working_directory": str(tmp_path),
                "standard_output": str(tmp_path / "rest.out"), "environment": {"PATH": "/usr/bin:/bin"}},
    }
    reply = _rest(slurm_lab, "POST", "job/submit", job_body)
    assert not reply["errors"], reply["errors"]
    job_id = str(reply["job_id"])

    def finished() -> str | None:
        state = _rest(slurm_lab, "GET", f"job/{job_id}")["jobs"][0]["job_state"]
        return state if state in DONE else None

    assert wait_for(finished, what="REST job") == "COMPLETED"
    assert (tmp_path / "rest.out").read_text() == "via rest\n"


def test_rest_rejects_missing_token(slurm_lab: LabCluster) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{slurm_lab.rest_url}/slurm/v0.0.38/ping", timeout=10)
    assert err.value.code == 401


def test_second_cluster_is_independent(slurm_lab: LabCluster, slurm_lab_c2: LabCluster) -> None:
    assert os.environ["SLURM_CONF"] == str(slurm_lab.slurm_conf)  # c2 did not touch the environment
    assert slurm_lab_c2.cluster_name == "qpuside" != slurm_lab.cluster_name
    assert slurm_lab_c2.rest_url != slurm_lab.rest_url
    c2_nodes = sorted(run(["sinfo", "-h", "-N", "-o", "%N"], slurm_lab_c2.env).split())
    assert c2_nodes == ["qpuside-c1", "qpuside-q1"]
    name1, name2 = f"c1-{uuid.uuid4().hex[:8]}", f"c2-{uuid.uuid4().hex[:8]}"
    run(["sbatch", "-J", name1, "-o", "/dev/null", "--wrap", "sleep 30"])
    run(["sbatch", "-J", name2, "-o", "/dev/null", "--wrap", "sleep 30"], slurm_lab_c2.env)
    try:
        c1_jobs = run(["squeue", "-h", "-o", "%j"]).split()
        c2_jobs = run(["squeue", "-h", "-o", "%j"], slurm_lab_c2.env).split()
        assert name1 in c1_jobs and name2 not in c1_jobs
        assert name2 in c2_jobs and name1 not in c2_jobs
        # REST of C2 sees only C2's jobs.
        rest_names = {j["name"] for j in _rest(slurm_lab_c2, "GET", "jobs")["jobs"]}
        assert name2 in rest_names and name1 not in rest_names
    finally:
        run(["scancel", "-n", name1])
        run(["scancel", "-n", name2], slurm_lab_c2.env)


def test_up_twice_then_down_leaves_nothing(tmp_path: Path) -> None:
    if os.environ.get("HCQW_TEST_SLURM") == "0":
        pytest.skip("SLURM lab tests disabled (HCQW_TEST_SLURM=0)")
    lab = LabCluster(Path("/tmp/hcqw-pytest-lab-updown"), name="updown", port_base=6980, cpu_nodes=1)
    try:
        lab.up()
        pids = lab.daemon_pids()
        assert all(pids.values()) and len(pids) == 5, pids  # munged, slurmctld, 2 slurmd, slurmrestd
        start = time.monotonic()
        lab.up()  # harmless: nothing restarted
        assert time.monotonic() - start < 5
        assert lab.daemon_pids() == pids
        assert lab.is_up()
        stat_before = {pid: proc_stat(pid) for pid in pids.values()}
    finally:
        lab.down()
    assert not lab.is_up()
    for pid, stat in stat_before.items():
        now = proc_stat(pid)  # gone, a zombie, or (PID reused) another process
        assert now is None or not now.alive or now.start_time != stat.start_time, f"pid {pid} still running"
    assert not list((lab.root / "run").glob("*.pid"))
    lab.down()  # idempotent


def test_failed_up_rolls_back_and_names_the_log() -> None:
    if os.environ.get("HCQW_TEST_SLURM") == "0":
        pytest.skip("SLURM lab tests disabled (HCQW_TEST_SLURM=0)")
    from hcqw.lab import LabError

    lab = LabCluster(Path("/tmp/hcqw-pytest-lab-updown"), name="updown", port_base=6980, cpu_nodes=1)
    try:
        with pytest.raises(LabError, match=r"did not become (ready|idle) within 0 s; see /tmp/hcqw-pytest-lab-updown/log/"):
            lab.up(timeout=0)
        assert not any(lab.daemon_pids().values())
    finally:
        lab.down()


def test_cli_env_and_status(slurm_lab: LabCluster, capsys: pytest.CaptureFixture[str]) -> None:
    from hcqw.lab import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lab", "env", "--dir", str(slurm_lab.root)])
    assert args.handler(args) == 0
    assert capsys.readouterr().out == f"export SLURM_CONF={slurm_lab.slurm_conf}\n"
    args = parser.parse_args(["lab", "status", "--dir", str(slurm_lab.root)])
    assert args.handler(args) == 0
    out = capsys.readouterr().out
    assert "up" in out and "slurmctld" in out


@pytest.mark.slow
def test_accounting_sacct_lists_het_components(tmp_path: Path) -> None:
    if os.environ.get("HCQW_TEST_SLURM") == "0":
        pytest.skip("SLURM lab tests disabled (HCQW_TEST_SLURM=0)")
    lab = LabCluster(Path("/tmp/hcqw-pytest-lab-acct"), name="accttest", port_base=6930, cpu_nodes=1, accounting=True)
    script = tmp_path / "het.sh"
    script.write_text(HETJOB_SCRIPT)
    try:
        lab.up(timeout=120)  # first start initialises MariaDB
        leader = run(["sbatch", "--parsable", "-o", "/dev/null", str(script)], lab.env).strip()
        wait_done(leader, lab.env)

        def recorded() -> dict[str, str]:
            out = run(["sacct", "-n", "-P", "-X", "-j", leader, "-o", "jobid,state"], lab.env)
            rows = dict(line.split("|") for line in out.splitlines() if line)
            return rows if set(rows.values()) == {"COMPLETED"} and len(rows) == 2 else {}

        assert set(wait_for(recorded, what="sacct to record the hetjob")) == {f"{leader}+0", f"{leader}+1"}
        assert lab.is_up()
    finally:
        lab.down()
    assert not lab.is_up()
    assert not list((lab.root / "run").glob("*.pid"))


def test_port_layout_and_validation() -> None:
    from hcqw.lab import LabError
    from hcqw.lab.layout import Layout

    main = Layout.create(Path("/tmp/x"), "hcqw", 6900, 2, 4)
    c2 = Layout.create(Path("/tmp/y"), "qpuside", 6950, 1, 4)
    ports_main = {main.ports.slurmctld, main.ports.slurmrestd, *(main.node_port(n) for n in main.node_names)}
    ports_c2 = {c2.ports.slurmctld, c2.ports.slurmrestd, *(c2.node_port(n) for n in c2.node_names)}
    assert len(ports_main) == 2 + 3 and max(ports_main) < 6950
    assert not ports_main & ports_c2
    assert not set(main.node_names) & set(c2.node_names)
    for bad in ({"name": "Bad-Name"}, {"cpu_nodes": 0}, {"port_base": 65530}):
        kwargs = {"name": "ok", "port_base": 7000, "cpu_nodes": 2, **bad}
        with pytest.raises(LabError):
            Layout.create(Path("/tmp/z"), kwargs["name"], kwargs["port_base"], kwargs["cpu_nodes"], 4)
