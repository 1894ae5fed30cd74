"""The discrete-event model (simpy): K workflows' job chains on SLURM with one or more QPUs.

What it models, as the lab runs it (bench/coschedule.py on ``hcqw lab up --staging-depth D``):

- submission: each workflow submits its chain at its arrival (an init job, then per iteration a
  quantum hetjob and a classical job, or one fused hetjob), every node ``afterok`` its predecessor
  and ``nice = iteration * nice_step``; or, with ``Workload.window``, only the next ``window``
  nodes, each further one when the follower sees a node end;
- SLURM: a hetjob starts only on a backfill tick (period ``tick_period``, a random phase per run)
  when its dependency has ended and a device has the qpu gres it asks for (1 slot staged, all
  ``depth`` slots otherwise), highest priority first (lowest nice, then submission order); a plain
  job starts ``main_start`` after its dependency ends (the main scheduler's event-driven pass);
- a quantum node: ``node_startup`` from allocation to its batch queued, the device executes one
  session at a time in queue order (``switch`` between staged sessions), the slot is freed
  ``release`` after the last exec and the job ends ``quantum_end`` after it; fused: the classical
  step follows in component 0 ``fused_gap`` after the release;
- classical blocks share ``classical_cores`` cores (processor sharing), or run each on its own; their work
  varies per block and per run (``classical_spread``, ``classical_run_spread``), which sets an unstaged
  job's length modulo the tick and so the tick wait of the job after it;
- monolithic: one hetjob per workflow holding the whole device for its loop, free ``mono_end`` after it.

It emits the same timeline events the lab's SLURM view has (``ready``, ``hold``/``session``,
``exec``, ``cpu``), so ``hcqw.timeline.analysis`` computes its figures exactly as for a lab cell, and
counts slurmctld's RPCs and job records.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass, field

import simpy

from bench.model.params import Timings, Workload
from hcqw.timeline.events import Event

MIN_JOB_AGE = 600.0  # the lab's MinJobAge: finished records stay this long (slurm.conf)
_EPS = 1e-9


@dataclass
class Outcome:
    """One simulated run: its events, slurmctld's RPCs by kind and its job records over time."""

    events: list[Event]
    rpcs: Counter
    records: list[tuple[float, int]]  # (time, +1/-1 job records)
    jobs: Counter = field(default_factory=Counter)

    def peak_records(self) -> int:
        live = peak = 0
        for _, delta in sorted(self.records, key=lambda r: (r[0], -r[1])):
            live += delta
            peak = max(peak, live)
        return peak


class ProcessorSharing:
    """``cores`` cores shared equally by the blocks running at once (a block never gets more than one)."""

    def __init__(self, env: simpy.Environment, cores: float | None):
        self.env = env
        self.cores = cores
        self.jobs: dict[int, list] = {}  # id -> [remaining work, done event]
        self.last = 0.0
        self.generation = 0
        self.ids = itertools.count()

    def _rate(self) -> float:
        if self.cores is None or not self.jobs:
            return 1.0
        return min(1.0, self.cores / len(self.jobs))

    def _advance(self) -> None:
        rate, dt = self._rate(), self.env.now - self.last
        for job in self.jobs.values():
            job[0] -= dt * rate
        self.last = self.env.now

    def _schedule(self) -> None:
        self.generation += 1
        if self.jobs:
            delay = max(0.0, min(job[0] for job in self.jobs.values()) / self._rate())
            self.env.process(self._wake(self.generation, delay))

    def _wake(self, generation: int, delay: float):
        yield self.env.timeout(delay)
        if generation != self.generation:
            return
        self._advance()
        for key in [k for k, job in self.jobs.items() if job[0] <= 1e-9]:
            self.jobs.pop(key)[1].succeed()
        self._schedule()

    def run(self, work: float):
        if self.cores is None:
            yield self.env.timeout(work)
            return
        self._advance()
        done = self.env.event()
        self.jobs[next(self.ids)] = [work, done]
        self._schedule()
        yield done


