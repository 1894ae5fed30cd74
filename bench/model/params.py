"""What the model needs to know: SLURM's and hcqw's timings (``Timings``, calibrated on lab cells) and
the workload and submission form being modelled (``Workload``).

Every timing is a number of seconds measured on the lab (``bench/model/calibration.json`` names the
BENCHMARKS.md cells each one comes from). Times that grow with the machine's load (a job's Python
start, imports, checkpoint load) are ``base + per_load * load``, ``load`` being the 1-minute load
average the cell ran at: the lab's "hosts" share the machine's two cores. Part of a start-up may be
CPU work (``Loaded.cpu``) shared with the run's own classical blocks, which the load figure leaves out.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

CALIBRATION = Path(__file__).with_name("calibration.json")

MODES = ("monolithic", "split-resident", "fused", "staged", "staged-fused")


@dataclass(frozen=True)
class Loaded:
    """A start-up: ``base + per_load * load`` seconds of waiting, then ``cpu`` seconds of work (Python's start,
    imports, a checkpoint's load) on the cores the run's classical blocks share, so that a run's own work
    slows its start-ups (and they slow its classical blocks) as on the lab's two cores."""

    base: float
    per_load: float = 0.0
    cpu: float = 0.0
    # The share of the ``per_load * load`` wait that every start-up waits (the run's level); only the rest is
    # drawn per start-up. slurmctld's millisecond log (``bench.model.startups``): within a run, start-ups mostly
    # vary by much less than an exponential of the whole wait.
    steady: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.steady <= 1.0:
            raise ValueError(f"a start-up's steady share must be between 0 and 1 (of its load-driven wait), "
                             f"got {self.steady}; fix the calibration file's timing")


@dataclass(frozen=True)
class Timings:
    """SLURM's and hcqw's per-job timings (seconds)."""

    # SLURM: hetjobs start only on a backfill tick (bf_interval); plain jobs on the main scheduler's
    # event-driven pass, ``main_start`` after their dependency ended (platform facts).
    tick_period: float = 1.0
    main_start: float = 0.16
    # A quantum node: from its qpu allocation to its first batch queued at the device (component 0's
    # Python start and imports, checkpoint load, the relay's start and the session's opening).
    node_startup: Loaded = Loaded(0.35, 0.0)
    # From a node's last exec to its qpu component's end (session close, scancel of component 1):
    # the device's slot is free for SLURM from then on.
    release: float = 0.15
    # From a node's last exec to its hetjob's end (the leader's exit; the classical job's dependency).
    quantum_end: float = 0.25
    # A plain (classical or init) job: from its start to its work's start (Python, imports, checkpoint).
    job_startup: Loaded = Loaded(0.3, 0.0)
    # From a job's work end to the job's end in SLURM (checkpoint write, exit, epilog).
    job_end: float = 0.1
    # The init job's own work (the first checkpoint).
    init_work: float = 0.2
    # Fused: from the qpu component's release to the classical step's start in component 0.
    fused_gap: float = 0.04
    # Staged: from one session's last exec to the next queued session's first exec at the service.
    switch: float = 0.02
    # Monolithic: from the hetjob's start to its first exec (the gateway and the loop's start), and
    # between a classical step and the next batch inside the job.
    mono_startup: Loaded = Loaded(1.0, 0.0)
    mono_step: float = 0.03
    # Monolithic: from the last classical step's end to the job's end, when its qpu is free (slurmctld's
    # log of a quiet run: 0.06-0.09 s to _job_complete).
    mono_end: float = 0.25
    # A classical block's work varies, normally, by these relative standard deviations: each block on its
    # own (``classical_spread``) and all of a run's blocks together (``classical_run_spread``: the benchmark
    # calibrates its blocks at start, then the machine runs them faster or slower). Both decide an unstaged
    # job's length modulo the tick, hence the tick wait of the job after it.
    classical_spread: float = 0.0
    classical_run_spread: float = 0.0
    # Cores the classical blocks share (processor sharing); None: each has cores of its own.
    classical_cores: float | None = 2.0
    # The follower polls SLURM (``scontrol -o show job``) at most this often per workflow.
    poll_interval: float = 2.0

    @classmethod
    def from_dict(cls, raw: dict) -> "Timings":
        kwargs = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            value = raw[f.name]
            kwargs[f.name] = Loaded(**value) if isinstance(value, dict) else value
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"calibration: unknown timing(s) {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        return cls(**kwargs)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Workload:
    """K workflows of N iterations (quantum block q, classical block c) on ``qpus`` devices.

    ``mode`` is the submission form (``MODES``); ``depth`` the qpu gres per device (staging slots:
    staged modes use 1 of them, the others ask for the whole device). ``init_job`` and ``window``
    select the submission mechanism: today's main submits every node of a chain at once after an
    init job (``init_job=True, window=None``); a bounded window submits only the next ``window``
    nodes of a chain, each further one when a node ends. ``arrivals`` are the workflows' submission
    times (default: all at 0).
    """

    k: int
    n: int
    q: float
    c: float
    mode: str = "staged"
    qpus: int = 1
    depth: int = 2
    load: float = 1.0
    init_job: bool = True
    window: int | None = None
    nice_step: int = 1000
    arrivals: tuple[float, ...] | None = None
    seed: int = 0
    exec_time: float | None = None  # the device's time per block, if not q (the modelled device's 0.98 s)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.k < 1 or self.n < 1 or self.qpus < 1 or self.depth < 1:
            raise ValueError("k, n, qpus and depth must be at least 1")
        if self.mode.startswith("staged") and self.depth < 2:
            raise ValueError("staged modes need depth >= 2 (qpu gres per device)")
        if self.arrivals is not None and len(self.arrivals) != self.k:
            raise ValueError(f"arrivals: {len(self.arrivals)} times for k={self.k} workflows")

    @property
    def staged(self) -> bool:
        return self.mode.startswith("staged")

    @property
    def fused(self) -> bool:
        return self.mode in ("fused", "staged-fused")

    def with_(self, **changes) -> "Workload":
        return replace(self, **changes)


@dataclass
class Calibration:
    """The calibration file: timings plus the lab cells they reproduce (with tolerances)."""

    timings: Timings
    cells: list[dict] = field(default_factory=list)
    tolerances: dict = field(default_factory=dict)
    rpc_per: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str = CALIBRATION) -> "Calibration":
        raw = json.loads(Path(path).read_text())
        return cls(Timings.from_dict(raw["timings"]), raw.get("cells", []), raw.get("tolerances", {}),
                   raw.get("rpc_per", {}))
