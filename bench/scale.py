"""A centre's scale (issue 22): many concurrent workflows of several users, windowed chains beside whole ones.

    hcqw lab up --dir DIR --port-base P --qpu-nodes 2 --simulator modelled
    .venv/bin/python bench/scale.py --lab-dir DIR [--workflows 200] [--iterations 3] [--hold 0.2]
        [--classical 0.2] [--forms window,whole[,window-split]] [--split] [--json out.json]

Per form, one after the other in one run (``sdiag --reset`` before each): ``--workflows`` chains of the
light loop ``bench/scale_loop.py`` (a Bell batch, a ``--hold`` s hold of the device, a ``--classical`` s
sleep), split evenly between the lab users hcqw-alice and hcqw-bob, each workflow followed by a
follower of its own (a thread with its own backend, as ``hcqw slurm run`` per workflow would be; the
threads of one user run in one process as that user). Forms:

- ``window``: hcqw's default: at most 5 job records per workflow in SLURM, refilled by the follower;
  status from the snapshot one user's followers on the host share (``SharedStatusSource``).
- ``whole``: the chain submitted whole with ``nice = iteration x 1000``, each follower querying the
  controller itself every 2 s (the form before issue 22).

Reported per form: job records in SLURM at peak (sampled each second with ``squeue`` by this process,
whose calls are subtracted from the status figure), slurmctld's RPCs per second by type and its main
and backfill cycle times (``sdiag``), release requests (REQUEST_KILL_JOB) per quantum node, the qpu
hosts' busy share (SLURM's qpu component records) and the makespan against the bound (quantum nodes x
hold / qpu hosts), and each user's wait for the QPU (ready -> qpu component start).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

USERS = ("hcqw-alice", "hcqw-bob")
STATUS_RPCS = ("REQUEST_JOB_INFO", "REQUEST_JOB_INFO_SINGLE", "REQUEST_JOB_USER_INFO")

# Run as one lab user: follow each of its workflows in a thread of its own (own backend), then print one JSON
# line with every chain's jobs and SLURM's records of them.
_WORKER = r"""
import json, sys, threading, time
from hcqw.hetjob.chain import NICE_STEP, WINDOW_RECORDS, follow_chain, submit_chain
from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.hetjob.records import qpu_component_times
from hcqw.slurm import open_backend
args = json.loads(sys.argv[1])
window = args["form"].startswith("window")
settings = NodeJobSettings(device_service=args["device_service"])
results, errors = {}, {}

def follow(workflow):
    backend = open_backend("slurm", poll_interval=2.0, shared_status=window)
    try:
        chain = submit_chain(backend, "bench.scale_loop:make", args["params"], workflow, args["runs_dir"], settings,
                             nice_step=0 if window else NICE_STEP, fused=args["fused"],
                             window=WINDOW_RECORDS if window else None)
        submitted = time.time()
        follow_chain(backend, chain, timeout=1800)
        results[workflow] = (submitted, chain.jobs)
    except Exception as err:
        errors[workflow] = repr(err)

threads = [threading.Thread(target=follow, args=(wf,)) for wf in args["workflows"]]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
backend = open_backend("slurm", poll_interval=2.0, shared_status=False)
states = backend.status([job for _, jobs in results.values() for _, job in jobs], force=True)
out = {}
for workflow, (submitted, jobs) in results.items():
    nodes = []
    for node, job in jobs:
        state = states[job]
        lead = state.component(0)
        if lead is None:  # purged from slurmctld (finished more than MinJobAge ago; no accounting here)
            nodes.append({"node": node, "job": job, "submit": None, "start": None, "end": None, "qpu_start": None,
                          "qpu_end": None, "state": "PURGED"})
            continue
        qpu = qpu_component_times(state) if state.component(1) is not None else (None, None)
        nodes.append({"node": node, "job": job, "submit": lead.submit_time.timestamp() if lead.submit_time else None,
                      "start": lead.start_time.timestamp() if lead.start_time else None,
                      "end": lead.end_time.timestamp() if lead.end_time else None,
                      "qpu_start": qpu[0], "qpu_end": qpu[1], "state": state.state})
    out[workflow] = {"submitted": submitted, "nodes": nodes}