class Cluster:
    """SLURM's part: backfill ticks, qpu slots per device, the pending hetjobs' queue."""

    def __init__(self, env: simpy.Environment, t: Timings, w: Workload, rng: random.Random, outcome: Outcome):
        self.env, self.t, self.w, self.rng, self.out = env, t, w, rng, outcome
        self.phase = rng.uniform(0.0, t.tick_period)
        self.free = [w.depth] * w.qpus
        self.pending: list[tuple[tuple, int, simpy.Event]] = []  # (priority, slots, started)
        self.devices = [simpy.Resource(env, capacity=1) for _ in range(w.qpus)]
        self.last_exec_end = [0.0] * w.qpus
        self.seq = itertools.count()
        self.ticking = False

    def submit(self, kind: str, records: int) -> None:
        self.out.rpcs["submit"] += 1
        self.out.jobs[kind] += 1
        self.out.records.append((self.env.now, records))

    def finished(self, records: int) -> None:
        self.out.records.append((self.env.now + MIN_JOB_AGE, -records))

    def hetjob_start(self, nice: int, seq: int, slots: int):
        """Wait (pending, eligible) until a tick starts the hetjob; return its device."""
        started = self.env.event()
        self.pending.append(((nice, seq), slots, started))
        self.pending.sort(key=lambda p: p[0])
        if not self.ticking:
            self.ticking = True
            self.env.process(self._ticks())
        device = yield started
        return device

    def next_tick(self, now: float) -> float:
        period = self.t.tick_period
        return self.phase + math.floor((now - self.phase) / period + 1.0) * period

    def _ticks(self):
        while self.pending:
            yield self.env.timeout(self.next_tick(self.env.now) - self.env.now)
            still = []
            for priority, slots, started in self.pending:
                device = next((d for d in range(self.w.qpus) if self.free[d] >= slots), None)
                if device is None:
                    still.append((priority, slots, started))
                    continue
                self.free[device] -= slots
                started.succeed(device)
            self.pending = still
        self.ticking = False

    def release(self, device: int, slots: int) -> None:
        self.free[device] += slots


