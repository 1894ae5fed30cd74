"""``snakemake --executor hcqw --hcqw-backend slurm`` on the real lab cluster, as users run it."""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import textwrap
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from hcqw.lab.pytest_plugin import make_user_dir, wait_for
from hcqw.lab.resident import metrics_log
from hcqw.metrics import read_events
from hcqw.slurm.commands import run_slurm
from hcqw.slurm.parsing import parse_scontrol
from tests.support.snakemake_runs import (DIRECT, DIRECT_RULES, EARLY, LATE, TOLERANCE, read_energy, run_side_by_side, run_snakemake, run_snakemake_as,
                         snakemake_argv)
from tests.support.lab_user import ALICE, BOB, assert_private, key_file, quantum_nodes_across_hosts

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
log = logging.getLogger(__name__)
SLURM = ("--hcqw-backend", "slurm")


def run_name(kind: str) -> str:
    """A workflow id of its own: the lab cluster keeps finished jobs' records across test sessions."""
    return f"smk-{kind}-{uuid.uuid4().hex[:6]}"


def qpu_components(workflow: str, rule: str = "quantum") -> list[tuple[datetime, datetime, str]]:
    """(start, end, qpu node) of every qpu component of the run's jobs of ``rule``, from SLURM's own records."""
    records = parse_scontrol(run_slurm(["scontrol", "-o", "show", "job"]).stdout)
    return sorted((r.start_time, r.end_time, r.nodelist) for r in records
                  if r.name and r.name.startswith(f"hcqw:{workflow}:{rule}") and r.het_offset == 1)


def one_at_a_time(intervals: list[tuple]) -> bool:
    """Intervals ``(start, end, device, ...)`` never overlap on one device."""
    by_device: dict[str, list[tuple]] = {}
    for interval in sorted(intervals):
        by_device.setdefault(interval[2], []).append(interval)
    return all(a[1] <= b[0] for on_one in by_device.values() for a, b in zip(on_one, on_one[1:]))


