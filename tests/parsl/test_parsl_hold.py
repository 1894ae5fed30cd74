"""Two Parsl scripts at once on the embedded ``hcqw_config()`` (tests/parsl/hold_script.py): qpu apps
hold the machine's one device for their whole run, or until their open_qpu lease closes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hcqw.metrics import read_events

SCRIPT = Path(__file__).with_name("hold_script.py")

log = logging.getLogger(__name__)
pytestmark = pytest.mark.slow


def run_side_by_side(tmp_path: Path, modes: dict[str, str], other: dict[str, str],
                     extra: tuple[str, ...] = ()) -> dict[str, Path]:
    """One script per run directory (named after its workflow), all started at once, with ``extra`` arguments;
    each writes its metrics into its own directory."""
    dirs = {name: tmp_path / name for name in modes}
    procs = {}
    for name, mode in modes.items():
        dirs[name].mkdir()
        env = {**os.environ, "HCQW_METRICS": str(dirs[name] / "qpu.jsonl")}
        procs[name] = subprocess.Popen([sys.executable, str(SCRIPT), mode, str(dirs[name]), str(dirs[other[name]]),
                                        *extra],
                                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for name, proc in procs.items():
            output = proc.communicate(timeout=400)[0]
            assert proc.returncode == 0, output[-3000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return dirs


def result(path: Path):
    return json.loads((path / "result.json").read_text())


def holds(path: Path, app: str) -> list[tuple[float, float]]:
    return sorted((e["start"], e["end"]) for e in read_events(path / "qpu.jsonl", "hold") if e["node"].startswith(app))


def test_two_scripts_whose_qpu_apps_call_the_simulator_take_turns_on_the_device(tmp_path, job_env):
    dirs = run_side_by_side(tmp_path, {"a": "direct", "b": "direct"}, other={"a": "b", "b": "a"})
    runs = sorted((r["start"], r["end"], name) for name, path in dirs.items() for r in result(path))
    assert len(runs) == 6
    # Never two apps on the device at once...
    assert all(a[1] <= b[0] for a, b in zip(runs, runs[1:])), runs
    # ...and each script got turns before the other finished (not a-a-a-b-b-b).
    order = [name for _, _, name in runs]
    log.info("qpu apps on the device, in order: %s", " ".join(order))
    assert sum(a != b for a, b in zip(order, order[1:])) >= 2, order
    # The device's own record: each app held it for its whole run, one holder at a time.
    for name, path in dirs.items():
        own = holds(path, "direct")
        apps = sorted((start, end) for start, end, owner in runs if owner == name)
        assert len(own) == 3 and all(h[0] <= r[0] and r[1] <= h[1] for h, r in zip(own, apps)), (own, apps)
    every = sorted(h for path in dirs.values() for h in holds(path, ""))
    assert len(every) == 8 and all(a[1] <= b[0] for a, b in zip(every, every[1:])), every  # with the warm-ups


def test_a_qpu_app_that_closes_its_open_qpu_lease_frees_the_device_while_it_runs_on(tmp_path, job_env):
    dirs = run_side_by_side(tmp_path, {"early": "early", "late": "late"}, other={"early": "late", "late": "early"})
    early, late = result(dirs["early"]), result(dirs["late"])
    # The late app waited for the early app's lease, and ran while the early app still ran.
    assert early["saw_late"] and early["closing"] <= late["started"] <= early["end"], (early, late)
    (early_hold,), (late_hold,) = holds(dirs["early"], "early"), holds(dirs["late"], "late")
    # The early app's hold ended with its lease, before the late app's began.
    assert early["closing"] <= early_hold[1] <= late_hold[0] <= late["started"], (early, early_hold, late_hold, late)


def qpu_components(workflow: str) -> list[tuple[float, float, str]]:
    """(start, end, node) of the qpu components of a script's jobs, from SLURM's records (whole seconds)."""
    from hcqw.slurm.commands import run_slurm
    from hcqw.slurm.parsing import parse_scontrol

    records = parse_scontrol(run_slurm(["scontrol", "-o", "show", "job"]).stdout)
    return sorted((r.start_time.timestamp(), r.end_time.timestamp(), r.nodelist) for r in records
                  if r.name and r.name.startswith(f"hcqw:{workflow}:") and r.het_offset == 1)


@pytest.mark.slurm
def test_on_slurm_two_scripts_whose_qpu_apps_call_the_simulator_take_turns_on_one_qpu_node(tmp_path, job_env,
                                                                                          slurm_lab):
    node = slurm_lab.layout.qpu_node_names[0]
    a, b = (f"{kind}-{uuid.uuid4().hex[:6]}" for kind in "ab")
    dirs = run_side_by_side(tmp_path, {a: "direct", b: "direct"}, other={a: b, b: a},
                            extra=("--backend", "slurm", node))
    runs = sorted((r["start"], r["end"], name) for name, path in dirs.items() for r in result(path))
    assert len(runs) == 6 and all(x[1] <= y[0] for x, y in zip(runs, runs[1:])), runs
    order = [name for _, _, name in runs]
    log.info("qpu apps on %s, in order: %s", node, " ".join(order))
    assert sum(x != y for x, y in zip(order, order[1:])) >= 2, order
    # SLURM's records: each app ran inside a qpu component of its own on that node, one at a time.
    components = sorted((*c, name) for name in dirs for c in qpu_components(name))
    assert len(components) == 6 and {c[2] for c in components} == {node}, components
    assert all(x[1] <= y[0] for x, y in zip(components, components[1:])), components
    for (start, end, _, owner), (app_start, app_end, name) in zip(components, runs):
        assert owner == name and start <= app_start and app_end <= end + 1, (components, runs)


@pytest.mark.slurm
def test_on_slurm_a_qpu_app_that_closes_its_open_qpu_lease_frees_the_qpu_node_while_it_runs_on(tmp_path, job_env,
                                                                                               slurm_lab):
    node = slurm_lab.layout.qpu_node_names[0]
    early_name, late_name = (f"{kind}-{uuid.uuid4().hex[:6]}" for kind in ("early", "late"))
    dirs = run_side_by_side(tmp_path, {early_name: "early", late_name: "late"},
                            other={early_name: late_name, late_name: early_name}, extra=("--backend", "slurm", node))
    early, late = result(dirs[early_name]), result(dirs[late_name])
    assert early["saw_late"] and early["closing"] <= late["started"] <= early["end"], (early, late)
    (early_qpu,), (late_qpu,) = qpu_components(early_name), qpu_components(late_name)
    assert early_qpu[2] == late_qpu[2] == node
    assert early["closing"] - 1 <= early_qpu[1] <= late_qpu[0] <= late["started"], (early, early_qpu, late_qpu, late)