class Model:
    """One run of a workload under given timings (``run`` returns the ``Outcome``)."""

    def __init__(self, timings: Timings, workload: Workload):
        self.t, self.w = timings, workload
        self.rng = random.Random(workload.seed)
        self.env = simpy.Environment()
        self.out = Outcome([], Counter(), [])
        self.cluster = Cluster(self.env, timings, workload, self.rng, self.out)
        self.cpu = ProcessorSharing(self.env, timings.classical_cores)
        self.exec_time = workload.exec_time if workload.exec_time is not None else workload.q
        self.job_seq = itertools.count()
        self.speed = self._factor(timings.classical_run_spread)  # this run's classical blocks against c

    # -- events -------------------------------------------------------------------------------
    def event(self, kind: str, wf: str, node: str, start: float, end: float, device: str = "") -> None:
        self.out.events.append(Event(kind, wf, node, start, end, device))

    def dev(self, index: int) -> str:
        return f"q{index + 1}"

    def startup(self, loaded):
        """A job's start: ``base`` seconds plus a wait for the loaded machine's cores, ``per_load * load``
        on average, its ``steady`` share fixed and the rest exponentially distributed (what makes hand-overs'
        tails under load), then its ``cpu`` seconds of work shared with whatever else the run has on the cores."""
        extra = loaded.per_load * self.w.load
        drawn = (1.0 - loaded.steady) * extra
        yield self.env.timeout(loaded.base + loaded.steady * extra
                               + (self.rng.expovariate(1.0 / drawn) if drawn > 0 else 0.0))
        if loaded.cpu > 0:
            yield from self.cpu.run(loaded.cpu)

    def _factor(self, spread: float) -> float:
        return max(0.5, self.rng.gauss(1.0, spread)) if spread > 0 else 1.0

    def classical_work(self) -> float:
        """One classical block's work: ``c``, this run's speed, the block's own spread (never below half)."""
        return self.w.c * self.speed * self._factor(self.t.classical_spread)

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> Outcome:
        w = self.w
        arrivals = w.arrivals or (0.0,) * w.k
        for j, at in enumerate(arrivals):
            self.env.process(self.workflow(f"w{j}", at))
        self.env.run()
        return self.out

    def workflow(self, wf: str, at: float):
        yield self.env.timeout(at)
        self.event("ready", wf, "submitted", at, at)
        start = self.env.now
        if self.w.mode == "monolithic":
            yield from self.monolithic(wf)
        else:
            yield from self.chain(wf)
        # The follower polls SLURM every poll_interval while its workflow runs.
        self.out.rpcs["poll"] += math.ceil((self.env.now - start) / self.t.poll_interval)

    def chain(self, wf: str):
        """An init job (optional), then per iteration a quantum node and a classical node (or one fused)."""
        w, t, env = self.w, self.t, self.env
        nodes = (["init"] if w.init_job else []) + [
            name for i in range(1, w.n + 1) for name in ([f"q{i:04d}"] + ([] if w.fused else [f"c{i:04d}"]))]
        window = len(nodes) if w.window is None else w.window
        seqs: dict[str, int] = {}
        submitted = {name: env.event() for name in nodes}

        def submit(name: str) -> None:
            hetjob = name.startswith("q")
            self.cluster.submit("hetjob" if hetjob else "batch", 2 if hetjob else 1)
            seqs[name] = next(self.job_seq)
            submitted[name].succeed()

        def follow(name: str):  # the follower sees a node end at its next poll, then submits one more
            yield env.timeout(self.rng.uniform(0.0, t.poll_interval))
            submit(name)

        for name in nodes[:window]:
            submit(name)
        for index, name in enumerate(nodes):
            yield submitted[name]
            if name == "init":
                yield env.timeout(t.main_start)
                yield from self.startup(t.job_startup)
                yield env.timeout(t.init_work + t.job_end)
                self.cluster.finished(1)
                self.out.rpcs["complete"] += 1
                self.out.rpcs["epilog"] += 1
            elif name.startswith("q"):
                yield from self.quantum(wf, name, int(name[1:]), seqs[name])
            else:
                yield env.timeout(t.main_start)
                yield from self.startup(t.job_startup)
                begin = env.now
                yield from self.cpu.run(self.classical_work())
                self.event("cpu", wf, name, begin, env.now)
                yield env.timeout(t.job_end)
                self.cluster.finished(1)
                self.out.rpcs["complete"] += 1
                self.out.rpcs["epilog"] += 1
            if index + window < len(nodes):
                env.process(follow(nodes[index + window]))

    def quantum(self, wf: str, name: str, iteration: int, seq: int):
        w, t, env = self.w, self.t, self.env
        ready = env.now
        self.event("ready", wf, name, ready, ready)
        slots = 1 if w.staged else w.depth
        device = yield from self.cluster.hetjob_start(iteration * w.nice_step, seq, slots)
        alloc = env.now
        yield from self.startup(t.node_startup)
        with self.cluster.devices[device].request() as req:
            yield req
            if w.staged:  # the service switches sessions
                gap = self.cluster.last_exec_end[device] + t.switch - env.now
                if gap > 0:
                    yield env.timeout(gap)
            begin = env.now
            yield env.timeout(self.exec_time)
            self.event("exec", wf, name, begin, env.now, self.dev(device))
            self.cluster.last_exec_end[device] = env.now
        yield env.timeout(t.release)
        self.cluster.release(device, slots)
        self.event("session" if w.staged else "hold", wf, name, alloc, env.now, self.dev(device))
        self.out.rpcs["kill"] += 1  # scancel of the qpu component
        self.out.rpcs["step"] += 1  # srun --het-group=1: step create + complete, het alloc info
        if w.fused:
            yield env.timeout(t.fused_gap)
            begin = env.now
            yield from self.cpu.run(self.classical_work())
            self.event("cpu", wf, f"c{iteration:04d}", begin, env.now)
            yield env.timeout(t.job_end)
        else:
            yield env.timeout(max(0.0, t.quantum_end - t.release))
        self.cluster.finished(2)
        self.out.rpcs["complete"] += 1
        self.out.rpcs["epilog"] += 2

    def monolithic(self, wf: str):
        w, t, env = self.w, self.t, self.env
        self.cluster.submit("hetjob", 2)
        self.event("ready", wf, "monolithic", env.now, env.now)
        device = yield from self.cluster.hetjob_start(0, next(self.job_seq), w.depth)
        alloc = env.now
        yield from self.startup(t.mono_startup)
        for i in range(1, w.n + 1):
            begin = env.now
            yield env.timeout(self.exec_time)
            self.event("exec", wf, "monolithic", begin, env.now, self.dev(device))
            begin = env.now
            yield from self.cpu.run(self.classical_work())
            self.event("cpu", wf, f"c{i:04d}", begin, env.now)
            if i < w.n:
                yield env.timeout(t.mono_step)
        # run_monolithic holds its lease through the last classical step: the qpu is free at the job's end.
        yield env.timeout(t.mono_end)
        self.cluster.release(device, w.depth)
        self.event("hold", wf, "monolithic", alloc, env.now, self.dev(device))
        self.cluster.finished(2)
        self.out.rpcs["kill"] += 1
        self.out.rpcs["step"] += 1
        self.out.rpcs["complete"] += 1
        self.out.rpcs["epilog"] += 2


def simulate(timings: Timings, workload: Workload) -> Outcome:
    return Model(timings, workload).run()