def live_jobs(prefix: str) -> dict[str, set[str]]:
    """Leader id -> states of its components, for the jobs named ``prefix...`` that squeue lists as live."""
    out = run_slurm(["squeue", "-h", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING", "-o", "%i %j %T"]).stdout
    jobs: dict[str, set[str]] = {}
    for job_id, name, state in (line.split() for line in out.splitlines()):
        if name.startswith(prefix):
            jobs.setdefault(job_id.split("+")[0], set()).add(state)
    return jobs


def quantum_rule_snakefile(workdir: Path) -> Path:
    """One qpu rule (an X gate measured 10 times, through ``open_qpu``) and one classical rule after it."""
    snakefile = workdir / "Snakefile"
    snakefile.write_text(textwrap.dedent("""
        rule all:
            input: "ones.txt"

        rule measure:
            output: "q.txt"
            resources: qpu=1
            run:
                import cirq
                from hcqw.qpu import open_qpu
                qubit = cirq.LineQubit(0)
                with open_qpu(seed=1) as qpu:
                    result = qpu.run(cirq.Circuit(cirq.X(qubit), cirq.measure(qubit, key="m")), repetitions=10)
                open(output[0], "w").write(str(int(result[0].measurements["m"].sum())))

        rule copy:
            input: "q.txt"
            output: "ones.txt"
            shell: "cp {input} {output}"
    """))
    return snakefile


@pytest.fixture(scope="module")
def single_run(slurm_lab):
    """README's command once, as hcqw-alice from the site's checkout; its makespan is the baseline of the
    co-scheduling test."""
    root = make_user_dir(slurm_lab, ALICE, "smk-single")
    name = run_name("single")
    run = run_snakemake_as(slurm_lab, ALICE, root, *SLURM, "--hcqw-workflow-id", name)
    yield root, run, name
    shutil.rmtree(root, ignore_errors=True)


def test_example_on_slurm_reaches_energy(single_run, slurm_lab):
    workdir, run, name = single_run
    assert run.returncode == 0, run.output
    assert "hcqw executor: backend slurm" in run.output
    result = read_energy(workdir)
    assert abs(result["energy"] - result["exact"]) <= TOLERANCE, result
    # Each quantum rule was a hetjob whose qpu component SLURM recorded: on a qpu host, its cpu part on a
    # cpu host, both alice's.
    assert len(qpu_components(name)) == 4
    assert len(quantum_nodes_across_hosts(slurm_lab, name, ALICE)) == 4
    # What the run left is alice's alone.
    logs = sorted((workdir / ".snakemake" / "hcqw_logs").rglob("*.log"))
    assert_private(slurm_lab, ALICE, [workdir, logs[0], logs[-1], key_file(slurm_lab, ALICE),
                                     workdir / "vqe" / "energy.txt"], BOB)
    log.info("single SLURM run: %.1f s, energy %+.6f (error %.6f)", run.seconds, result["energy"], result["error"])


def test_example_fused_is_one_hetjob_per_iteration_with_the_same_energy(single_run, tmp_path):
    """``--config fused=True``: rule ``iteration`` (qpu=1) runs the quantum step, frees the qpu node as its
    ``open_qpu`` block ends, and goes on with the classical step in the same job."""
    name = run_name("fused")
    run = run_snakemake(tmp_path, *SLURM, "--hcqw-workflow-id", name, "--config", "fused=True")
    assert run.returncode == 0, run.output
    assert read_energy(tmp_path)["energy"] == read_energy(single_run[0])["energy"]  # the split run's, same seed
    records = [r for r in parse_scontrol(run_slurm(["scontrol", "-o", "show", "job"]).stdout)
               if r.name and r.name.startswith(f"hcqw:{name}:")]
    assert not any(r.name.startswith(f"hcqw:{name}:quantum") or r.name.startswith(f"hcqw:{name}:classical")
                   for r in records)
    components = {(r.leader_id, r.het_offset): r for r in records if r.name.startswith(f"hcqw:{name}:iteration")}
    leaders = {leader for leader, _ in components}
    assert len(leaders) == 4, components  # one job per iteration
    for leader in leaders:  # the qpu component ended first: component 0 ran the classical step after it
        assert components[(leader, 1)].end_time <= components[(leader, 0)].end_time, components


def test_two_runs_share_the_qpu_nodes_by_turns(single_run, tmp_path, spawn):
    """Two invocations at once: their quantum rules take turns on the qpu nodes, one at a time on each."""
    dirs = {run_name(kind): tmp_path / kind for kind in ("a", "b")}
    started = time.monotonic()
    procs = {}
    for name, path in dirs.items():
        path.mkdir()
        procs[name] = spawn(snakemake_argv(path, *SLURM, "--hcqw-workflow-id", name))
    outputs = {name: proc.communicate(timeout=400)[0] for name, proc in procs.items()}
    both = time.monotonic() - started
    for name, proc in procs.items():
        assert proc.returncode == 0, outputs[name]
        result = read_energy(dirs[name])
        assert abs(result["energy"] - result["exact"]) <= TOLERANCE, result

    owners = sorted((start, end, node, name) for name in dirs for start, end, node in qpu_components(name))
    assert len(owners) == 8
    # SLURM's records (whole seconds): never two quantum jobs on one qpu node at once...
    assert one_at_a_time(owners), owners
    # ... and the devices' own hold intervals (sub-second) do not overlap either.
    holds = [(e["start"], e["end"], e["device"]) for path in dirs.values()
             for e in read_events(path / ".snakemake" / "hcqw" / "metrics" / "qpu.jsonl", "hold")]
    assert len(holds) == 8 and one_at_a_time(holds), holds
    single = single_run[1].seconds
    log.info("two runs at once: %.1f s; one run alone: %.1f s; one after the other would take ~%.1f s "
             "(ratio %.2f); qpu order %s", both, single, 2 * single, both / (2 * single),
             " ".join(f"{dirs[name].name}@{node}" for _, _, node, name in owners))
    # Run one after the other they would take twice one run; sharing the qpu nodes they overlap.
    assert both < 2 * single


def test_failed_rule_names_rule_job_state_and_log(slurm_lab, workdir):
    snakefile = workdir / "Snakefile"
    snakefile.write_text(textwrap.dedent("""
        rule all:
            input: "out.txt"

        rule boom:
            output: "out.txt"
            resources: qpu=1
            shell: "echo 'boom: calibration data missing'; exit 3"
    """))
    name = run_name("boom")
    run = run_snakemake(workdir, *SLURM, "--hcqw-workflow-id", name, snakefile=snakefile)
    assert run.returncode != 0
    match = re.search(r"hcqw: rule boom failed: SLURM job (\d+)(?:\+0)? ended (\w+) with exit code (\d+); "
                      r"output file: (\S+)", run.output)
    assert match, run.output
    job_id, state, code, log_file = match.groups()
    assert state == "FAILED" and code != "0"
    assert log_file == str(workdir / ".snakemake" / "hcqw_logs" / "boom" / "all" / f"{job_id}.log")
    assert "boom: calibration data missing" in Path(log_file).read_text()
    assert "boom: calibration data missing" in run.output  # the log's tail is in the message
    assert live_jobs(f"hcqw:{name}:") == {}  # the qpu component went with it


def test_interrupted_snakemake_leaves_no_jobs(slurm_lab, tmp_path, spawn):
    """Ctrl-C (SIGINT) and SIGTERM each cancel every job of their run, running or pending."""
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(textwrap.dedent("""
        rule all:
            input: "q.txt", "c.txt"

        rule q:
            output: "q.txt"
            resources: qpu=1
            shell: "sleep 300; touch {output}"

        rule c:
            output: "c.txt"
            shell: "sleep 300; touch {output}"
    """))
    runs = {}
    for kind, sig in (("int", signal.SIGINT), ("term", signal.SIGTERM)):
        name = run_name(kind)
        path = tmp_path / kind
        path.mkdir()
        proc = spawn(snakemake_argv(path, *SLURM, "--hcqw-workflow-id", name, snakefile=snakefile))
        runs[name] = (proc, sig)
    # Both runs have both jobs in the queue; at least one of them runs (one qpu hetjob pends).
    wait_for(lambda: all(len(live_jobs(f"hcqw:{n}:")) == 2 for n in runs), 120, "all four jobs to be submitted")
    wait_for(lambda: any("RUNNING" in s for n in runs for s in live_jobs(f"hcqw:{n}:").values()), 60, "a job to run")
    before = {n: live_jobs(f"hcqw:{n}:") for n in runs}
    for proc, sig in runs.values():
        proc.send_signal(sig)
    signalled = time.monotonic()
    for name, (proc, _) in runs.items():
        output = proc.communicate(timeout=60)[0]
        assert proc.returncode != 0, output
        assert "hcqw: cancelling 2 job(s)" in output, output
    time.sleep(max(0.0, 10 - (time.monotonic() - signalled)))
    log.info("jobs before the signals: %s", before)
    assert {n: live_jobs(f"hcqw:{n}:") for n in runs} == {n: {} for n in runs}


def test_rest_backend_runs_a_quantum_rule_and_never_shows_the_token(slurm_lab, workdir):
    """Through slurmrestd with a token file: the qpu rule reaches the device in its hetjob."""
    token = slurm_lab.token(lifespan=600)
    token_file = workdir.parent / "jwt"
    token_file.write_text(token)
    token_file.chmod(0o600)
    snakefile = quantum_rule_snakefile(workdir)
    name = run_name("rest")
    run = run_snakemake(workdir, "--hcqw-backend", "rest", "--hcqw-rest-url", slurm_lab.rest_url,
                        "--hcqw-token-file", str(token_file), "--hcqw-workflow-id", name, snakefile=snakefile)
    assert run.returncode == 0, run.output
    assert "hcqw executor: backend rest" in run.output and "quantum job (cpu+qpu hetjob)" in run.output
    assert (workdir / "ones.txt").read_text() == "10"
    assert token not in run.output
    for path in workdir.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), f"token leaked into {path}"


def test_quantum_rule_relays_to_a_resident_qpu_service(slurm_lab, lab_user_dir):
    """--hcqw-device-service with the site's address pattern: the rule's qpu part relays to the resident
    service of the qpu host SLURM gave it (``%n`` in the address is that node's name), as hcqw-alice."""
    workdir = lab_user_dir(ALICE)
    snakefile = quantum_rule_snakefile(workdir)
    shutil.chown(snakefile, ALICE, ALICE)
    name = run_name("resident")
    run = run_snakemake_as(slurm_lab, ALICE, workdir, *SLURM, "--hcqw-device-service",
                           slurm_lab.layout.qpu_service_address_pattern, "--hcqw-workflow-id", name,
                           snakefile=str(snakefile))
    assert run.returncode == 0, run.output
    assert (workdir / "ones.txt").read_text() == "10"
    (parts,) = quantum_nodes_across_hosts(slurm_lab, name, ALICE).values()
    served = {node: [e for e in read_events(metrics_log(slurm_lab.layout, node), "exec") if e["workflow"] == name]
              for node in slurm_lab.layout.qpu_node_names}
    assert {node: [e["shots"] for e in events] for node, events in served.items() if events} == {parts[1].nodelist: [10]}
    gateway_logs = [p.read_text() for p in workdir.rglob("gateway.log")]
    assert len(gateway_logs) == 1 and "relaying" in gateway_logs[0]


@pytest.fixture
def one_qpu_node(slurm_lab):
    """The site's other qpu nodes drained for the test, so every qpu component lands on the first (the
    plugin's rule resources shape the cpu part only): the name of that node."""
    first, *others = slurm_lab.layout.qpu_node_names
    for node in others:
        run_slurm(["scontrol", "update", f"NodeName={node}", "State=DRAIN", "Reason=hcqw test: one qpu node"])
    try:
        yield first
    finally:
        for node in others:
            run_slurm(["scontrol", "update", f"NodeName={node}", "State=RESUME"])


def test_two_workflows_whose_qpu_rules_call_the_simulator_take_turns_on_the_qpu_node(one_qpu_node, tmp_path, spawn):
    """qpu=1 on SLURM: a rule that never opens open_qpu holds its qpu component for its whole run."""
    names = {kind: run_name(f"direct-{kind}") for kind in "ab"}
    dirs = run_side_by_side(tmp_path, spawn, {"a": DIRECT, "b": DIRECT}, other={"a": "b", "b": "a"},
                            extra=lambda kind: (*SLURM, "--hcqw-workflow-id", names[kind]))
    runs = sorted((r["start"], r["end"], kind) for kind, path in dirs.items()
                  for r in (json.loads((path / f"q{i}.json").read_text())
                            for i in range(1, DIRECT_RULES + 1)))
    # The rules' own clocks (sub-second): never two on the device at once, and they took turns.
    assert all(a[1] <= b[0] for a, b in zip(runs, runs[1:])), runs
    order = [kind for _, _, kind in runs]
    log.info("qpu rules on the qpu node, in order: %s", " ".join(order))
    assert sum(a != b for a, b in zip(order, order[1:])) >= 2, order
    # SLURM's records: each rule ran inside a qpu component of its own on that node, one at a time.
    components = sorted((start, end, node, kind) for kind in dirs for start, end, node in qpu_components(names[kind]))
    assert len(components) == 2 * DIRECT_RULES and {node for _, _, node, _ in components} == {one_qpu_node}, components
    assert all(a[1] <= b[0] for a, b in zip(components, components[1:])), components
    for (start, end, _, owner), (rule_start, rule_end, kind) in zip(components, runs):
        assert owner == kind and start.timestamp() <= rule_start and rule_end <= end.timestamp() + 1, (components, runs)


def test_a_qpu_rule_that_closes_its_open_qpu_lease_frees_the_qpu_node_while_it_runs_on(one_qpu_node, tmp_path,
                                                                                       spawn):
    names = {kind: run_name(kind) for kind in ("early", "late")}
    dirs = run_side_by_side(tmp_path, spawn, {"early": EARLY, "late": LATE}, other={"early": "late", "late": "early"},
                            extra=lambda kind: (*SLURM, "--hcqw-workflow-id", names[kind]))
    early = json.loads((dirs["early"] / "early.json").read_text())
    late = json.loads((dirs["late"] / "late.json").read_text())
    # The late rule got the qpu node while the early rule still ran, after the early rule's lease closed.
    assert early["saw_late"] and early["closing"] <= late["started"] <= early["end"], (early, late)
    (early_qpu,), (late_qpu,) = qpu_components(names["early"], "early"), qpu_components(names["late"], "late")
    assert early_qpu[2] == late_qpu[2] == one_qpu_node, (early_qpu, late_qpu)
    # SLURM's whole seconds: the early qpu component ended with the lease, before the late one began.
    assert early["closing"] - 1 <= early_qpu[1].timestamp() <= late_qpu[0].timestamp() <= late["started"], (
        early, early_qpu, late_qpu, late)
