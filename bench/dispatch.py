"""Dispatch benchmark of the QPU service (issue 4): per-step round trip and node start.

    .venv/bin/python bench/dispatch.py [--steps 10000] [--runs 3] [--json out.json]

Per-step round trip, median and p99 over --steps steps per path, all paths in the same run:
- service ``ping`` (control no-op) and a trivial work item (1 qubit, 1 repetition, qsim) over
  ZeroMQ tcp, ZeroMQ ipc and MPI DPM (port file);
- baselines sending the same ping bytes: raw pyzmq REQ/REP (the issue's baseline) and raw pyzmq
  DEALER/ROUTER (the service's socket types; blocking recv on both sides), tcp and ipc; a raw
  mpi4py intercommunicator ping-pong.
On a shared machine the load changes from second to second, so the paths are interleaved:
each run does --rounds rounds, each round a block of steps/rounds steps of every ZeroMQ path
(servers all up, idle ones blocked in recv), and the MPI pairs alternate raw/service
(--mpi-rounds). --runs repeats everything; the table shows the median over runs.
Node start: "quantum node begins" -> "first result back": cold (fresh process imports cirq and
qsimcirq and builds the simulator) vs hot (running service; fresh client process, and a new
session from an already running process).
Authentication (issue 12): the tcp service authenticates with MUNGE (a private munged is started
for the benchmark); the ipc service is measured twice, in its private directory without
authentication (the embedded default) and on a shared socket with ``--auth munge``, so per-request
overhead with and without authentication is compared on the same transport. Session open (the
only request besides control that carries a credential) is timed on all three (--opens each).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
MPIEXEC = str(BIN / "mpiexec")
TRIVIAL = ('{"cirq_type": "Circuit", "moments": [{"cirq_type": "Moment", "operations": [{"cirq_type": '
           '"GateOperation", "gate": {"cirq_type": "MeasurementGate", "num_qubits": 1, "key": "m", '
           '"invert_mask": []}, "qubits": [{"cirq_type": "LineQubit", "x": 0}]}]}]}')


PING = b'{"v":1,"type":"ping","id":1}'  # the bytes a service ping sends


def summary(us: list[float]) -> dict:
    ordered = sorted(us)
    return {"median_us": statistics.median(ordered), "p99_us": ordered[int(0.99 * (len(ordered) - 1))],
            "n": len(ordered)}


def timed(step, steps: int, out: list[float]) -> None:
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        out.append((time.perf_counter() - t0) * 1e6)


def service_steps(client, qpu) -> dict:
    from hcqw.device.work import WorkItem

    item = [WorkItem(TRIVIAL, 1)]
    return {"ping": lambda: client.call("ping"), "work_item": lambda: qpu.run_batch(item)}


def service_loop(address: str, steps: int) -> dict:
    """Client side of the MPI service measurement (runs under mpiexec): raw step times."""
    from hcqw.service.client import ServiceClient

    out = {}
    with ServiceClient(address, timeout=30) as client, client.session("bench", "dispatch") as qpu:
        for name, step in service_steps(client, qpu).items():
            for _ in range(min(500, steps)):
                step()
            out[name] = []
            timed(step, steps, out[name])
    return out


def start_service(tmp: Path, address: str, mpi: bool = False, auth: str = "auto") -> tuple[subprocess.Popen, str]:
    address_file = tmp / f"addr-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "hcqw.cli.device", "serve", "--address", address, "--threads", "1",
           "--log", str(tmp / "metrics.jsonl"), "--address-file", str(address_file), "--auth", auth]
    if mpi:
        cmd = [MPIEXEC, "-n", "1", *cmd, "--mpi-max-clients", "1"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, PYTHONPATH=str(ROOT), HCQW_STATE_DIR=str(tmp / "state")),
                            start_new_session=True)
    while not address_file.exists():
        if proc.poll() is not None:
            raise SystemExit(f"service failed to start: {cmd}")
        time.sleep(0.05)
    return proc, address_file.read_text()


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, 15)
        proc.wait(20)


# A raw echo server: REP (with a REQ client) or ROUTER (with a DEALER client), blocking recv.
RAW_ZMQ_SERVER = """
import sys, zmq
s = zmq.Context().socket(getattr(zmq, sys.argv[2])); s.bind(sys.argv[1])
print(s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
while True:
    m = s.recv_multipart()
    s.send_multipart(m)
    if m[-1] == b"stop": break
"""


class RawZmq:
    """A raw pyzmq ping-pong pair: ``kind`` REQ (REQ/REP) or DEALER (DEALER/ROUTER)."""

    def __init__(self, address: str, kind: str):
        import zmq

        server = "REP" if kind == "REQ" else "ROUTER"
        self.server = subprocess.Popen([sys.executable, "-c", RAW_ZMQ_SERVER, address, server],
                                       stdout=subprocess.PIPE, text=True)
        self.socket = zmq.Context.instance().socket(getattr(zmq, kind))
        self.socket.connect(self.server.stdout.readline().strip())

    def step(self) -> None:
        self.socket.send(PING)
        self.socket.recv_multipart()

    def close(self) -> None:
        self.socket.send(b"stop")
        self.socket.recv()
        self.socket.close(0)
        self.server.wait(10)


def session_opens(services: dict[str, str], opens: int, block: int = 20) -> dict:
    """Session open (and close) round trips per service, interleaved in blocks: ``open_<transport>``."""
    from hcqw.service.client import ServiceClient

    clients = {name: ServiceClient(address, timeout=30) for name, address in services.items()}
    opened: dict[str, list[float]] = {name: [] for name in services}
    closed: dict[str, list[float]] = {name: [] for name in services}
    try:
        for _ in range(max(1, opens // block)):
            for name, client in clients.items():
                for _ in range(block):
                    t0 = time.perf_counter()
                    qpu = client.session("bench", "open")
                    t1 = time.perf_counter()
                    qpu.close()
                    opened[name].append((t1 - t0) * 1e3)
                    closed[name].append((time.perf_counter() - t1) * 1e3)
    finally:
        for client in clients.values():
            client.close()
    out = {}
    for name in services:
        out[f"open_{name}"] = {"median_ms": statistics.median(opened[name]), "max_ms": max(opened[name])}
        out[f"close_{name}"] = {"median_ms": statistics.median(closed[name]), "max_ms": max(closed[name])}
    return out


def zmq_paths(tmp: Path, steps: int, rounds: int, opens: int) -> tuple[dict, dict]:
    """All ZeroMQ paths interleaved in ``rounds`` blocks; returns (summaries, node start)."""
    from hcqw.service.client import ServiceClient

    procs, closers, paths = [], [], {}
    try:
        services = {}
        for transport, address, auth in (("zmq_tcp", "tcp://127.0.0.1:*", "munge"),
                                         ("zmq_ipc", f"ipc://{tmp}/ipc/qpu.ipc", "none"),
                                         ("zmq_ipc_munge", f"ipc://{tmp}/shared/qpu.ipc", "munge")):
            proc, bound = start_service(tmp, address, auth=auth)
            procs.append(proc)
            services[transport] = bound
            client = ServiceClient(bound, timeout=30)
            qpu = client.session("bench", "dispatch")
            closers += [client.close, qpu.close]  # closed in reverse: session first
            for kind, step in service_steps(client, qpu).items():
                paths[f"service_{transport}_{kind}"] = step
        for transport, address in (("tcp", "tcp://127.0.0.1:*"), ("ipc", f"ipc://{tmp}/raw-%s.ipc")):
            for kind, name in (("REQ", "req_rep"), ("DEALER", "dealer_router")):
                raw = RawZmq(address.replace("%s", name), kind)
                closers.append(raw.close)
                paths[f"raw_zmq_{transport}_{name}"] = raw.step
        times: dict[str, list[float]] = {name: [] for name in paths}
        names = list(paths)
        for name in names:
            for _ in range(min(500, steps)):
                paths[name]()
        block = max(1, steps // rounds)
        for round_ in range(rounds):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:  # rotate the order
                timed(paths[name], block, times[name])
        start = node_start(services["zmq_tcp"])
        start.update(session_opens(services, opens))
        return {name: summary(us) for name, us in times.items()}, start
    finally:
        for close in reversed(closers):
            close()
        for proc in procs:
            stop(proc)


def raw_mpi(tmp: Path, steps: int) -> list[float]:
    port = tmp / "raw.port"
    script = str(ROOT / "bench" / "mpi_pingpong.py")
    server = subprocess.Popen([MPIEXEC, "-n", "1", sys.executable, script, "server", str(port)], start_new_session=True)
    try:
        client = subprocess.run([MPIEXEC, "-n", "1", sys.executable, script, "client", str(port), str(steps),
                                 str(len(PING)), "iprobe"], capture_output=True, text=True, timeout=300)
        return json.loads(client.stdout)["us"]
    finally:
        server.wait(30)


def mpi_service(tmp: Path, steps: int) -> dict[str, list[float]]:
    proc, address = start_service(tmp, f"mpi:file:{tmp}/svc.port", mpi=True)
    try:
        client = subprocess.run([MPIEXEC, "-n", "1", sys.executable, __file__, "--mpi-client", address,
                                 "--steps", str(steps)], capture_output=True, text=True, timeout=600,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if client.returncode:
            raise SystemExit(client.stderr)
        return json.loads(client.stdout.strip().splitlines()[-1])
    finally:
        stop(proc)


def mpi_paths(tmp: Path, steps: int, rounds: int) -> dict:
    """Raw and service MPI alternate (each pair of ranks busy-polls a core, so never both at once)."""
    times: dict[str, list[float]] = {"raw_mpi": [], "service_mpi_ping": [], "service_mpi_work_item": []}
    block = max(1, steps // rounds)
    for _ in range(rounds):
        times["raw_mpi"] += raw_mpi(tmp, block)
        service = mpi_service(tmp, block)
        times["service_mpi_ping"] += service["ping"]
        times["service_mpi_work_item"] += service["work_item"]
    return {name: summary(us) for name, us in times.items()}


COLD = """
import time, sys
from hcqw.device import make_backend, WorkItem
from hcqw.codec import circuit_from_json
backend = make_backend("qsim", threads=1)
backend.execute([WorkItem.build(circuit_from_json(sys.argv[1]), 1)])
print(time.time())
"""
HOT = """
import time, sys
from hcqw.device.work import WorkItem
from hcqw.service.client import ServiceClient
with ServiceClient(sys.argv[2]) as c, c.session("bench", "node-start") as q:
    q.run_batch([WorkItem(sys.argv[1], 1)])
print(time.time())
"""


def node_start(address: str, repeats: int = 5) -> dict:
    from hcqw.device.work import WorkItem
    from hcqw.service.client import ServiceClient

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = {}
    probes = (("python_bare", "import time; print(time.time())", []),
              ("import_client", "import time, hcqw.service.client; print(time.time())", []),
              ("cold_fresh_process", COLD, [TRIVIAL]), ("hot_fresh_process", HOT, [TRIVIAL, address]))
    for name, code, args in probes:
        times = []
        for _ in range(repeats):
            t0 = time.time()
            done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                                  check=True)
            times.append((float(done.stdout.strip()) - t0) * 1e3)
        out[name] = {"median_ms": statistics.median(times), "max_ms": max(times)}
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        with ServiceClient(address) as client, client.session("bench", "node-start") as qpu:
            qpu.run_batch([WorkItem(TRIVIAL, 1)])
        times.append((time.perf_counter() - t0) * 1e3)
    out["hot_running_process"] = {"median_ms": statistics.median(times), "max_ms": max(times)}
    return out


ROWS = [("raw pyzmq REQ/REP, tcp", "raw_zmq_tcp_req_rep"), ("raw pyzmq DEALER/ROUTER, tcp", "raw_zmq_tcp_dealer_router"),
        ("raw pyzmq REQ/REP, ipc", "raw_zmq_ipc_req_rep"), ("raw pyzmq DEALER/ROUTER, ipc", "raw_zmq_ipc_dealer_router"),
        ("raw mpi4py intercomm ping-pong", "raw_mpi"),
        ("service ZeroMQ tcp, ping", "service_zmq_tcp_ping"), ("service ZeroMQ tcp, work item", "service_zmq_tcp_work_item"),
        ("service ZeroMQ ipc, ping", "service_zmq_ipc_ping"), ("service ZeroMQ ipc, work item", "service_zmq_ipc_work_item"),
        ("service ZeroMQ ipc+munge, ping", "service_zmq_ipc_munge_ping"),
        ("service ZeroMQ ipc+munge, work item", "service_zmq_ipc_munge_work_item"),
        ("service MPI DPM, ping", "service_mpi_ping"), ("service MPI DPM, work item", "service_mpi_work_item")]


def one_run(steps: int, rounds: int, mpi_rounds: int, opens: int) -> dict:
    run: dict = {"loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="hcqw-bench-") as tmp_name:
        tmp = Path(tmp_name)
        paths, run["node_start"] = zmq_paths(tmp, steps, rounds, opens)
        paths.update(mpi_paths(tmp, steps, mpi_rounds))
    run["paths"] = paths
    run["loadavg_after"] = os.getloadavg()
    return run


def median_of_runs(runs: list[dict]) -> dict:
    table = {}
    for _, key in ROWS:
        table[key] = {stat: statistics.median(r["paths"][key][stat] for r in runs) for stat in ("median_us", "p99_us")}
    table["node_start"] = {name: {stat: statistics.median(r["node_start"][name][stat] for r in runs)
                                  for stat in ("median_ms", "max_ms")} for name in runs[0]["node_start"]}
    return table


def report(results: dict) -> None:
    runs, table = results["runs"], results["median_of_runs"]
    print(f"{results['steps']} steps per path, {len(runs)} runs; load average (1 min) per run: "
          + ", ".join(f"{r['loadavg_before'][0]:.1f}-{r['loadavg_after'][0]:.1f}" for r in runs))
    print(f"{'path':<34}{'median us':>10}{'p99 us':>10}   per-run medians")
    for label, key in ROWS:
        per_run = " ".join(f"{r['paths'][key]['median_us']:.1f}" for r in runs)
        print(f"{label:<34}{table[key]['median_us']:>10.1f}{table[key]['p99_us']:>10.1f}   {per_run}")
    # Goals compare paths measured in the same run (same load), so ratios are per run, then the median.
    for transport in ("tcp", "ipc"):
        for base in ("req_rep", "dealer_router"):
            ratios = [r["paths"][f"service_zmq_{transport}_ping"]["median_us"]
                      / r["paths"][f"raw_zmq_{transport}_{base}"]["median_us"] for r in runs]
            print(f"zmq {transport}: service ping / raw {base}: {statistics.median(ratios):.2f}x "
                  f"(per run {' '.join(f'{x:.2f}' for x in ratios)})")
    for kind in ("ping", "work_item"):
        ratios = [r["paths"][f"service_zmq_ipc_munge_{kind}"]["median_us"]
                  / r["paths"][f"service_zmq_ipc_{kind}"]["median_us"] for r in runs]
        print(f"zmq ipc {kind}: with MUNGE auth / without: {statistics.median(ratios):.2f}x "
              f"(per run {' '.join(f'{x:.2f}' for x in ratios)})")
    extra = [r["paths"]["service_mpi_ping"]["median_us"] - r["paths"]["raw_mpi"]["median_us"] for r in runs]
    print(f"mpi: service ping overhead over raw {statistics.median(extra):.1f} us "
          f"(per run {' '.join(f'{x:.1f}' for x in extra)})")
    for name, row in table["node_start"].items():
        print(f"node start {name:<24} median {row['median_ms']:.1f} ms, max {row['max_ms']:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=50, help="interleaved blocks per run (ZeroMQ paths)")
    parser.add_argument("--mpi-rounds", type=int, default=2, help="raw/service alternations per run (MPI)")
    parser.add_argument("--opens", type=int, default=200, help="session opens timed per service per run")
    parser.add_argument("--json", default=None)
    parser.add_argument("--table-from", default=None, help="print the table of an earlier --json file")
    parser.add_argument("--mpi-client", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mpi_client:
        from mpi4py import MPI

        try:
            print(json.dumps(service_loop(args.mpi_client, args.steps)))
        except BaseException:
            import traceback

            traceback.print_exc()
            MPI.COMM_WORLD.Abort(1)
        return
    if args.table_from:
        report(json.loads(Path(args.table_from).read_text()))
        return
    results: dict = {"steps": args.steps, "cores": os.cpu_count(), "rounds": args.rounds,
                     "mpi_rounds": args.mpi_rounds, "opens": args.opens, "runs": []}
    from hcqw.environment import MUNGE_SOCKET
    from tests.support.munge import PrivateMunged

    munge_dir = Path(tempfile.mkdtemp(prefix="hcqw-bench-munge-"))
    munged = PrivateMunged(munge_dir)
    os.environ[MUNGE_SOCKET] = str(munged.socket)  # services and clients (also under mpiexec) inherit it
    try:
        for _ in range(args.runs):
            results["runs"].append(one_run(args.steps, args.rounds, args.mpi_rounds, args.opens))
            if args.json:  # keep what is done if a later run is interrupted
                Path(args.json).write_text(json.dumps(results, indent=1))
    finally:
        munged.stop()
        shutil.rmtree(munge_dir, ignore_errors=True)
    results["median_of_runs"] = median_of_runs(results["runs"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    report(results)


if __name__ == "__main__":
    main()
