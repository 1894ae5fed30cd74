"""Co-scheduling benchmark (issue 7): K hybrid workflows sharing one QPU, monolithic vs split vs session.

Each workflow is a QAOA-style MaxCut loop of N iterations:

- quantum block (~q s): one batch on the device, a real qsimcirq circuit (``--qubits`` qubits,
  ``--layers`` ZZ/X layers) sampled at the centre parameters and at SPSA-style perturbations;
  the number of sweep points is calibrated at start so the block takes about q s here;
- classical block (~c s): real post-processing (cut value of every shot, mean per point), a
  least-squares gradient fit and an ascent step, plus calibrated dense linear algebra
  (symmetric eigendecompositions) standing in for heavier classical work, sized to c s.

Workflows are separate processes (like K users), sharing one ``LocalDevice`` FIFO:

- ``monolithic``: ``run_monolithic`` holds the device for the whole loop (paper 1, Fig. 2a);
- ``split``: ``run_split``, one quantum node per iteration, device freed after each block (Fig. 2b, 3);
- ``session``: ``run_split`` over ``hcqw.service.device.ServiceDevice``: each quantum node opens a session on one
  QPU service (``hcqw.service.server.Service``, loopback tcp, FIFO) started per cell, whose queue
  multiplexes the work items of all K workflows (second paper). The service runs in a thread of the
  benchmark's main process, pinned to the simulator's core like the local device.

With ``--backend slurm`` the forms are job chains and hetjobs on the cluster of ``$SLURM_CONF``:
``monolithic`` (one hetjob per workflow), ``split`` (``submit_chain`` per workflow),
``split-interleaved`` (chains submitted level by level), ``split-resident`` (as ``split``,
but each quantum node's gateway relays to one resident QPU service the benchmark keeps running
for the whole run, as an operator would on the qpu node: ``NodeJobSettings.device_service``; or to
``--device-service``, e.g. the lab's), ``fused`` (as ``split-resident``, but one hetjob per
iteration: the classical step runs in the quantum node's component 0 after its qpu component is
released, ``submit_chain(..., fused=True)``), and ``staged`` (issue 16: as ``split-resident`` on
``--device-service``, on a lab started with ``--staging-depth 2`` or more: the next quantum node
is allocated, its session open and first batch queued while the current node's block executes;
see ``staged_*`` below), and ``staged-fused`` (both: fused chains on a staged lab). On a staged lab every other mode asks for the whole device
(``--gres=qpu:<depth>``), so it runs as on an unstaged one and the modes compare side by side.
With ``--modelled`` every SLURM form's device is the ``modelled`` one (the gateways' own and the
resident service).

The core logs every event: ``ready`` (a quantum node starts to acquire), ``hold``/``exec`` (the
device) and ``cpu`` (a classical node), so waits and CPU occupancy are measured as on any run. Figures come from ``hcqw.timeline.analysis``; the run's own check asserts only
consistency (no overlapping holds, every node accounted, busy <= allocated <= makespan), never timing.

    .venv/bin/python bench/coschedule.py --quick            # CI-size, seconds
    .venv/bin/python bench/coschedule.py --out bench-runs/coschedule   # the grid of BENCHMARKS.md
"""

from __future__ import annotations

import os

# Classical blocks model one core of a classical node each; keep BLAS from spreading a block
# over both cores of a small machine (set before numpy loads, inherited by spawned workers).
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bench.view import execs_on_hosts, staged_problems  # noqa: E402
from hcqw.paths import run_metrics, slurm_output  # noqa: E402  (light: no cirq, no numpy)

log = logging.getLogger("bench.coschedule")

# Read once at import, before any thread pins itself (sched_getaffinity(0) is per thread).
_USABLE_CORES = sorted(os.sched_getaffinity(0))

MODES = ("monolithic", "split", "split-interleaved", "split-resident", "fused", "session", "staged", "staged-fused",
         "per-call", "per-call-staged", "per-call-ahead")
SLURM_ONLY = ("split-interleaved", "split-resident", "fused", "staged", "staged-fused", "per-call", "per-call-staged",
              "per-call-ahead")
# One staging slot per quantum node (or per call) on a staged lab (staged_gres).
STAGED_MODES = ("staged", "staged-fused", "per-call-staged", "per-call-ahead")
FUSED_MODES = ("fused", "staged-fused")  # one hetjob per iteration
# Issue 21: the loop unsplit, one cpu job per workflow (``hcqw slurm submit``'s driver job) whose every quantum
# step acquires the QPU with a qpu-only job of its own (``HCQW_DEVICE=per-call``, ``hcqw.hetjob.percall``): the
# whole device (per-call), or one staging slot of a staged qpu host (per-call-staged), and the next call's job
# requested as a call ends (per-call-ahead, HCQW_PER_CALL_AHEAD=1).
PER_CALL_MODES = ("per-call", "per-call-staged", "per-call-ahead")
RESIDENT_MODES = ("split-resident", "fused", *PER_CALL_MODES)  # relay to the benchmark's resident QPU service (or --device-service)


# ---------------------------------------------------------------------------------------------
# The workload: circuit, classical work, calibration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """How big the blocks are, and how long they took when measured alone on this machine."""

    qubits: int
    layers: int
    shots: int
    points: int  # sweep points per quantum block
    linalg_size: int
    linalg_reps: int  # eigendecompositions per classical block
    target_q: float
    target_c: float
    measured_q: float
    measured_c: float


