"""What acquiring the QPU per call costs (issue 21): one unsplit driver on the lab, side by side
per-call (each call a qpu job of its own, ``HCQW_DEVICE=per-call``) and a session straight on the
qpu host's resident QPU service (no SLURM: what a driver already holding the device pays per call).

    .venv/bin/python bench/per_call.py --lab-dir /tmp/hcqw-lab --calls 10 --pause 1

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
    args = parser.parse_args()
    lab = LabCluster.from_dir(args.lab_dir)
    lab.up()
    user, host = USERS[0], lab.layout.qpu_node_names[0]
    base = lab.home(user) / "bench"
    ensure_owned_dir(base, user, 0o700)
    work = {mode: Path(tempfile.mkdtemp(prefix=f"per-call-{mode}-", dir=base)) for mode in ("per-call", "resident")}
    for path in work.values():
        subprocess.run(["chown", user, str(path)], check=True)
    workflow = work["per-call"].name
    per_call = run_driver(lab, user, work["per-call"], {
        environment.DEVICE: environment.PER_CALL, environment.WORKFLOW: workflow,
        environment.PER_CALL_SERVICE: lab.layout.qpu_service_address_pattern,
        environment.PER_CALL_OPTIONS: f"--nodelist={host}",
        environment.METRICS: str(work["per-call"] / "qpu.jsonl")}, args.calls, args.pause)
    resident = run_driver(lab, user, work["resident"], {environment.DEVICE_ADDRESS: lab.qpu_service_address(host)},
                          args.calls, args.pause)

    events = [json.loads(line) for line in (work["per-call"] / "qpu.jsonl").read_text().splitlines()]
    acquires = [e for e in events if e["kind"] == "acquire"]
    releases = [e for e in events if e["kind"] == "release"]
    records = [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in subprocess.run(
        ["scontrol", "-o", "show", "job"], env={**lab.env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        check=True).stdout.splitlines()]
    jobs = [r for r in records if r.get("JobName", "").startswith(f"hcqw:{workflow}:")]
    charged = [datetime.fromisoformat(j["EndTime"]).timestamp() - datetime.fromisoformat(j["StartTime"]).timestamp()
               for j in jobs]
    print(f"{args.calls} calls, {args.pause:g} s classical between them, driver on the submit host as {user}, "
          f"qpu host {host}; median / p95 in seconds")
    print("| mode | first result | submit -> gateway ready | ready -> session | session -> result | release | "
          "held (lease) | charged (SLURM) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| per-call | {_stats([c['result'] - c['begin'] for c in per_call])} "
          f"| {_stats([a['allocated'] - a['start'] for a in acquires])} "
          f"| {_stats([a['end'] - a['allocated'] for a in acquires])} "
          f"| {_stats([c['result'] - c['acquired'] for c in per_call])} "
          f"| {_stats([r['end'] - r['start'] for r in releases])} "
          f"| {_stats([c['closed'] - c['acquired'] for c in per_call])} | {_stats(charged)} |")
    print(f"| resident session | {_stats([c['result'] - c['begin'] for c in resident])} | - | - "
          f"| {_stats([c['result'] - c['acquired'] for c in resident])} | - "
          f"| {_stats([c['closed'] - c['acquired'] for c in resident])} | - |")
    print(f"call jobs in SLURM: {len(jobs)} ({', '.join(sorted({j['JobState'] for j in jobs}))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
