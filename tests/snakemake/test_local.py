"""The local backend (no SLURM): the Snakefile VQE (energy, device leases, logs, resume), and two
workflows at once on the machine's one device (qpu rules hold it for their whole run, or until
their open_qpu lease closes)."""

from __future__ import annotations

import json
import logging
import signal
import textwrap
from pathlib import Path

import pytest

from hcqw.device import LocalDevice
from hcqw.lab.pytest_plugin import wait_for
from hcqw.metrics import read_events
from tests.support.snakemake_runs import DIRECT, DIRECT_RULES, EARLY, LATE, TOLERANCE, read_energy, run_side_by_side, run_snakemake, snakemake_argv

log = logging.getLogger(__name__)
pytestmark = pytest.mark.slow


def test_example_local_backend_reaches_energy_and_resumes(workdir):
    run = run_snakemake(workdir)
    assert run.returncode == 0, run.output
    assert "hcqw executor: backend local" in run.output
    result = read_energy(workdir)
    assert abs(result["energy"] - result["exact"]) <= TOLERANCE, result
    # Each quantum rule held the machine-local device once, through open_qpu.
    holds = read_events(workdir / ".snakemake" / "hcqw" / "metrics" / "qpu.jsonl", "hold")
    assert sorted(e["node"] for e in holds) == ["q0001", "q0002", "q0003", "q0004"]
    logs = sorted((workdir / ".snakemake" / "hcqw_logs" / "quantum").glob("i=*/local-*.log"))
    assert len(logs) == 4

    # A run stopped before its last steps picks up from the finished checkpoints.
    for name in ("vqe/energy.txt", "vqe/checkpoints/state-0004.ckpt"):
        (workdir / name).unlink()
    again = run_snakemake(workdir)
    assert again.returncode == 0, again.output
    submitted = sorted(line.split()[2] for line in again.output.splitlines() if line.startswith("hcqw: rule "))
    assert submitted == ["classical", "energy"], again.output
    assert read_energy(workdir) == result


def test_example_fused_one_qpu_rule_per_iteration_reaches_the_split_energy(workdir, tmp_path):
    """``--config fused=True``: one ``iteration`` rule per step (quantum, device freed, classical); the energy is
    the lab pipeline's for the same seed, so the split form's too."""
    from examples.vqe.pipeline import make_loop
    from hcqw.embedded import Workflow, run_split

    run = run_snakemake(workdir, "--config", "fused=True")
    assert run.returncode == 0, run.output
    submitted = sorted(line.split()[2] for line in run.output.splitlines() if line.startswith("hcqw: rule "))
    assert submitted == ["energy", "init"] + ["iteration"] * 4, run.output
    embedded = Workflow.create(make_loop(iterations=4, shots=4000, seed=7), tmp_path / "embedded", "lab")
    run_split([embedded], LocalDevice("qsim", directory=tmp_path / "device"))
    assert read_energy(workdir)["energy"] == round(embedded.final_state().energy, 8)
    held = read_events(workdir / ".snakemake" / "hcqw" / "metrics" / "qpu.jsonl", "hold")
    assert sorted(e["node"] for e in held) == ["q0001", "q0002", "q0003", "q0004"]


def holds(workdir: Path) -> list[tuple[float, float]]:
    return sorted((e["start"], e["end"]) for e in read_events(workdir / ".snakemake" / "hcqw" / "metrics" / "qpu.jsonl",
                                                             "hold"))


def test_two_workflows_whose_qpu_rules_call_the_simulator_take_turns_on_the_device(tmp_path, spawn):
    dirs = run_side_by_side(tmp_path, spawn, {"a": DIRECT, "b": DIRECT}, other={"a": "b", "b": "a"})
    runs = sorted((r["start"], r["end"], name) for name, path in dirs.items()
                  for r in (json.loads((path / f"q{i}.json").read_text()) for i in range(1, DIRECT_RULES + 1)))
    # Never two rules on the device at once...
    assert all(a[1] <= b[0] for a, b in zip(runs, runs[1:])), runs
    # ...and each workflow got turns before the other finished (not a-a-b-b).
    order = [name for _, _, name in runs]
    log.info("qpu rules on the device, in order: %s", " ".join(order))
    assert sum(a != b for a, b in zip(order, order[1:])) >= 2, order
    # The device's own record: each rule held it for its whole run, one holder at a time.
    for name, path in dirs.items():
        own = holds(path)
        rules = sorted((start, end) for start, end, owner in runs if owner == name)
        assert len(own) == DIRECT_RULES and all(h[0] <= r[0] and r[1] <= h[1] for h, r in zip(own, rules)), (own, rules)
    every = sorted(h for path in dirs.values() for h in holds(path))
    assert all(a[1] <= b[0] for a, b in zip(every, every[1:])), every


def test_a_qpu_rule_that_closes_its_open_qpu_lease_frees_the_device_while_it_runs_on(tmp_path, spawn):
    dirs = run_side_by_side(tmp_path, spawn, {"early": EARLY, "late": LATE}, other={"early": "late", "late": "early"})
    early = json.loads((dirs["early"] / "early.json").read_text())
    late = json.loads((dirs["late"] / "late.json").read_text())
    # The late rule waited for the early rule's lease, and ran while the early rule still ran.
    assert early["saw_late"] and early["closing"] <= late["started"] <= early["end"], (early, late)
    (early_hold,), (late_hold,) = holds(dirs["early"]), holds(dirs["late"])
    # The early rule's hold ended with its lease, before the late rule's began.
    assert early["closing"] <= early_hold[1] <= late_hold[0] <= late["started"], (early, early_hold, late_hold, late)


def test_cancelling_a_run_frees_the_device_its_running_qpu_rule_held(workdir, spawn):
    snakefile = workdir / "Snakefile"
    snakefile.write_text(textwrap.dedent("""
        rule q:
            output: "q.txt"
            resources: qpu=1
            shell: "touch started; sleep 300; touch {output}"
    """))
    proc = spawn(snakemake_argv(workdir, snakefile=snakefile))
    device = LocalDevice("qsim")
    wait_for(lambda: (workdir / "started").exists(), 120, "the qpu rule to run")
    assert [entry["node"] for entry in device.queue()] == ["q"]
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert "hcqw: cancelling 1 job(s)" in output, output
    # Cancelling sends SIGTERM, then SIGKILL after a grace (which a loaded machine may need, and which skips the
    # job's clean-up: its ticket stays listed, its lock freed by the kernel). Either way the device is free at once
    # for whoever comes next, and that one clears what was left.
    with device.acquire("next", "q", timeout=10):
        assert [entry["workflow"] for entry in device.queue()] == ["next"]
    assert device.queue() == []


def test_a_per_call_rule_is_refused_on_this_machine_by_name(tmp_path):
    """``qpu="per-call"`` gives each quantum call a qpu job from SLURM: the local backend says so instead of running
    the driver with nothing to hold its calls."""
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text('rule a:\n    output: "a.txt"\n    resources: qpu="per-call"\n    shell: "touch {output}"\n')
    (tmp_path / "run").mkdir(mode=0o700)
    run = run_snakemake(tmp_path / "run", snakefile=snakefile, timeout=120)
    assert run.returncode != 0
    assert "resources qpu='per-call' gives each quantum call a qpu job of its own from SLURM" in run.output
    assert "--hcqw-backend slurm" in run.output and not (tmp_path / "run" / "a.txt").exists()