def graph_edges(n: int) -> list[tuple[int, int]]:
    """A ring plus chords i -- i+n/2: a fixed 3-regular-ish MaxCut instance."""
    edges = {(i, (i + 1) % n) for i in range(n)} | {(i, i + n // 2) for i in range(n // 2)}
    return sorted((min(a, b), max(a, b)) for a, b in edges if a != b)


def build_circuit(qubits: int, layers: int):
    """QAOA ansatz for MaxCut on ``graph_edges(qubits)``; symbols g0.., b0.."""
    import cirq
    import sympy

    qs = cirq.LineQubit.range(qubits)
    gammas, betas = sympy.symbols(f"g0:{layers}"), sympy.symbols(f"b0:{layers}")
    ops = [cirq.H.on_each(*qs)]
    for layer in range(layers):
        ops += [cirq.ZZPowGate(exponent=gammas[layer]).on(qs[a], qs[b]) for a, b in graph_edges(qubits)]
        ops += [cirq.rx(betas[layer]).on(q) for q in qs]
    circuit = cirq.Circuit(ops, cirq.measure(*qs, key="m"))
    names = [s.name for s in (*gammas, *betas)]
    return circuit, names


def perturbations(seed: int, iteration: int, points: int, dims: int) -> "Any":
    """Row 0 is the centre (zeros); rows 1.. are +-0.1 steps, reproducible from (seed, iteration)."""
    import numpy as np

    rng = np.random.default_rng([seed, iteration])
    deltas = 0.1 * rng.choice([-1.0, 1.0], size=(points, dims))
    deltas[0] = 0.0
    return deltas


def classical_work(bits_per_point: list, edges: list[tuple[int, int]], deltas, params, linalg_size: int,
                   linalg_reps: int, seed: int):
    """Post-process samples into an objective and gradient, take a step, then the calibrated linear algebra."""
    import numpy as np

    a = np.array([e[0] for e in edges])
    b = np.array([e[1] for e in edges])
    means = np.array([float((bits[:, a] != bits[:, b]).sum(axis=1).mean()) for bits in bits_per_point])
    if len(means) > 2:
        gradient, *_ = np.linalg.lstsq(deltas[1:], means[1:] - means[0], rcond=None)
        params = params + 0.05 * gradient / (np.linalg.norm(gradient) + 1e-9)  # ascent: bigger cuts
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((linalg_size, linalg_size))
    sym = m + m.T
    checksum = 0.0
    for _ in range(linalg_reps):
        w = np.linalg.eigvalsh(sym)
        sym[0, 0] += 1e-3 * w[-1]  # a dependent chain, so no repetition can be skipped or cached
        checksum += w[-1]
    return params, float(means[0]), checksum


def calibrate(target_q: float, target_c: float, qubits: int, layers: int, shots: int, threads: int,
              pin: bool = True) -> dict:
    """Size the blocks to ~target_q / ~target_c seconds, measured in this (worker) process."""
    import numpy as np

    from hcqw.device.qsim import QsimBackend
    from hcqw.device.work import WorkItem

    qpu_cores, cpu_cores = core_split(pin)
    _pin(qpu_cores)
    backend = QsimBackend(threads=threads, seed=1)
    circuit, names = build_circuit(qubits, layers)
    dims = len(names)

    def quantum_block(points: int) -> tuple[float, list]:
        deltas = perturbations(0, 1, points, dims)
        sweep = [dict(zip(names, map(float, 0.3 + d))) for d in deltas]
        item = WorkItem.build(circuit, shots, sweep)
        start = time.perf_counter()
        samples = backend.execute([item])[0]
        return time.perf_counter() - start, [s["m"] for s in samples]

    quantum_block(2)  # warm-up (qsim set-up, cirq caches)
    per_point = statistics.median(quantum_block(4)[0] / 4 for _ in range(3))
    # One batch per block: a fast machine's long block is cut at the device's sweep limit (measured_q
    # then says how long it really is; --modelled resizes it anyway).
    most = backend.limits.max_sweep_points
    points = min(most, max(3, round(target_q / per_point)))
    measured_q, bits = quantum_block(points)
    points = min(most, max(3, round(points * target_q / measured_q)))  # one correction for per-batch overhead
    measured_q, bits = quantum_block(points)

    edges = graph_edges(qubits)
    deltas = perturbations(0, 1, points, dims)
    params = np.full(dims, 0.3)
    size = 96

    def classical_block(reps: int) -> float:
        start = time.perf_counter()
        classical_work(bits, edges, deltas, params, size, reps, seed=0)
        return time.perf_counter() - start

    _pin(cpu_cores)
    classical_block(2)
    base = statistics.median(classical_block(0) for _ in range(3))
    per_rep = max(1e-5, statistics.median((classical_block(20) - base) / 20 for _ in range(3)))
    reps = max(0, round((target_c - base) / per_rep))
    measured_c = classical_block(reps)
    if reps and measured_c > 0:  # one correction, as for the quantum block: the per-rep estimate is noisy under load
        reps = max(0, round(reps * target_c / measured_c))
    measured_c = statistics.median(classical_block(reps) for _ in range(2))
    _pin(set(_USABLE_CORES))  # this worker's main thread runs other tasks later
    return asdict(Calibration(qubits, layers, shots, points, size, reps, target_q, target_c, measured_q, measured_c))


def modelled_calibration(cal: dict) -> dict:
    """``cal`` with the quantum block sized for the ``modelled`` device: sweep points x (circuit overhead +
    shots x shot time) ~ target_q. The classical block stays as calibrated."""
    from hcqw.device.modelled import ModelledBackend

    model = ModelledBackend()
    per_point = model.circuit_overhead + cal["shots"] * model.shot_time
    points = max(3, round(cal["target_q"] / per_point))
    return {**cal, "points": points, "measured_q": points * per_point}


def core_split(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(QPU cores, classical cores). Pinned, the simulator gets the first usable core to itself and classical
    blocks share the rest, so the device behaves like separate hardware instead of competing with the
    classical nodes for the same cores (on a 2-core machine that competition would dominate every figure)."""
    cores = _USABLE_CORES
    if not pin or len(cores) < 2:
        return None, None
    return {cores[0]}, set(cores[1:])


def _pin(cores: set[int] | None) -> None:
    if cores:
        os.sched_setaffinity(0, cores)  # Linux: pid 0 is the calling thread only


def symbol_names(layers: int) -> list[str]:
    """``build_circuit``'s parameter names, in its order, without importing cirq."""
    return [f"g{i}" for i in range(layers)] + [f"b{i}" for i in range(layers)]


def make_loop(cal: Calibration, iterations: int, seed: int, pin: bool = True, simulate_here: bool = True,
              circuit_file: str | None = None):
    """The benchmark's ``HybridLoop`` (the core logs its ready/cpu/hold/exec events).

    With ``circuit_file`` (Cirq JSON, written by the submitter) the loop never imports cirq: a SLURM
    job would otherwise pay seconds of imports per node, which are not the workload."""
    import numpy as np

    from hcqw.workflow import HybridLoop

    names = symbol_names(cal.layers)
    circuit = None if circuit_file else build_circuit(cal.qubits, cal.layers)[0]
    edges = graph_edges(cal.qubits)
    qpu_cores, cpu_cores = core_split(pin)
    # With a local device the quantum step simulates in this thread; with a service it only sends and waits.
    step_cores = qpu_cores if simulate_here else cpu_cores

    def initial_state() -> dict:
        return {"params": np.full(len(names), 0.3), "iteration": 0, "objective": float("nan")}

    def quantum_step(state: dict, qpu) -> list:
        _pin(step_cores)
        deltas = perturbations(seed, state["iteration"] + 1, cal.points, len(names))
        sweep = [dict(zip(names, map(float, state["params"] + d))) for d in deltas]
        if circuit is None:  # Cirq JSON text passes through the lease untouched
            from hcqw.device.work import WorkItem

            text = Path(circuit_file).read_text()
            return [s["m"] for s in qpu.run_batch([WorkItem(circuit=text, repetitions=cal.shots, params=tuple(sweep))])[0]]
        return [r.measurements["m"] for r in qpu.run(circuit, cal.shots, sweep)]

    def classical_step(state: dict, bits: list) -> dict:
        _pin(cpu_cores)
        iteration = state["iteration"] + 1
        deltas = perturbations(seed, iteration, cal.points, len(names))
        params, objective, _ = classical_work(bits, edges, deltas, state["params"], cal.linalg_size,
                                              cal.linalg_reps, seed=seed + iteration)
        return {"params": params, "iteration": iteration, "objective": objective}

    return HybridLoop(name="coschedule", initial_state=initial_state, quantum_step=quantum_step,
                      classical_step=classical_step, iterations=iterations, seed=seed,
                      describe=lambda s: f"mean cut {s['objective']:.3f}")


def run_workflow(mode: str, cal: dict, iterations: int, runs_dir: str, workflow_id: str, device_dir: str,
                 start_at: float, seed: int, threads: int, pin: bool = True, service_address: str | None = None) -> dict:
    """One workflow in one worker process; everything is built before ``start_at`` so all K start together."""
    from hcqw.device import LocalDevice
    from hcqw.device.qsim import QsimBackend
    from hcqw.embedded import Workflow, run_monolithic, run_split
    from hcqw.service.device import ServiceDevice
    from hcqw.workflow import RunContext

    calibration = Calibration(**cal)
    ctx = RunContext(workflow_id, Path(runs_dir) / workflow_id)
    workflow = Workflow(make_loop(calibration, iterations, seed, pin, simulate_here=mode != "session"), ctx)
    if mode == "session":
        device = ServiceDevice(service_address)
        _warm_up(calibration, None)
    else:
        device = LocalDevice(QsimBackend(threads=threads), directory=Path(device_dir))
        _warm_up(calibration, device.backend)
    late = time.time() - start_at
    if late > 0:
        log.warning("%s started %.3f s late (warm-up took longer than the start margin)", workflow_id, late)
    time.sleep(max(0.0, -late))
    if mode == "monolithic":
        run_monolithic(workflow, device)
    else:
        run_split([workflow], device, cpu_workers=1)
    return {"workflow": workflow_id, "objective": workflow.final_state()["objective"]}


def _warm_up(cal: Calibration, backend) -> None:
    """Pay first-call costs (qsim circuit translation or the circuit's JSON encoding for a service, LAPACK
    loading, checkpoint key) before the clock starts."""
    import numpy as np

    from hcqw.checkpoint import load_key
    from hcqw.device.work import WorkItem

    load_key()
    circuit, names = build_circuit(cal.qubits, cal.layers)
    sweep = [dict(zip(names, [0.3] * len(names)))] * 2
    if backend is not None:
        bits = [s["m"] for s in backend.execute([WorkItem.build(circuit, 2, sweep)])[0]]
    else:
        from hcqw.codec import circuit_to_json
        import hcqw.service.client  # noqa: F401  (pyzmq and the protocol)

        circuit_to_json(circuit)
        bits = [np.zeros((2, cal.qubits), dtype=np.uint8)] * 2
    classical_work(bits, graph_edges(cal.qubits), np.zeros((2, len(names))), np.zeros(len(names)),
                   cal.linalg_size, 1, seed=0)


class CellService:
    """The QPU service of one session cell: ``hcqw.service.server.Service`` on a private ipc socket (the
    embedded default's: one user, no munged needed), FIFO, in a thread of this process pinned to the simulator's core; its metrics log lies in the cell, so ``hcqw report``
    on the cell directory sees its execs."""

    def __init__(self, cell_dir: Path, cal: Calibration, threads: int, pin: bool):
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._socket_dir: Path | None = None
        self.service = None
        self.metrics = run_metrics(cell_dir / "service")
        self._thread = threading.Thread(target=self._main, args=(cal, threads, pin), name="qpu-service", daemon=True)
        self._thread.start()
        if not self._ready.wait(120) or self._error is not None:
            raise RuntimeError(f"the cell's QPU service did not start: {self._error!r}")
        self.address: str = self.service.address

    def _main(self, cal: Calibration, threads: int, pin: bool) -> None:
        from hcqw.device.work import WorkItem
        from hcqw.service.server import Service, ServiceConfig

        try:
            _pin(core_split(pin)[0])
            # A short private directory of its own: an ipc path has at most 107 bytes, and --out may be deep.
            socket_dir = Path(tempfile.mkdtemp(prefix="hcqw-cell-"))
            self._socket_dir = socket_dir
            self.service = Service(ServiceConfig(address=f"ipc://{socket_dir}/qpu.ipc", simulator="qsim", threads=threads,
                                                 policy="fifo", metrics=str(self.metrics)))
            circuit, names = build_circuit(cal.qubits, cal.layers)
            # Straight on the backend, so the warm-up leaves no events in the service's log.
            self.service.dispatcher.backend.execute([WorkItem.build(circuit, 2, [dict.fromkeys(names, 0.3)] * 2)])
        except BaseException as err:  # reported by __init__
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        self.service.run(wakeup_cap=0.05)

    def stop(self) -> None:
        self.service.request_stop()
        self._thread.join(timeout=10)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# The SLURM back-end: K workflows as job chains on a real cluster (the local lab cluster)
# ---------------------------------------------------------------------------------------------

SLURM_LOOP = "bench.coschedule:slurm_loop"
SLURM_QPU_DEVICE = "slurm-qpu"  # the qpu component's allocation, from SLURM's records


def slurm_loop(cal: dict, iterations: int, seed: int, circuit_file: str, pin: bool = True) -> "Any":
    """The benchmark loop as job scripts rebuild it (``hcqw.workflow.load_loop``: import path plus JSON).
    Classical steps pin themselves to the classical cores unless ``pin`` is false; the simulator runs in the
    gateway (``pinned_qsim``) or the resident service."""
    return make_loop(Calibration(**cal), iterations, seed, pin=pin, simulate_here=False, circuit_file=circuit_file)


class ResidentService:
    """The qpu node's long-lived QPU service for ``RESIDENT_MODES`` (``hcqw device serve``, the gateways' backend)."""

    def __init__(self, out: Path, simulator: str = "bench.coschedule:pinned_qsim"):
        self.address_file = out / "resident" / "address"
        self.address_file.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **slurm_settings(sys.executable).environment}
        self.err = (out / "resident" / "service.err").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hcqw.cli.device", "serve", "--address", f"ipc://{out.absolute()}/resident/qpu.ipc",
             "--simulator", simulator, "--threads", "1", "--session-timeout", "30",
             "--log", str(out / "resident" / "metrics.jsonl"), "--address-file", str(self.address_file)],
            env=env, stderr=self.err, start_new_session=True)
        deadline = time.monotonic() + 120
        while not (self.address_file.exists() and self.address_file.read_text()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the resident QPU service did not start; see {self.err.name}")
            time.sleep(0.1)
        self.address = self.address_file.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        self.err.close()


def pinned_qsim(threads: int | None = None, seed: int | None = None, **options: Any):
    """The gateway's simulator (``--simulator bench.coschedule:pinned_qsim``): qsim on one thread, pinned to the
    simulator's core, as the embedded cells pin theirs, so the qpu node behaves like separate hardware."""
    from hcqw.device.qsim import QsimBackend

    _pin(core_split(True)[0])
    return QsimBackend(threads=1, seed=seed, **options)


def monolithic_job(params: dict, workflow: str, run_dir: str) -> None:
    """Body of the monolithic form on SLURM: one cpu+qpu hetjob runs the whole loop holding its gateway
    (its lease reseeds per iteration, so it samples as the split form does)."""
    from hcqw.embedded import Workflow, run_monolithic
    from hcqw.hetjob.device import gateway_device
    from hcqw.workflow import RunContext

    loop = slurm_loop(**params)
    run_monolithic(Workflow(loop, RunContext(workflow, Path(run_dir))), gateway_device())


def per_call_job(params: dict, workflow: str, run_dir: str) -> None:
    """Body of the per-call form: the whole loop in this one classical process (a cpu job), each quantum step
    opening the device of ``HCQW_DEVICE=per-call``: a qpu job of its own, released when the step's block ends."""
    from hcqw.embedded import Workflow, run_split
    from hcqw.qpu import current_device
    from hcqw.workflow import RunContext

    import hcqw.codec  # noqa: F401 - the first call's imports (about 1 s, numpy's), paid before asking for the QPU
    import hcqw.hetjob.device  # noqa: F401
    import hcqw.service.client  # noqa: F401

    loop = slurm_loop(**params)
    run_split([Workflow(loop, RunContext(workflow, Path(run_dir)))], current_device(), cpu_workers=1)


def submit_per_call(backend, params: dict, workflow: str, cell_dir: Path, settings, ahead: bool = False) -> str:
    """One cpu job running ``per_call_job`` as ``hcqw slurm submit`` runs a driver (``driver_request``); each call's
    qpu job asks for the cell's qpu gres and nodes and relays to ``settings.device_service``."""
    from hcqw.hetjob.percall import PerCallSettings, driver_request

    run_dir = (cell_dir / workflow).absolute()
    slurm_output(run_dir).mkdir(parents=True, exist_ok=True)
    calls = PerCallSettings(partition=settings.qpu.partition, gres=settings.qpu.gres or "qpu:1",
                            options=tuple(settings.qpu.extra), time_limit=str(settings.qpu.time_limit),
                            service=settings.device_service, call_dir=run_dir / "jobs", python=settings.python,
                            ahead=ahead)
    argv = [settings.python, "-m", "bench.coschedule", "--per-call-job", json.dumps(params), "--workflow", workflow,
            "--run-dir", str(run_dir)]
    request = driver_request(argv, workflow=workflow, run_dir=run_dir, cwd=ROOT, cpu=settings.cpu, settings=calls)
    return backend.submit(replace(request, environment={**request.environment, **settings.environment}))


def per_call_jobs(run_dir: Path) -> list[tuple[str, str]]:
    """[(quantum node, call job id)] of a per-call driver, from its run log's ``acquire`` events."""
    path = run_metrics(run_dir)
    events = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [(e["node"], str(e["job"])) for e in sorted(events, key=lambda e: e["start"]) if e.get("kind") == "acquire"]


def unused_call_jobs(workflow: str, run_dir: Path, used: set[str]) -> list[str]:
    """A per-call driver's call jobs that no call used (per-call-ahead: the job requested for a call that never
    came, cancelled at the driver's exit): SLURM charges them too. Found by their tag and directory."""
    from hcqw.slurm.commands import run_slurm

    records = [dict(f.split("=", 1) for f in line.split() if "=" in f)
               for line in run_slurm(["scontrol", "-o", "show", "job"]).stdout.splitlines()]
    return [r["JobId"] for r in records if r.get("JobName", "").startswith(f"hcqw:{workflow}:")
            and r.get("Partition") == "qpu"  # not the driver's own job
            and r.get("WorkDir", "").startswith(f"{run_dir.absolute()}/") and r["JobId"] not in used]


def slurm_settings(python: str, simulator: str = "bench.coschedule:pinned_qsim") -> "Any":
    from hcqw.hetjob.jobs import NodeJobSettings
    from hcqw.slurm import ComponentSpec

    env = {"PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return NodeJobSettings(cpu=ComponentSpec("cpu", time_limit=30), qpu=ComponentSpec("qpu", gres="qpu:1", time_limit=30),
                           python=python, simulator=simulator, environment=env)


def submit_monolithic(backend, params: dict, workflow: str, cell_dir: Path, settings) -> str:
    """One cpu+qpu hetjob running the whole loop (``monolithic_job``); returns its leader's job id."""
    import shlex

    from hcqw.hetjob.jobs import command_request

    q = shlex.quote
    command = (f"{q(settings.python)} -m bench.coschedule --monolithic-job {q(json.dumps(params))} "
               f"--workflow {workflow} --run-dir {q(str((cell_dir / workflow).absolute()))}")
    slurm_output(cell_dir / workflow).mkdir(parents=True, exist_ok=True)  # SLURM writes the job output there
    request = command_request(command, workflow=workflow, name="monolithic", workdir=cell_dir / workflow,
                              settings=settings, quantum=True)
    return backend.submit(request)


def cell_settings(python: str, device_service: str | None, qpu_nodes: str | None,
                  simulator: str = "bench.coschedule:pinned_qsim", qpu_gres: str | None = None) -> "Any":
    """``slurm_settings`` plus the cell's device (a resident service, ``%n`` = the qpu node), qpu nodes and
    qpu gres (``staged_gres``)."""
    settings = slurm_settings(python, simulator)
    if qpu_gres:
        settings = replace(settings, qpu=replace(settings.qpu, gres=qpu_gres))
    if device_service:
        settings = replace(settings, device_service=device_service)
    if qpu_nodes:  # the same workload on fewer QPUs: SLURM may only give these qpu nodes
        settings = replace(settings, qpu=replace(settings.qpu, extra=(f"--nodelist={qpu_nodes}",)))
    return settings


@functools.cache
def lab_staging_depth() -> int:
    """The qpu gres count of the qpu partition's nodes: the lab's ``--staging-depth`` (1: unstaged)."""
    from hcqw.slurm.commands import run_slurm

    counts = [int(n) for n in re.findall(r"qpu:(\d+)", run_slurm(["sinfo", "-h", "-p", "qpu", "-o", "%G"]).stdout)]
    return min(counts, default=1)


def staged_gres(mode: str) -> str | None:
    """The qpu gres a cell's quantum nodes ask for: one staging slot for ``staged``; on a staged lab the
    whole device for every other mode (nothing stages beside it, as on an unstaged lab); else the default."""
    if mode in STAGED_MODES:
        return "qpu:1"
    depth = lab_staging_depth()
    return f"qpu:{depth}" if depth > 1 else None


def staged_lab_problem(device_service: str | None) -> str | None:
    """Why mode ``staged`` cannot run on this cluster, or ``None``."""
    if not device_service:
        return ("staged relays to the resident service of each qpu host: give --device-service, e.g. the lab's "
                "ipc://LAB/hosts/%n/qpu/qpu.ipc")
    if lab_staging_depth() < 2:
        return (f"staged needs qpu hosts with two or more qpu gres (found {lab_staging_depth()}) and resident "
                "services run with --exclusive-sessions: start the lab with `hcqw lab up --staging-depth 2`")
    return None


def submit_workflow(backend, order: dict) -> list[tuple[str, str]]:
    """Submit one workflow of a cell (``order``: mode, params, workflow, cell_dir, device_service, qpu_nodes,
    nice_step, simulator); return its [(node, leader job id)]. Runs in the benchmark, or as a lab user
    (``--submit``)."""
    from hcqw.hetjob.chain import NICE_STEP, submit_chain

    settings = cell_settings(sys.executable, order.get("device_service"), order.get("qpu_nodes"),
                             order.get("simulator", "bench.coschedule:pinned_qsim"), order.get("qpu_gres"))
    cell_dir, wf = Path(order["cell_dir"]), order["workflow"]
    if order["mode"] == "monolithic":
        return [("monolithic", submit_monolithic(backend, order["params"], wf, cell_dir, settings))]
    if order["mode"] in PER_CALL_MODES:
        return [("driver", submit_per_call(backend, order["params"], wf, cell_dir, settings,
                                           ahead=order["mode"] == "per-call-ahead"))]
    nice_step = order.get("nice_step")
    # The whole chain (window=None): the benchmark waits for the jobs it was given, without a follower to
    # refill a window, and its recorded cells were measured in this form (bench/scale.py compares the two).
    chain = submit_chain(backend, SLURM_LOOP, order["params"], wf, cell_dir, settings,
                         NICE_STEP if nice_step is None else nice_step, fused=order["mode"] in FUSED_MODES,
                         window=None)
    return list(chain.jobs)


def submit_as(lab_dir: str, user: str, order: dict) -> list[tuple[str, str]]:
    """``submit_workflow`` as lab user ``user`` (``hcqw lab exec``'s way: the user's own environment, the
    site's Python and source tree), so the jobs, run directory and SLURM's accounting are the user's."""
    from hcqw.lab import LabCluster

    lab = LabCluster.from_dir(Path(lab_dir))
    result = lab.exec(user, [str(lab.site.python), "-m", "bench.coschedule", "--submit", json.dumps(order)],
                      cwd=str(lab.site.src), capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"submitting {order['workflow']} as {user} failed ({result.returncode}): "
                           f"{result.stderr.strip()[-2000:]}")
    return [tuple(pair) for pair in json.loads(result.stdout.strip().splitlines()[-1])]


def submit_interleaved(backend, params: list[dict], ids: list[str], cell_dir: Path, settings, chains: list) -> None:
    """Split chains submitted level by level (every workflow's init, then every q0001, every c0001, ...)
    instead of one whole chain after another: SLURM's age priority then follows the iterations, so a
    ready quantum node of a later-submitted workflow is not queued behind all of an earlier chain."""
    from hcqw.hetjob.chain import Chain
    from hcqw.hetjob.jobs import node_request
    from hcqw.workflow import build_dag, load_loop

    dags = []
    for j, wf in enumerate(ids):
        loop = load_loop(SLURM_LOOP, params[j])
        chains.append(Chain(wf, (cell_dir / wf).absolute(), loop))
        slurm_output(chains[-1].run_dir).mkdir(parents=True, exist_ok=True)
        dags.append(build_dag(loop))
    for level in range(len(dags[0])):
        for chain, dag in zip(chains, dags):
            node = dag[level]
            ids_by_node = dict(chain.jobs)
            request = node_request(node, loop_ref=SLURM_LOOP, params=params[ids.index(chain.workflow)],
                                   workflow=chain.workflow, run_dir=chain.run_dir, settings=settings,
                                   dependencies=tuple(ids_by_node[a] for a in node.after))
            chain.jobs.append((node.name, backend.submit(request)))


def run_slurm_cell(backend, cal: dict, mode: str, k: int, iterations: int, cell_dir: Path, rep: int,
                   timeout: float = 900.0, resident: str | None = None, users: list[str] | None = None,
                   lab_dir: str | None = None, qpu_nodes: str | None = None, nice_step: int | None = None,
                   device_service: str | None = None, simulator: str = "bench.coschedule:pinned_qsim",
                   pin: bool = True) -> dict:
    """Submit K workflows at once (split, fused: ``submit_chain`` per workflow, one after another, as K users would;
    split-interleaved: ``submit_interleaved``; monolithic: one hetjob per workflow via ``command_request``),
    follow them, then build the SLURM view: QPU holds from SLURM's records, one device per qpu node.

    With ``users`` (and ``lab_dir``), workflow j is submitted as lab user ``users[j % len(users)]``."""
    from hcqw.hetjob.records import qpu_component_times
    from hcqw.slurm import Phase
    from hcqw.timeline.analysis import consistency_problems, summarize
    from hcqw.timeline.events import Event, load_run
    from hcqw.workflow import node_parts

    cell_dir.mkdir(parents=True, exist_ok=True)
    if users:
        cell_dir.chmod(0o1777)  # every user makes its own (private) workflow directory here; root reads them
    service = (resident or device_service) if mode in RESIDENT_MODES else device_service
    qpu_gres = staged_gres(mode)
    settings = cell_settings(sys.executable, service, qpu_nodes, simulator, qpu_gres)
    ids = [f"w{j}" for j in range(k)]
    owners = {wf: users[j % len(users)] for j, wf in enumerate(ids)} if users else {}
    from hcqw.codec import circuit_to_json

    circuit_file = (cell_dir / "circuit.json").absolute()
    circuit_file.write_text(circuit_to_json(build_circuit(cal["qubits"], cal["layers"])[0]))
    circuit_file.chmod(0o644)
    params = [{"cal": cal, "iterations": iterations, "seed": 1000 * rep + j, "circuit_file": str(circuit_file),
               "pin": pin} for j in range(k)]
    jobs: dict[str, list[tuple[str, str]]] = {}  # workflow -> [(node, leader job id)] in order
    chains: list = []
    submitted = time.time()
    try:
        if mode == "split-interleaved":
            submit_interleaved(backend, params, ids, cell_dir, settings, chains)
            jobs.update({c.workflow: list(c.jobs) for c in chains})
        for j, wf in enumerate(ids if mode != "split-interleaved" else []):
            order = {"mode": mode, "params": params[j], "workflow": wf, "cell_dir": str(cell_dir.absolute()),
                     "device_service": settings.device_service, "qpu_nodes": qpu_nodes, "nice_step": nice_step,
                     "simulator": simulator, "qpu_gres": qpu_gres}
            jobs[wf] = submit_as(lab_dir, owners[wf], order) if users else submit_workflow(backend, order)
        for wf, listed in jobs.items():  # in order: a chain's jobs end one after another
            for node, job_id in listed:
                state = backend.wait(job_id, timeout=timeout)
                if state.phase is not Phase.COMPLETED:
                    failure = backend.failure(state)
                    raise RuntimeError(f"{wf}/{node} (job {job_id}) ended {state.state}: {failure}")
    except BaseException:
        for wf, listed in jobs.items():
            for _, job_id in listed:
                try:
                    backend.cancel(job_id)
                except Exception as err:  # noqa: BLE001 - best effort while failing anyway
                    log.warning("cancelling job %s: %s", job_id, err)
        raise
    states = backend.status([job_id for listed in jobs.values() for _, job_id in listed])
    logged = load_run(cell_dir)  # run logs (ready, gateway holds, cpu) and gateway logs (execs)
    view: list[Event] = [e for e in logged if e.kind not in ("hold", "ready")]
    lags: list[float] = []
    charged = 0.0  # seconds of qpu components, what SLURM charges (whole seconds)
    charged_by_wf: dict[str, float] = {}
    for wf, listed in jobs.items():
        view.append(Event("ready", wf, "submitted", submitted, submitted))  # the makespan starts at submission
        previous_end = submitted
        if mode in PER_CALL_MODES:  # the calls' own qpu jobs are the holds; the driver logs when each was ready
            calls = per_call_jobs(cell_dir / wf)
            call_states = backend.status([job_id for _, job_id in calls]) if calls else {}
            for quantum, job_id in calls:
                call = call_states[job_id].component(0)
                if call is None or call.start_time is None or call.end_time is None:
                    raise RuntimeError(f"SLURM has no times for {wf}/{quantum}'s call job {job_id}")
                start, end = call.start_time.timestamp(), call.end_time.timestamp()
                kind = "session" if mode in STAGED_MODES else "hold"  # staged calls overlap by design
                view.append(Event(kind, wf, quantum, start, end, call.nodelist or SLURM_QPU_DEVICE))
                view += [e for e in logged if e.kind == "ready" and e.workflow == wf and e.node == quantum]
                charged += end - start
                charged_by_wf[wf] = charged_by_wf.get(wf, 0.0) + end - start
                held = [e for e in logged if e.kind == "hold" and e.workflow == wf and e.node == quantum]
                if held:
                    lags.append(end - held[-1].end)
            unused = unused_call_jobs(wf, cell_dir / wf, {job_id for _, job_id in calls})
            for job_id, state in (backend.status(unused) if unused else {}).items():
                call = state.component(0)
                if call and call.start_time and call.end_time:  # started, then cancelled unused: charged
                    charged += call.end_time.timestamp() - call.start_time.timestamp()
                    charged_by_wf[wf] = charged_by_wf.get(wf, 0.0) + call.end_time.timestamp() - call.start_time.timestamp()
            continue
        for node, job_id in listed:
            state = states[job_id]
            leader = state.component(0)
            if node == "monolithic" or node.startswith("q"):
                start, end = qpu_component_times(state)
                if start is None or end is None:
                    raise RuntimeError(f"SLURM has no qpu component times for {wf}/{node} (job {job_id})")
                quantum = node_parts(node)[0]  # a fused job's quantum part logs as the split form's node
                view.append(Event("ready", wf, quantum, previous_end, previous_end))  # its dependency was met
                qpu = state.component(1)
                # Staged allocations overlap by design: SLURM's is a session at the device, not a hold of it.
                kind = "session" if mode in STAGED_MODES else "hold"
                view.append(Event(kind, wf, quantum, start, end, (qpu.nodelist if qpu else None) or SLURM_QPU_DEVICE))
                charged += end - start
                charged_by_wf[wf] = charged_by_wf.get(wf, 0.0) + end - start
                held = [e for e in logged if e.kind == "hold" and e.workflow == wf and e.node == quantum]
                if held:
                    lags.append(end - held[-1].end)
            if leader and leader.end_time:
                previous_end = leader.end_time.timestamp()
    view = execs_on_hosts(view)
    with (cell_dir / "slurm-view.jsonl").open("w") as out:  # for `hcqw timeline CELL/slurm-view.jsonl`
        for e in sorted(view, key=lambda e: (e.start, e.end)):
            out.write(json.dumps({**e.extra, "kind": e.kind, "workflow": e.workflow, "node": e.node,
                                  "device": e.device, "start": e.start, "end": e.end}, sort_keys=True) + "\n")
    problems = consistency_problems(view, tolerance=1.0)  # SLURM's records have whole seconds
    problems += accounting_problems(view, mode, ids, iterations)
    if mode in STAGED_MODES:
        problems += staged_problems(view)
    summary = summarize(view).to_dict()
    summary["qpu_charged"] = charged
    # Per user (workflow j is users[j % len(users)]'s): SLURM's allocation seconds of their qpu jobs (whole seconds,
    # one per allocation whatever its gres count) beside the device's busy seconds for them (their execs).
    per_user: dict[str, dict[str, float]] = {}
    for wf in ids:
        mine = per_user.setdefault(owners.get(wf, "submitter"), {"charged": 0.0, "busy": 0.0})
        mine["charged"] += charged_by_wf.get(wf, 0.0)
        mine["busy"] += sum(e.end - e.start for e in view if e.kind == "exec" and e.workflow == wf)
    summary["per_user"] = per_user
    summary["release_lag_mean"] = statistics.fmean(lags) if lags else None
    summary["release_lag_max"] = max(lags) if lags else None
    log_summary = summarize(logged).to_dict()  # the run logs alone: what `hcqw report` shows for the cell
    summary["qpu_nodes_used"] = sorted({e.device for e in view if e.kind == "hold"})
    return {"summary": summary, "log_summary": log_summary, "problems": problems,
            "jobs": {wf: listed for wf, listed in jobs.items()}, "owners": owners}


# ---------------------------------------------------------------------------------------------
# Worker processes: started once, warmed up, reused by every cell
# ---------------------------------------------------------------------------------------------


def _worker_main(inbox: "mp.Queue", outbox: "mp.Queue") -> None:
    import cirq  # noqa: F401  (import cost paid once, before any timed run)
    import qsimcirq  # noqa: F401

    parent = os.getppid()
    outbox.put(("ready", True, None))
    while True:
        try:
            task = inbox.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:  # the benchmark was killed: do not linger as an orphan
                return
            continue
        if task is None:
            return
        task_id, fn, kwargs = task
        try:
            outbox.put((task_id, True, fn(**kwargs)))
        except BaseException:  # report every failure to the parent, which decides
            outbox.put((task_id, False, traceback.format_exc()))


class Workers:
    """K long-lived spawn workers; ``run`` gives task i to worker i, so K tasks really run at once."""

    def __init__(self, count: int):
        ctx = mp.get_context("spawn")  # no fork after OpenMP/BLAS threads exist in the parent
        self.outbox: mp.Queue = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(count)]
        self.procs = [ctx.Process(target=_worker_main, args=(box, self.outbox), daemon=True) for box in self.inboxes]
        for proc in self.procs:
            proc.start()
        for _ in self.procs:
            self._get(timeout=120)

    def _get(self, timeout: float | None) -> tuple:
        try:
            return self.outbox.get(timeout=timeout)
        except queue.Empty:
            dead = [p.pid for p in self.procs if not p.is_alive()]
            if dead:
                raise RuntimeError(f"benchmark worker(s) {dead} died") from None
            raise

    def run(self, fn: Callable, kwargs_list: list[dict], on_wait: Callable[[], None] | None = None,
            poll: float = 5.0) -> list:
        for index, kwargs in enumerate(kwargs_list):
            self.inboxes[index].put((index, fn, kwargs))
        results: list = [None] * len(kwargs_list)
        errors = []
        for _ in kwargs_list:
            while True:
                try:
                    task_id, ok, value = self._get(timeout=poll)
                    break
                except queue.Empty:
                    if on_wait:
                        on_wait()
            if ok:
                results[task_id] = value
            else:
                errors.append(value)
        if errors:
            raise RuntimeError("benchmark task(s) failed:\n" + "\n".join(errors))
        return results

    def close(self) -> None:
        for box in self.inboxes:
            box.put(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


# ---------------------------------------------------------------------------------------------
# Cells, checks, aggregation
# ---------------------------------------------------------------------------------------------


def accounting_problems(events: list, mode: str, workflows: list[str], iterations: int) -> list[str]:
    """Every node of every workflow has exactly the events its mode implies."""
    problems = []
    for wf in workflows:
        mine = [e for e in events if e.workflow == wf and e.node != "submitted"]
        kinds = lambda kind: sorted(e.node for e in mine if e.kind == kind)  # noqa: E731
        cpu_expected = [f"c{i:04d}" for i in range(1, iterations + 1)]
        quantum = [f"q{i:04d}" for i in range(1, iterations + 1)]
        if mode.startswith("split") or mode == "fused" or mode == "per-call":  # fused logs as split does
            expected = {"hold": quantum, "exec": quantum, "ready": quantum, "cpu": cpu_expected}
        elif mode in STAGED_MODES:  # SLURM's qpu allocations are sessions (staged_problems checks the device)
            expected = {"hold": [], "session": quantum, "exec": quantum, "ready": quantum, "cpu": cpu_expected}
        elif mode == "session":  # each session is logged twice: by the client (run log) and by the service
            expected = {"hold": [], "exec": quantum, "ready": quantum, "cpu": cpu_expected,
                        "session": sorted(quantum * 2)}
        else:
            expected = {"hold": ["monolithic"], "exec": ["monolithic"] * iterations, "ready": ["monolithic"],
                        "cpu": cpu_expected}
        for kind, nodes in expected.items():
            if kinds(kind) != nodes:
                problems.append(f"{wf}: {kind} events for {kinds(kind)}, expected {nodes}")
    return problems


def run_cell(workers: Workers, cal: dict, mode: str, k: int, iterations: int, cell_dir: Path, rep: int,
             threads: int, pin: bool) -> dict:
    from hcqw.timeline.analysis import consistency_problems, summarize
    from hcqw.timeline.events import load_run
    from hcqw.timeline.progress import progress_line

    cell_dir.mkdir(parents=True, exist_ok=True)
    device_dir = cell_dir / "device"
    ids = [f"w{j}" for j in range(k)]
    service = CellService(cell_dir, Calibration(**cal), threads, pin) if mode == "session" else None
    try:
        start_at = time.time() + 1.0 + 0.1 * k  # margin for every worker's warm-up
        kwargs = [dict(mode=mode, cal=cal, iterations=iterations, runs_dir=str(cell_dir), workflow_id=wf,
                       device_dir=str(device_dir), start_at=start_at, seed=1000 * rep + j, threads=threads, pin=pin,
                       service_address=service.address if service else None)
                  for j, wf in enumerate(ids)]
        on_wait = lambda: log.info("  %s k=%d: %s", mode, k, progress_line(  # noqa: E731
            [cell_dir / wf for wf in ids], k * iterations, None if service else device_dir))
        workers.run(run_workflow, kwargs, on_wait=on_wait)
    finally:
        if service:
            service.stop()
    events = load_run(cell_dir)
    problems = consistency_problems(events) + accounting_problems(events, mode, ids, iterations)
    summary = summarize(events)
    return {"summary": summary.to_dict(), "problems": problems}


def parse_ratio(text: str) -> tuple[int, int]:
    q, _, c = text.partition(":")
    return int(q), int(c)


def median_of(cells: list[dict], get: Callable[[dict], float | None]) -> float | None:
    values = [v for v in (get(c["summary"]) for c in cells) if v is not None]
    return statistics.median(values) if values else None


def charge_per_busy(cells: list[dict]) -> dict[str, float] | None:
    """Per user: SLURM's qpu allocation seconds over the device's busy seconds for them (median over cells)."""
    users = sorted({user for c in cells for user in c["summary"].get("per_user", {})})
    ratios = {user: [c["summary"]["per_user"][user]["charged"] / c["summary"]["per_user"][user]["busy"] for c in cells
                     if c["summary"].get("per_user", {}).get(user, {}).get("busy")] for user in users}
    return {user: statistics.median(values) for user, values in ratios.items() if values} or None


def aggregate(results: list[dict]) -> list[dict]:
    """One row per (ratio, K, mode): medians over repetitions."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["ratio"], r["k"], r["mode"]), []).append(r)
    rows = []
    for (ratio, k, mode), cells in groups.items():
        blocks = k * cells[0]["iterations"]
        rows.append({
            "ratio": ratio, "k": k, "mode": mode, "reps": len(cells),
            "q": median_of(cells, lambda s: s["quantum_work"] / blocks),  # as run, under this load
            "c": median_of(cells, lambda s: s["classical_work"] / blocks),
            "makespan": median_of(cells, lambda s: s["makespan"]),
            "busy_fraction": median_of(cells, lambda s: s["qpu_busy_fraction"]),
            "allocated_fraction": median_of(cells, lambda s: s["qpu_allocated_fraction"]),
            "allocated_idle": median_of(cells, lambda s: s["qpu_allocated_idle"]),
            "wait_mean": median_of(cells, lambda s: s["wait_mean"]),
            "wait_max": median_of(cells, lambda s: s["wait_max"]),
            "hold_per_workflow": median_of(cells, lambda s: statistics.fmean(s["hold_per_workflow"].values())
                                           if s["hold_per_workflow"] else None),  # staged: sessions, not holds
            "bound": median_of(cells, lambda s: s["bound"]),
            "over_bound": median_of(cells, lambda s: s["makespan_over_bound"]),
            "handover_median": median_of(cells, lambda s: s["handover_median"]),
            "handover_p95": median_of(cells, lambda s: s["handover_p95"]),
            "release_lag": median_of(cells, lambda s: s.get("release_lag_mean")),  # SLURM only
            "charge_per_busy": charge_per_busy(cells),  # SLURM only
        })
    by_key = {(r["ratio"], r["k"], r["mode"]): r for r in rows}
    for row in rows:
        mono = by_key.get((row["ratio"], row["k"], "monolithic"))
        row["vs_monolithic"] = (row["makespan"] / mono["makespan"]) if mono and mono["makespan"] else None
    order = {m: i for i, m in enumerate(MODES)}
    rows.sort(key=lambda r: (-parse_ratio(r["ratio"])[1] / parse_ratio(r["ratio"])[0], r["k"], order[r["mode"]]))
    return rows


def markdown_table(rows: list[dict]) -> str:
    f = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    lag = any(r.get("release_lag") is not None for r in rows)
    charge = any(r.get("charge_per_busy") for r in rows)
    lines = ["| q:c | K | mode | q s | c s | makespan s | vs mono | QPU busy | QPU alloc | alloc-idle s | wait mean s | "
             "wait max s | hold/wf s | hand-over median / p95 s | bound s | makespan/bound |" +
             (" release lag s |" if lag else "") + (" charged/busy per user |" if charge else ""),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if lag else "") +
             ("---|" if charge else "")]
    for r in rows:
        lines.append(f"| {r['ratio']} | {r['k']} | {r['mode']} | {f(r['q'], '.2f')} | {f(r['c'], '.2f')} | "
                     f"{f(r['makespan'], '.2f')} | "
                     f"{f(r['vs_monolithic'], '.2f')} | {f(r['busy_fraction'], '.3f')} | "
                     f"{f(r['allocated_fraction'], '.3f')} | {f(r['allocated_idle'], '.2f')} | "
                     f"{f(r['wait_mean'], '.2f')} | {f(r['wait_max'], '.2f')} | {f(r['hold_per_workflow'], '.2f')} | "
                     f"{f(r['handover_median'], '.2f')} / {f(r['handover_p95'], '.2f')} | "
                     f"{f(r['bound'], '.2f')} | {f(r['over_bound'], '.2f')} |" +
                     (f" {f(r.get('release_lag'), '.2f')} |" if lag else "") +
                     (" " + ", ".join(f"{u.removeprefix('hcqw-')} {v:.2f}" for u, v in (r.get("charge_per_busy") or {}).items())
                      + " |" if charge else ""))
    return "\n".join(lines)


def goals(rows: list[dict], busy_goal: float = 0.95) -> list[str]:
    """The issue's targets for split (and session, side by side), reported, never asserted: timings depend on
    the machine's load."""
    out = []
    for mode in ("split", "split-interleaved", "split-resident", "fused", "session", *STAGED_MODES, "per-call"):
        for r in rows:
            if r["mode"] == mode and r["k"] == 4 and r["ratio"] == "1:1" and r["vs_monolithic"] is not None:
                verdict = "met" if r["vs_monolithic"] <= 0.6 else "NOT met"
                out.append(f"{mode}/monolithic makespan at K=4, q=c: {r['vs_monolithic']:.2f} "
                           f"(goal <= 0.60: {verdict})")
        mine = [r for r in rows if r["mode"] == mode]
        if mine:
            best = max(mine, key=lambda r: r["busy_fraction"] or 0)
            out.append(f"{mode} QPU busy fraction: " + ", ".join(
                f"{r['ratio']} K={r['k']}: {r['busy_fraction']:.2f}" for r in mine) +
                f" (goal >= {busy_goal:.2f}; best {best['busy_fraction']:.2f} at {best['ratio']} K={best['k']})")
            out.append(f"{mode} makespan/bound: " + ", ".join(
                f"{r['ratio']} K={r['k']}: {r['over_bound']:.2f}" for r in mine) + " (goal <= 1.15)")
    by_key = {(r["ratio"], r["k"], r["mode"]): r for r in rows}
    for r in rows:  # issue 16: what one job per iteration saves over two
        split = by_key.get((r["ratio"], r["k"], "split-resident"))
        if r["mode"] == "fused" and split and split["makespan"]:
            out.append(f"fused/split-resident makespan at {r['ratio']} K={r['k']}: "
                       f"{r['makespan'] / split['makespan']:.2f} (QPU busy {r['busy_fraction']:.2f} vs "
                       f"{split['busy_fraction']:.2f})")
    return out


def machine() -> str:
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    load = ", load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())  # others share this machine
    return f"{model}, {len(os.sched_getaffinity(0))} cores usable, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}{load}"


def retable(results_json: Path) -> int:
    """Re-aggregate stored cells (e.g. after a change to the table); no new measurements."""
    report = json.loads(results_json.read_text())
    cells = report["cells"]
    for cell in cells:  # results written before cells carried their iteration count
        cell.setdefault("iterations", report["args"]["iterations"])
    rows = aggregate(cells)
    print(markdown_table(rows))
    for line in goals(rows, busy_goal=0.80 if report.get("backend") == "slurm" else 0.95):
        print(f"goal: {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--k", default="1,2,4,8", help="workflow counts (default 1,2,4,8)")
    p.add_argument("--ratios", default="1:4,1:1,4:1", help="q:c ratios (default 1:4,1:1,4:1)")
    p.add_argument("--cycle", type=float, default=0.4, help="q + c in seconds (default 0.4)")
    p.add_argument("--iterations", type=int, default=5, help="iterations per workflow (default 5)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per cell; the table shows medians (default 3)")
    p.add_argument("--modes", default="monolithic,split,session",
                   help="subset of monolithic,split,session; with --backend slurm also split-interleaved (session "
                        "is skipped there)")
    p.add_argument("--qubits", type=int, default=16, help="circuit width (default 16)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--shots", type=int, default=200)
    p.add_argument("--qpu-threads", type=int, default=1,
                   help="qsim threads of the device (default 1: one core plays the QPU, the rest the classical nodes)")
    p.add_argument("--no-pin", action="store_true",
                   help="do not pin the simulator to one core and classical blocks to the others (slurm: the "
                        "classical blocks; a gateway's qsim keeps its core, the modelled device needs none)")
    p.add_argument("--out", type=Path, default=None, help="run directories and results (default bench-runs/coschedule-<time>)")
    p.add_argument("--quick", action="store_true", help="CI size: K=1,2, q:c 1:1, 3 iterations, 1 rep, small circuits")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--table-from", type=Path, default=None, metavar="RESULTS_JSON",
                   help="only re-render the table and goals of an earlier run's results.json")
    p.add_argument("--backend", choices=("local", "slurm"), default="local",
                   help="local: the embedded default (K worker processes, one local device); slurm: job chains on "
                        "the cluster of $SLURM_CONF (e.g. the lab cluster: eval \"$(hcqw lab env)\"); slurm runs "
                        "monolithic,split")
    p.add_argument("--q", type=float, default=None, metavar="SECONDS",
                   help="quantum block length; c follows from each q:c ratio (instead of --cycle)")
    p.add_argument("--lab-dir", default=None, metavar="DIR",
                   help="with --users: the lab cluster (hcqw lab up --dir DIR) whose users submit the workflows")
    p.add_argument("--users", default=None, metavar="USER,...",
                   help="slurm: submit workflow j as lab user USERS[j %% len(USERS)] (needs --lab-dir; run as root)")
    p.add_argument("--qpu-nodes", default=None, metavar="NODES",
                   help="slurm: restrict the qpu components to these nodes (sbatch --nodelist), e.g. one of two QPUs")
    p.add_argument("--device-service", default=None, metavar="ADDRESS",
                   help="slurm: gateways relay to this resident QPU service (%%n = the qpu node), e.g. the lab's "
                        "ipc://LAB/hosts/%%n/qpu/qpu.ipc (split-resident too, instead of a service of its own; "
                        "needed by staged)")
    p.add_argument("--modelled", action="store_true",
                   help="the device is `modelled` (hcqw.device.modelled, its $HCQW_MODELLED_* or defaults): size "
                        "the quantum block from its model instead of timing qsim")
    p.add_argument("--nice-step", type=int, default=None,
                   help="slurm split chains: nice = iteration x NICE_STEP (default hcqw's; 0 turns it off)")
    p.add_argument("--submit", default=None, help=argparse.SUPPRESS)  # submit_workflow's order, as a lab user
    p.add_argument("--monolithic-job", default=None, help=argparse.SUPPRESS)  # the SLURM monolithic job's body
    p.add_argument("--per-call-job", default=None, help=argparse.SUPPRESS)  # the per-call driver's body
    p.add_argument("--workflow", default=None, help=argparse.SUPPRESS)
    p.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.table_from:
        return retable(args.table_from)
    if args.submit:
        from hcqw.slurm import open_backend

        print(json.dumps(submit_workflow(open_backend("slurm"), json.loads(args.submit))))
        return 0
    if args.users and not args.lab_dir:
        p.error("--users needs --lab-dir (the lab whose users they are)")
    if args.monolithic_job:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        monolithic_job(json.loads(args.monolithic_job), args.workflow, args.run_dir)
        return 0
    if args.per_call_job:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        per_call_job(json.loads(args.per_call_job), args.workflow, args.run_dir)
        return 0
    slurm = args.backend == "slurm"
    if slurm and not os.environ.get("SLURM_CONF"):
        p.error("--backend slurm needs SLURM_CONF (for the lab cluster: eval \"$(hcqw lab env --dir DIR)\")")
    logging.basicConfig(level=logging.INFO if args.verbose or not args.quick else logging.WARNING,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.quick:
        args.k, args.ratios, args.cycle, args.iterations, args.reps = "1,2", "1:1", 0.1, 3, 1
        args.qubits, args.shots = 10, 50
    ks = [int(k) for k in args.k.split(",")]
    ratios = [r.strip() for r in args.ratios.split(",")]
    modes = [m.strip() for m in args.modes.split(",")]
    if unknown := set(modes) - set(MODES):
        p.error(f"unknown mode(s) {sorted(unknown)}; choose from {MODES}")
    if slurm and "session" in modes:
        modes.remove("session")  # a QPU service on SLURM is a different benchmark (the dispatch section)
    if not slurm and set(modes) & set(SLURM_ONLY):
        p.error(f"{SLURM_ONLY} only with --backend slurm (the embedded runner has no submission order)")
    out = args.out or ROOT / "bench-runs" / time.strftime("coschedule-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    machine_at_start = machine()
    log.info("machine: %s", machine_at_start)
    started = time.time()
    workers = None if slurm else Workers(max(ks))
    resident = None
    if slurm:
        from hcqw.slurm import open_backend

        backend = open_backend("slurm")
        if set(STAGED_MODES) & set(modes) and (problem := staged_lab_problem(args.device_service)):
            p.error(problem)
    results, calibrations, problems = [], {}, []
    try:
        simulator = "modelled" if args.modelled else "bench.coschedule:pinned_qsim"
        if set(RESIDENT_MODES) & set(modes) and not args.device_service:
            resident = ResidentService(out, simulator)
        for ratio in ratios:
            qn, cn = parse_ratio(ratio)
            if args.q:
                q, c = args.q, args.q * cn / qn
            else:
                q, c = args.cycle * qn / (qn + cn), args.cycle * cn / (qn + cn)
            target = dict(target_q=q, target_c=c, qubits=args.qubits, layers=args.layers, shots=args.shots,
                          threads=1 if slurm else args.qpu_threads, pin=slurm or not args.no_pin)
            # On SLURM the gateway's simulator runs as in pinned_qsim: calibrated the same way, in this process.
            cal = calibrate(**target) if slurm else workers.run(calibrate, [target])[0]
            if args.modelled:
                cal = modelled_calibration(cal)
            calibrations[ratio] = cal
            log.info("q:c %s -> quantum block %.3f s (%d points x %d shots, %d qubits), classical %.3f s (%d eigh)",
                     ratio, cal["measured_q"], cal["points"], cal["shots"], cal["qubits"], cal["measured_c"],
                     cal["linalg_reps"])
        for rep in range(args.reps):
            for ratio in ratios:
                for k in ks:
                    for mode in modes:
                        cell_dir = out / ratio.replace(":", "-") / f"k{k}" / mode / f"rep{rep}"
                        if slurm:
                            cell = run_slurm_cell(backend, calibrations[ratio], mode, k, args.iterations, cell_dir, rep,
                                                  resident=resident.address if resident else None,
                                                  device_service=args.device_service,
                                                  users=args.users.split(",") if args.users else None,
                                                  lab_dir=args.lab_dir, qpu_nodes=args.qpu_nodes,
                                                  nice_step=args.nice_step, simulator=simulator,
                                                  pin=not args.no_pin)
                        else:
                            cell = run_cell(workers, calibrations[ratio], mode, k, args.iterations, cell_dir, rep,
                                            args.qpu_threads, not args.no_pin)
                        s = cell["summary"]
                        log.info("rep %d q:c %s K=%d %-10s makespan %6.2f s  busy %.2f  alloc-idle %6.2f s  "
                                 "makespan/bound %.2f  hand-over median %s%s%s", rep, ratio, k, mode, s["makespan"],
                                 s["qpu_busy_fraction"], s["qpu_allocated_idle"], s["makespan_over_bound"] or 0,
                                 "-" if s["handover_median"] is None else f"{s['handover_median']:.2f} s",
                                 f"  release lag {s['release_lag_mean']:.2f} s" if s.get("release_lag_mean") is not None
                                 else "", "  PROBLEMS" if cell["problems"] else "")
                        problems += [f"{cell_dir}: {msg}" for msg in cell["problems"]]
                        results.append({"ratio": ratio, "k": k, "mode": mode, "rep": rep, "iterations": args.iterations,
                                        "dir": str(cell_dir), **cell})
    finally:
        if workers:
            workers.close()
        if resident:
            resident.stop()
    rows = aggregate(results)
    table = markdown_table(rows)
    report = {"machine": machine_at_start, "machine_at_end": machine(), "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "calibrations": calibrations, "rows": rows, "cells": results, "problems": problems,
              "goals": goals(rows, busy_goal=0.80 if slurm else 0.95), "backend": args.backend,
              "seconds": time.time() - started}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    (out / "table.md").write_text(table + "\n")
    print(f"machine: {report['machine']} (at start; at end: {report['machine_at_end'].rsplit('load', 1)[-1]})")
    for ratio, cal in calibrations.items():
        print(f"q:c {ratio}: quantum block {cal['measured_q']:.3f} s ({cal['points']} sweep points x {cal['shots']} "
              f"shots, {cal['qubits']} qubits, {cal['layers']} layers), classical block {cal['measured_c']:.3f} s")
    print(table)
    for line in report["goals"]:
        print(f"goal: {line}")
    print(f"results: {out / 'results.json'} ({report['seconds']:.0f} s)")
    if problems:
        print("CONSISTENCY PROBLEMS:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