print(json.dumps({"chains": out, "errors": errors}))
"""


def sdiag(env: dict) -> dict:
    """slurmctld's counters: RPC counts by type, main and backfill cycle times (microseconds)."""
    text = subprocess.run(["sdiag"], env=env, capture_output=True, text=True, check=True, timeout=60).stdout
    rpcs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\s+(\w+)\s+\(\s*\d+\)\s+count:(\d+)", text, re.M)
            if m.group(1).startswith(("REQUEST_", "MESSAGE_", "RESPONSE_"))}
    main, _, rest = text.partition("Backfilling stats")
    backfill = rest.split("Latency for")[0] if rest else ""

    def cycle(section: str, name: str) -> float | None:
        match = re.search(rf"{name}:\s+(\d+)", section)
        return int(match.group(1)) if match else None

    return {"rpcs": rpcs, "main_mean_us": cycle(main, "Mean cycle"), "main_max_us": cycle(main, "Max cycle"),
            "backfill_mean_us": cycle(backfill, "Mean cycle"), "backfill_max_us": cycle(backfill, "Max cycle"),
            "backfill_cycles": cycle(backfill, "Total cycles")}


class Sampler(threading.Thread):
    """``squeue`` once a second: live job records (pending, running, completing) in all and per workflow."""

    def __init__(self, env: dict, tag: str):
        super().__init__(daemon=True)
        self.env, self.tag = env, tag
        self.stop = threading.Event()
        self.calls = 0
        self.peak_total = 0
        self.peak_per_workflow = 0
        self.peak_workflows_live = 0

    def run(self) -> None:
        while not self.stop.is_set():
            out = subprocess.run(["squeue", "-h", "-t", "PD,R,CG,CF", "-o", "%i|%j"], env=self.env,
                                 capture_output=True, text=True, timeout=60).stdout
            self.calls += 1
            per = Counter(name.split(":")[1] for _, _, name in (line.partition("|") for line in out.splitlines())
                          if name.startswith(f"hcqw:{self.tag}"))
            self.peak_total = max(self.peak_total, sum(per.values()))
            self.peak_per_workflow = max(self.peak_per_workflow, max(per.values(), default=0))
            self.peak_workflows_live = max(self.peak_workflows_live, len(per))
            self.stop.wait(1.0)


def split(form: str, args) -> bool:
    """Whether ``form``'s chains are split (``--split``, or a form named ``...-split``) rather than fused."""
    return args.split or form.endswith("-split")


