"""The lab cluster (hcqw.lab.cluster): partitions, jobs, hetjobs across hosts, early QPU release, REST, two clusters."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from hcqw.lab import LabCluster, LabError
from hcqw.lab.layout import Layout
from hcqw.lab.procs import proc_stat
from hcqw.lab.pytest_plugin import wait_for
from tests.support.lab_jobs import DONE, HETJOB_SCRIPT, job_records, job_states, run, wait_done

pytestmark = pytest.mark.slurm


def test_partitions_and_qpu_gres(slurm_lab: LabCluster) -> None:
    partitions = {}
    for line in run(["scontrol", "-o", "show", "partition"]).splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        partitions[fields["PartitionName"]] = fields
    assert set(partitions) == {"cpu", "qpu"}
    assert partitions["cpu"]["Default"] == "YES"
    assert partitions["cpu"]["TotalNodes"] == "2"
    assert partitions["qpu"]["TotalNodes"] == "2"
    rows = [line.split() for line in run(["sinfo", "-h", "-N", "-o", "%N %P %c %G %t"]).splitlines() if line]
    assert sorted(r[0] for r in rows) == ["hcqw-c1", "hcqw-c2", "hcqw-q1", "hcqw-q2"]
    by_node = {r[0]: r for r in rows}
    assert by_node["hcqw-q1"][3] == by_node["hcqw-q2"][3] == "qpu:1"
    assert by_node["hcqw-c1"][3] == "(null)"
    assert all(by_node[n][2] == "4" for n in ("hcqw-c1", "hcqw-c2"))  # faked with config_overrides
    assert run(["scontrol", "show", "config"]).count(f"ClusterName             = {slurm_lab.cluster_name}") == 1


def test_hosts_have_distinct_addresses_and_slurm_uses_them(slurm_lab: LabCluster) -> None:
    hosts = {h.name: h for h in slurm_lab.hosts}
    assert {h.role for h in hosts.values()} == {"head", "cpu", "qpu", "submit"}
    assert len({h.address for h in hosts.values()}) == len(hosts) == 6
    assert len({h.netns for h in hosts.values()}) == 6 and hosts["submit"].netns is None
    for line in run(["scontrol", "-o", "show", "node"]).splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        assert fields["NodeAddr"] == hosts[fields["NodeName"]].address
    # Each slurmd really lives in its host's namespace: its network namespace is that host's.
    for node in slurm_lab.layout.node_names:
        pid = slurm_lab.daemon_pids()[f"slurmd-{node}"]
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(hosts[node].netns_path).st_ino
    assert os.stat(f"/proc/{slurm_lab.daemon_pids()['slurmctld']}/ns/net").st_ino == \
        os.stat(slurm_lab.network.head.netns_path).st_ino


def test_plain_job_completes(slurm_lab: LabCluster, tmp_path: Path) -> None:
    out = tmp_path / "plain.out"
    job = run(["sbatch", "--parsable", "-o", str(out), "--wrap", "echo hello from $SLURMD_NODENAME"]).strip()
    states = wait_done(job)
    assert states == {job: "COMPLETED"}, states
    assert wait_for(lambda: out.exists() and out.read_text()).startswith("hello from hcqw-c")


def test_hetjob_components_run_on_a_cpu_and_a_qpu_host(slurm_lab: LabCluster, tmp_path: Path) -> None:
    script = tmp_path / "het.sh"
    script.write_text(HETJOB_SCRIPT.replace("$SLURMD_NODENAME", "$SLURMD_NODENAME@$(ip -4 -o addr show eth0)"))
    out = tmp_path / "het.out"
    leader = run(["sbatch", "--parsable", "-o", str(out), str(script)]).strip()
    states = wait_done(leader)
    assert states == {leader: "COMPLETED", str(int(leader) + 1): "COMPLETED"}, states
    records = job_records(leader)
    cpu_node, qpu_node = records[leader]["NodeList"], records[str(int(leader) + 1)]["NodeList"]
    assert cpu_node in slurm_lab.layout.cpu_node_names and qpu_node in slurm_lab.layout.qpu_node_names
    text = out.read_text()
    assert "het_size=2" in text
    # Each step ran on its own host: the address of the interface it saw is that host's.
    assert f"qpu_on={qpu_node}@" in text and f" {slurm_lab.network.host(qpu_node).address}/" in text
    assert f"cpu_on={cpu_node}@" in text and f" {slurm_lab.network.host(cpu_node).address}/" in text


def test_two_qpu_jobs_at_once_use_both_qpu_hosts(slurm_lab: LabCluster) -> None:
    name = f"both-{uuid.uuid4().hex[:8]}"
    jobs = [run(["sbatch", "--parsable", "-J", name, "-p", "qpu", "--gres=qpu:1", "-o", "/dev/null", "--wrap",
                 "sleep 30"]).strip() for _ in range(2)]
    try:
        running = wait_for(lambda: (r := {j: job_records(j)[j] for j in jobs})
                           and all(f["JobState"] == "RUNNING" for f in r.values()) and r, what="both qpu jobs to run")
        assert {f["NodeList"] for f in running.values()} == set(slurm_lab.layout.qpu_node_names)
    finally:
        run(["scancel", "-n", name])


def test_cancel_qpu_component_leaves_leader_running(slurm_lab: LabCluster, tmp_path: Path) -> None:
    script = tmp_path / "hold.sh"
    script.write_text(HETJOB_SCRIPT.split("echo")[0] + "sleep 60\n")
    name = f"hold-{uuid.uuid4().hex[:8]}"
    # Both qpu hosts held: then a third qpu job must wait.
    leaders = [run(["sbatch", "--parsable", "-J", name, "-o", "/dev/null", str(script)]).strip() for _ in range(2)]
    leader = leaders[0]
    qpu_component = str(int(leader) + 1)
    try:
        for job in leaders:
            wait_for(lambda job=job: set(job_states(job).values()) == {"RUNNING"}, what="hetjob to start")
        waiter = run(["sbatch", "--parsable", "-J", name, "-p", "qpu", "--gres=qpu:1", "-o", "/dev/null", "--wrap",
                      "true"]).strip()
        time.sleep(1.5)  # > one backfill tick: it really is blocked
        assert job_states(waiter)[waiter] == "PENDING"
        run(["scancel", f"{leader}+1"])
        states = wait_for(lambda: (s := job_states(leader)) and s[qpu_component] in DONE and s,
                          what="qpu component to end")
        assert states[leader] == "RUNNING", states
        assert wait_done(waiter)[waiter] == "COMPLETED"
        assert job_states(leader)[leader] == "RUNNING"
    finally:
        subprocess.run(["scancel", "-n", name], check=False)
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
    assert slurm_lab_c2.network.subnet != slurm_lab.network.subnet
    assert not {h.netns for h in slurm_lab_c2.hosts} & {h.netns for h in slurm_lab.hosts} - {None}
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


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def test_up_twice_then_down_leaves_nothing(small_lab: LabCluster) -> None:
    lab = small_lab
    links_before = _links()
    lab.up()
    pids = lab.daemon_pids()
    # munged, slurmctld, 2 slurmd, slurmrestd, 1 resident QPU service
    assert all(pids.values()) and len(pids) == 6, pids
    made = {lab.network.bridge, *(h.link for h in lab.network.namespaced)}
    assert made <= _links() and not made & links_before
    assert all(h.netns_path.exists() for h in lab.network.namespaced)
    lab.up()  # harmless: nothing restarted, nothing made twice
    assert lab.daemon_pids() == pids
    assert lab.is_up()
    stat_before = {pid: proc_stat(pid) for pid in pids.values()}
    lab.down()
    assert not lab.is_up()
    for pid, stat in stat_before.items():
        now = proc_stat(pid)  # gone, a zombie, or (PID reused) another process
        assert now is None or not now.alive or now.start_time != stat.start_time, f"pid {pid} still running"
    assert not list((lab.root / "run").glob("*.pid"))
    assert not any(h.netns_path.exists() for h in lab.network.namespaced)
    assert _links() & made == set()
    lab.down()  # idempotent


def test_up_refuses_network_names_that_are_taken(small_lab: LabCluster) -> None:
    lab = small_lab
    taken = lab.network.namespaced[0].netns
    subprocess.run(["ip", "netns", "add", taken], check=True)
    try:
        with pytest.raises(LabError, match=f"network names of this lab are taken: {taken}.*--port-base"):
            lab.up()
        assert not any(lab.daemon_pids().values())
        assert not (lab.network.bridge in _links())
    finally:
        subprocess.run(["ip", "netns", "delete", taken], check=True)


def test_failed_up_rolls_back_and_names_the_log(small_lab: LabCluster) -> None:
    lab = small_lab
    with pytest.raises(LabError, match=rf"did not become (ready|idle) within 0 s; see {lab.root}/log/"):
        lab.up(timeout=0)
    assert not any(lab.daemon_pids().values())
    assert not any(h.netns_path.exists() for h in lab.network.namespaced)
    assert lab.network.bridge not in _links()


def test_layout_and_network_naming_and_validation() -> None:
    from hcqw.lab.network import Network

    main = Network.plan(Layout.create(Path("/tmp/x"), "hcqw", 6900, 2, 2, 4))
    c2 = Network.plan(Layout.create(Path("/tmp/y"), "qpuside", 6950, 1, 1, 4))
    assert main.subnet == "10.26.244.0/24" and c2.subnet == "10.27.38.0/24"
    assert not {h.netns for h in main.hosts} & {h.netns for h in c2.hosts} - {None}
    assert main.bridge != c2.bridge
    names = [main.bridge, *(h.link for h in main.namespaced), *(h.link for h in c2.namespaced)]
    assert all(len(n) <= 15 for n in names)  # Linux interface names
    assert Network.plan(Layout.create(Path("/tmp/z"), "x", 65525, 64, 16, 1)).bridge == "hq65525br"
    for bad in ({"name": "Bad-Name"}, {"cpu_nodes": 0}, {"qpu_nodes": 17}, {"port_base": 65530}):
        kwargs = {"name": "ok", "port_base": 7000, "cpu_nodes": 2, "qpu_nodes": 2, **bad}
        with pytest.raises(LabError):
            Layout.create(Path("/tmp/z"), kwargs["name"], kwargs["port_base"], kwargs["cpu_nodes"],
                          kwargs["qpu_nodes"], 4)
