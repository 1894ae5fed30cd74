"""What acquiring the QPU per call costs (issue 21): one unsplit driver on the lab, per-call (each call a
qpu job of its own, ``HCQW_DEVICE=per-call``) in its forms side by side. (A session straight on the qpu host's
resident service, the first run's baseline, is refused since issue 24: only jobs holding gres/qpu reach it.)

    .venv/bin/python bench/per_call.py --lab-dir /tmp/hcqw-lab --calls 10 --pause 1

On a staged lab (``hcqw lab up --staging-depth 2``) the per-call forms are: **per-call** (each call's
job asks for the whole device, ``qpu:<depth>``, as on an unstaged host), **per-call staged** (one
staging slot, ``qpu:1``: the job may start while another call executes, its session waits at the
service) and **per-call ahead** (staged, and ``HCQW_PER_CALL_AHEAD=1``: the next call's job is
submitted as a call ends, so it starts during the classical part). ``--start-probe N`` also times N
plain qpu jobs by ``sbatch`` (started on the next scheduler tick) against N by ``srun`` (an
allocation granted in the request itself), submit -> command running on the qpu host.

The driver (``tests/hetjob/percall_driver.py``) runs as hcqw-alice on the submit host. Per call:
``first result`` is the driver's clock from asking for the lease to the first result; per-call splits it
into submit -> gateway ready (sbatch, SLURM's start, the gateway's start-up and address), gateway ready
-> session open, session -> result, and ``release`` is block end -> the call's job cancelled. ``charged``
is SLURM's record of each call's job (End - Start, whole seconds). Brings the lab up if it is down.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hcqw import environment  # noqa: E402
from hcqw.lab import LabCluster  # noqa: E402
from hcqw.lab.users import USERS, ensure_owned_dir  # noqa: E402


def _stats(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"{statistics.median(values):6.3f} / {p95:6.3f}"


def start_probe(lab: LabCluster, count: int) -> None:
    """submit -> command on the qpu host, sbatch against srun, and which scheduler started the sbatch jobs."""
    env = {**lab.env, "PATH": "/usr/bin:/bin"}
    log = Path(lab.layout.log) / "slurmctld.log"
    out = {"sbatch": [], "srun": []}
    with tempfile.TemporaryDirectory(prefix="start-probe-") as tmp:
        mark = Path(tmp) / "started"
        for i in range(count):
            for how in ("sbatch", "srun"):
                mark.unlink(missing_ok=True)
                asked = time.time()
                command = ["-p", "qpu", "--gres=qpu:1", "-N1", "-n1"]
                if how == "sbatch":
                    subprocess.run(["sbatch", "--parsable", *command, "-o", str(mark), "--wrap", "date +%s.%N"],
                                   env=env, check=True, capture_output=True)
                    while not (mark.exists() and mark.read_text().strip()):
                        time.sleep(0.005)
                    started = float(mark.read_text())
                else:
                    started = float(subprocess.run(["srun", *command, "date", "+%s.%N"], env=env, check=True,
                                                   capture_output=True, text=True).stdout)
                out[how].append(started - asked)
                time.sleep(1.0 + (i % 10) / 10)  # the job has ended; vary the phase against the 1 s ticks
    text = log.read_text(errors="replace")
    print(f"start probe ({count} each, submit -> command on the qpu host, s): sbatch {_stats(out['sbatch'])}, "
          f"srun {_stats(out['srun'])}; sbatch jobs started by the main scheduler / backfill in the whole log: "
          f"{text.count('sched: Allocate JobId=')} / {text.count('_start_job: Started JobId=')}")


def run_driver(lab: LabCluster, user: str, workdir: Path, env: dict[str, str], calls: int, pause: float) -> list[dict]:
    out = workdir / "calls.jsonl"
    done = lab.exec(user, [str(lab.site.bin / "python"), str(lab.site.src / "tests/hetjob/percall_driver.py"),
                           str(out), str(calls), str(pause)], cwd=workdir, env=env, capture_output=True, text=True,
                    timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"driver failed:\n{done.stderr[-3000:]}")
    return [json.loads(line) for line in out.read_text().splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab-dir", type=Path, required=True)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--pause", type=float, default=1.0, help="classical seconds between calls")
    parser.add_argument("--start-probe", type=int, default=0, metavar="N", help="also time N sbatch and N srun starts")
    args = parser.parse_args()
    lab = LabCluster.from_dir(args.lab_dir)
    lab.up()
    user, host = USERS[0], lab.layout.qpu_node_names[0]
    depth = lab.layout.staging_depth
    modes = {"per-call": {environment.PER_CALL_GRES: f"qpu:{depth}"}}
    if depth > 1:
        modes["per-call staged"] = {environment.PER_CALL_GRES: "qpu:1"}
        modes["per-call ahead"] = {environment.PER_CALL_GRES: "qpu:1", environment.PER_CALL_AHEAD: "1"}
    base = lab.home(user) / "bench"
    ensure_owned_dir(base, user, 0o700)
    work = {mode: Path(tempfile.mkdtemp(prefix=f"per-call-{mode.replace(' ', '-')}-", dir=base))
            for mode in modes}
    for path in work.values():
        subprocess.run(["chown", user, str(path)], check=True)
    print(f"{args.calls} calls, {args.pause:g} s classical between them, driver on the submit host as {user}, "
          f"qpu host {host} (staging depth {depth}); median / p95 in seconds")
    print("| mode | first result | asked -> gateway ready | ready -> session | session -> result | release | "
          "held (lease) | charged (SLURM) | charged - held |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for mode, extra in modes.items():
        workflow = work[mode].name
        calls = run_driver(lab, user, work[mode], {
            environment.DEVICE: environment.PER_CALL, environment.WORKFLOW: workflow,
            environment.PER_CALL_SERVICE: lab.layout.qpu_service_address_pattern,
            environment.PER_CALL_OPTIONS: f"--nodelist={host}",
            environment.METRICS: str(work[mode] / "qpu.jsonl"), **extra}, args.calls, args.pause)
        events = [json.loads(line) for line in (work[mode] / "qpu.jsonl").read_text().splitlines()]
        acquires = [e for e in events if e["kind"] == "acquire"]
        releases = [e for e in events if e["kind"] == "release"]
        records = [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in subprocess.run(
            ["scontrol", "-o", "show", "job"], env={**lab.env, "PATH": "/usr/bin:/bin"}, capture_output=True,
            text=True, check=True).stdout.splitlines()]
        jobs = [r for r in records if r.get("JobName", "").startswith(f"hcqw:{workflow}:")
                and r.get("StartTime") not in (None, "Unknown", "None")]
        charged = [datetime.fromisoformat(j["EndTime"]).timestamp() - datetime.fromisoformat(j["StartTime"]).timestamp()
                   for j in jobs]
        held = sum(c["closed"] - c["acquired"] for c in calls)
        print(f"| {mode} | {_stats([c['result'] - c['begin'] for c in calls])} "
              f"| {_stats([a['allocated'] - a['start'] for a in acquires])} "
              f"| {_stats([a['end'] - a['allocated'] for a in acquires])} "
              f"| {_stats([c['result'] - c['acquired'] for c in calls])} "
              f"| {_stats([r['end'] - r['start'] for r in releases])} "
              f"| {_stats([c['closed'] - c['acquired'] for c in calls])} | {_stats(charged)} "
              f"| {sum(charged) - held:.1f} s in all ({len(jobs)} jobs: "
              f"{', '.join(sorted({j['JobState'] for j in jobs}))}) |")
    if args.start_probe:
        start_probe(lab, args.start_probe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