def run_form(lab, form: str, args, tag: str) -> dict:
    from hcqw.lab import users

    env = lab.env
    subprocess.run(["sdiag", "--reset"], env=env, check=True, capture_output=True, timeout=60)
    names = [f"{tag}-{i:03d}" for i in range(args.workflows)]
    by_user = {user: names[j::len(USERS)] for j, user in enumerate(USERS)}
    sampler = Sampler(env, tag)
    sampler.start()
    started = time.time()
    workers = {}
    for user, workflows in by_user.items():
        order = {"form": form, "workflows": workflows, "fused": not split(form, args),
                 "params": {"iterations": args.iterations, "hold": args.hold, "classical": args.classical},
                 "runs_dir": str(lab.home(user) / "scale-runs"), "device_service": lab.qpu_service_address("%n")}
        workers[user] = subprocess.Popen(users.as_user(user, [str(lab.site.python), "-c", _WORKER, json.dumps(order)]),
                                         env={**lab.user_env(user), "PYTHONPATH": str(lab.site.src)},
                                         cwd=lab.home(user), umask=users.USER_UMASK, start_new_session=True,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = {}
    if args.max_seconds:  # a capped run: records and RPC rates only, then stop the followers and the jobs
        time.sleep(args.max_seconds)
        sampler.stop.set()
        sampler.join(30)
        elapsed = time.time() - started
        counters = sdiag(env)
        for worker in workers.values():
            os.killpg(worker.pid, 9)
            worker.wait()
        for user in USERS:
            subprocess.run(["scancel", "-u", user], env=env, capture_output=True, timeout=60)
        return summarise(form, args, {}, counters, sampler, elapsed)
    for user, worker in workers.items():
        out, err = worker.communicate(timeout=3600)
        if worker.returncode != 0 or not out.strip():
            raise SystemExit(f"{user}'s followers failed (exit {worker.returncode}): {err[-3000:]}")
        outputs[user] = json.loads(out.strip().splitlines()[-1])
    elapsed = time.time() - started
    sampler.stop.set()
    sampler.join(30)
    counters = sdiag(env)
    return summarise(form, args, outputs, counters, sampler, elapsed)


def summarise(form: str, args, outputs: dict, counters: dict, sampler: Sampler, elapsed: float) -> dict:
    rpcs = counters["rpcs"]
    status = sum(rpcs.get(name, 0) for name in STATUS_RPCS) - sampler.calls
    holds, waits = [], defaultdict(list)
    first_submit, last_end, errors = float("inf"), 0.0, {}
    quantum_nodes = 0
    for user, output in outputs.items():
        errors.update(output["errors"])
        for chain in output["chains"].values():
            previous_end = None
            for node in chain["nodes"]:
                first_submit = min(first_submit, node["submit"] or first_submit)
                last_end = max(last_end, node["end"] or 0.0)
                if node["qpu_start"] is not None:
                    quantum_nodes += 1
                    holds.append((node["qpu_start"], node["qpu_end"]))
                    ready = previous_end if previous_end is not None else node["submit"]
                    waits[user].append(node["qpu_start"] - ready)
                previous_end = node["end"]
    makespan = last_end - first_submit if holds else 0.0
    qpu_hosts = 2
    busy = sum(end - start for start, end in holds)
    bound = quantum_nodes * args.hold / qpu_hosts
    kills = rpcs.get("REQUEST_KILL_JOB", 0) + rpcs.get("REQUEST_CANCEL_JOB_STEP", 0)
    return {
        "form": form, "workflows": args.workflows, "iterations": args.iterations, "fused": not split(form, args),
        "errors": errors, "elapsed_s": elapsed, "makespan_s": makespan, "bound_s": bound,
        "records_peak_total": sampler.peak_total, "records_peak_per_workflow": sampler.peak_per_workflow,
        "records_peak_per_live_workflow": sampler.peak_total / max(1, args.workflows),
        "status_rpcs": status, "status_rpcs_per_s": status / elapsed, "sampler_calls": sampler.calls,
        "rpcs_per_s": {name: count / elapsed for name, count in sorted(rpcs.items(), key=lambda kv: -kv[1])},
        "release_rpcs_per_quantum_node": kills / max(1, quantum_nodes), "quantum_nodes": quantum_nodes,
        "main_mean_us": counters["main_mean_us"], "main_max_us": counters["main_max_us"],
        "backfill_mean_us": counters["backfill_mean_us"], "backfill_max_us": counters["backfill_max_us"],
        "qpu_busy": busy / (qpu_hosts * makespan) if makespan > 0 else 0.0,
        "wait_mean_s": {user: sum(w) / len(w) for user, w in waits.items() if w},
        "wait_max_s": {user: max(w) for user, w in waits.items() if w},
    }


def main(argv: list[str] | None = None) -> int:
    from hcqw.lab import LabCluster
    from hcqw.lab.software import ensure_site_venv

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lab-dir", type=Path, required=True, help="a running lab with two qpu hosts")
    p.add_argument("--workflows", type=int, default=200)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--hold", type=float, default=0.2, help="seconds each quantum block keeps the device")
    p.add_argument("--classical", type=float, default=0.2, help="seconds each classical step sleeps")
    p.add_argument("--forms", default="window,whole",
                   help="comma-separated: window, whole; '-split' after one makes its chains split (e.g. window-split)")
    p.add_argument("--split", action="store_true", help="split chains (default: fused, one hetjob per iteration)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="stop each form after this long (followers killed, jobs cancelled): records and RPC rates "
                        "only, for scales whose runs outlast the time at hand")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    ensure_site_venv()  # the lab users' jobs run this checkout
    lab = LabCluster.from_dir(args.lab_dir)
    os.environ.update(lab.env)
    rows = []
    for form in args.forms.split(","):
        tag = f"sc{int(time.time()) % 100000}{form[0]}"
        load = os.getloadavg()
        row = run_form(lab, form, args, tag)
        row["load_before"] = load
        rows.append(row)
        print(json.dumps(row, indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print("| form | workflows | records at peak (all / per workflow) | status RPC/s | all RPC/s | release RPCs per "
          "quantum node | main cycle mean/max ms | backfill cycle mean/max ms | makespan s (bound) | QPU busy | "
          "wait mean/max s per user |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        waits = ", ".join(f"{u.split('-')[-1]} {r['wait_mean_s'][u]:.1f}/{r['wait_max_s'][u]:.0f}" for u in r["wait_mean_s"])
        ms = lambda us: f"{us / 1000:.1f}" if us is not None else "-"  # noqa: E731
        print(f"| {r['form']} | {r['workflows']} | {r['records_peak_total']} / {r['records_peak_per_workflow']} | "
              f"{r['status_rpcs_per_s']:.2f} | {sum(r['rpcs_per_s'].values()):.1f} | "
              f"{r['release_rpcs_per_quantum_node']:.2f} | {ms(r['main_mean_us'])}/{ms(r['main_max_us'])} | "
              f"{ms(r['backfill_mean_us'])}/{ms(r['backfill_max_us'])} | {r['makespan_s']:.0f} ({r['bound_s']:.0f}) | "
              f"{r['qpu_busy']:.2f} | {waits} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
