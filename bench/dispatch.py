"""Dispatch benchmark of the QPU service (issue 4): per-step round trip and node start.

    .venv/bin/python bench/dispatch.py [--steps 10000] [--json out.json]

Per-step round trip, median and p99 over --steps steps, same run, side by side:
- service ``ping`` (control no-op) and a trivial work item (1 qubit, 1 repetition, qsim) over
  ZeroMQ tcp, ZeroMQ ipc and MPI DPM (port file);
- baselines: raw pyzmq REQ/REP ping-pong (tcp, ipc) and a raw mpi4py intercommunicator ping-pong.
Node start: "quantum node begins" -> "first result back": cold (fresh process imports cirq and
qsimcirq and builds the simulator) vs hot (running service; fresh JSON-only client process, and a
new session from an already running process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MPIEXEC = str(BIN / "mpiexec")
TRIVIAL = ('{"cirq_type": "Circuit", "moments": [{"cirq_type": "Moment", "operations": [{"cirq_type": '
           '"GateOperation", "gate": {"cirq_type": "MeasurementGate", "num_qubits": 1, "key": "m", '
           '"invert_mask": []}, "qubits": [{"cirq_type": "LineQubit", "x": 0}]}]}]}')


def summary(us: list[float]) -> dict:
    ordered = sorted(us)
    return {"median_us": statistics.median(ordered), "p99_us": ordered[int(0.99 * (len(ordered) - 1))],
            "n": len(ordered)}


def service_loop(address: str, steps: int) -> dict:
    """Client side of the service measurements (run in-process for ZeroMQ, under mpiexec for MPI)."""
    from hcqw.device.work import WorkItem
    from hcqw.service.client import ServiceClient

    out = {}
    with ServiceClient(address, timeout=30) as client, client.session("bench", "dispatch") as qpu:
        item = [WorkItem(TRIVIAL, 1)]
        for name, step in (("ping", lambda: client.call("ping")), ("work_item", lambda: qpu.run_batch(item))):
            for _ in range(min(500, steps)):
                step()
            times = []
            for _ in range(steps):
                t0 = time.perf_counter()
                step()
                times.append((time.perf_counter() - t0) * 1e6)
            out[name] = summary(times)
    return out


def start_service(tmp: Path, address: str, mpi: bool = False) -> tuple[subprocess.Popen, str]:
    address_file = tmp / f"addr-{time.monotonic_ns()}"
    cmd = [sys.executable, "-m", "hcqw.service", "serve", "--address", address, "--threads", "1",
           "--log", str(tmp / "metrics.jsonl"), "--address-file", str(address_file)]
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


RAW_ZMQ_SERVER = """
import sys, zmq
s = zmq.Context().socket(zmq.REP); s.bind(sys.argv[1]); print(s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
while True:
    m = s.recv_multipart()
    if m == [b"stop"]: s.send(b""); break
    s.send_multipart(m)
"""


def raw_zmq(address: str, steps: int) -> dict:
    import zmq

    server = subprocess.Popen([sys.executable, "-c", RAW_ZMQ_SERVER, address], stdout=subprocess.PIPE, text=True)
    try:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.connect(server.stdout.readline().strip())
        payload = [b'{"v":1,"type":"ping","id":1}']  # the same bytes a service ping sends
        for _ in range(500):
            socket.send_multipart(payload)
            socket.recv_multipart()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            socket.send_multipart(payload)
            socket.recv_multipart()
            times.append((time.perf_counter() - t0) * 1e6)
        socket.send(b"stop")
        socket.recv()
        socket.close(0)
        return summary(times)
    finally:
        server.wait(10)


def raw_mpi(tmp: Path, steps: int) -> dict:
    port = tmp / "raw.port"
    script = str(ROOT / "bench" / "mpi_pingpong.py")
    server = subprocess.Popen([MPIEXEC, "-n", "1", sys.executable, script, "server", str(port)], start_new_session=True)
    try:
        client = subprocess.run([MPIEXEC, "-n", "1", sys.executable, script, "client", str(port), str(steps), "30",
                                 "iprobe"], capture_output=True, text=True, timeout=300, env=dict(os.environ, TL="multiple"))
        return summary(json.loads(client.stdout)["us"])
    finally:
        server.wait(30)


def mpi_service(tmp: Path, steps: int) -> dict:
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
    for name, code, args in (("cold_fresh_process", COLD, [TRIVIAL]), ("hot_fresh_process", HOT, [TRIVIAL, address])):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--json", default=None)
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

    results: dict = {"steps": args.steps, "cores": os.cpu_count(), "loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="hcqw-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for transport, address in (("zmq_tcp", "tcp://127.0.0.1:*"), ("zmq_ipc", f"ipc://{tmp}/ipc/qpu.ipc")):
            proc, bound = start_service(tmp, address)
            try:
                results[f"service_{transport}"] = service_loop(bound, args.steps)
                if transport == "zmq_tcp":
                    results["node_start"] = node_start(bound)
            finally:
                stop(proc)
        results["raw_zmq_tcp"] = raw_zmq("tcp://127.0.0.1:*", args.steps)
        results["raw_zmq_ipc"] = raw_zmq(f"ipc://{tmp}/raw.ipc", args.steps)
        results["service_mpi"] = mpi_service(tmp, args.steps)
        results["raw_mpi"] = raw_mpi(tmp, args.steps)
    results["loadavg_after"] = os.getloadavg()

    print(f"{'path':<28}{'median us':>12}{'p99 us':>12}")
    for key in ("raw_zmq_tcp", "raw_zmq_ipc", "raw_mpi"):
        print(f"{key:<28}{results[key]['median_us']:>12.1f}{results[key]['p99_us']:>12.1f}")
    for transport in ("zmq_tcp", "zmq_ipc", "mpi"):
        for kind in ("ping", "work_item"):
            row = results[f"service_{transport}"][kind]
            print(f"{'service ' + transport + ' ' + kind:<28}{row['median_us']:>12.1f}{row['p99_us']:>12.1f}")
    raw = {"zmq_tcp": "raw_zmq_tcp", "zmq_ipc": "raw_zmq_ipc", "mpi": "raw_mpi"}
    for transport, base in raw.items():
        ping = results[f"service_{transport}"]["ping"]["median_us"]
        print(f"{transport}: service ping overhead {ping - results[base]['median_us']:.1f} us, "
              f"ratio {ping / results[base]['median_us']:.2f}x of raw")
    for name, row in results["node_start"].items():
        print(f"node start {name:<24} median {row['median_ms']:.1f} ms, max {row['max_ms']:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
