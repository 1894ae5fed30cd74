"""Chaos harness (issue 13): seeded random faults injected into VQE chains on a SLURM lab cluster.

Each round submits a VQE chain (``examples.vqe.pipeline``, ``--iterations`` iterations), waits until
a randomly chosen quantum node holds the device (its gateway published its address; then a random
0-``--delay`` s more), and injects one fault drawn with the seed from (a VQE block lasts about a
second: larger ``--shots`` make it longer, so that more faults land inside it):

- ``node``: SIGKILL of the node's process in component 0;
- ``gateway``: SIGKILL of its gateway on the qpu node;
- ``srun``: SIGKILL of the ``srun --het-group=1`` step launcher in component 0;
- ``resident``: SIGKILL of the resident QPU service the gateways relay to (``--device-service``
  or ``--lab-services`` only; the harness, or the lab, restarts it for the next round);
- ``slurmd``: SIGKILL of the slurmd of the qpu host the node's qpu component runs on
  (``--lab-services`` only; the lab restarts it for the next round);
- ``slurmctld``: slurmctld stopped (SIGTERM) for 3-10 s, then started again by the lab.

After the fault the chain is followed to its end; a failed chain is re-run (resuming from its last
good checkpoint) until it completes. Per fault it measures: seconds the faulted node's qpu
component stayed allocated after the fault (SLURM's whole-second EndTime), checkpoints of the run
that fail verification, and whether the final energies equal an undisturbed run's. It prints one
line per fault and the totals; goals: 0 QPU-seconds held beyond 15 s after a death, 0 corrupt
checkpoints, identical final energies in every round.

    eval "$(.venv/bin/hcqw lab env --dir /tmp/hcqw-lab)"
    .venv/bin/python bench/chaos.py --lab-dir /tmp/hcqw-lab --faults 20 --seed 1 --out bench-runs/chaos

With ``--engine snakemake`` each round is a run of README's Snakemake workflow instead
(examples/snakemake/Snakefile, ``snakemake --executor hcqw --hcqw-backend slurm``, in a directory of
its own under ``--out``/snakemake), the fault lands while one of its ``quantum`` rules holds the
device, a failed run is run again with the same ``--hcqw-workflow-id`` until it completes, and its
``vqe/energy.txt`` is compared with an undisturbed run's.

With ``--lab-services`` the gateways relay to the lab's own resident service of the qpu host they
run on (``ipc://<lab root>/hosts/%n/qpu/qpu.ipc``, the multi-host lab) instead of one the harness runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hcqw.checkpoint import load_checkpoint  # noqa: E402
from hcqw.errors import HcqwError  # noqa: E402
from hcqw.hetjob.chain import ChainFailed, final_state, follow_chain, submit_chain  # noqa: E402
from hcqw.hetjob.jobs import NodeJobSettings  # noqa: E402
from hcqw.lab.cluster import LabCluster  # noqa: E402
from hcqw.lab.resident import daemon_name as resident_daemon_name  # noqa: E402
from hcqw.paths import GATEWAY_ADDRESS, job_prefix  # noqa: E402
from hcqw.slurm import open_backend  # noqa: E402
from snakemake_executor_plugin_hcqw.resources import path_part, wildcards_part  # noqa: E402

log = logging.getLogger("chaos")
LOOP = "examples.vqe.pipeline:make_loop"
KINDS = ("node", "gateway", "srun", "slurmctld")
HELD_GOAL_S = 15.0


@dataclass
class Outcome:
    round: int
    kind: str
    node: str
    held_after_s: float | None  # qpu component allocated after the fault (None: not a death of the node's peer)
    corrupt: int
    reruns: int
    same_energies: bool


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"no {what} after {timeout:g} s")


def _block_open(run_dir: Path, node: str) -> Path | None:
    for address in job_prefix(run_dir, node).parent.glob(f"{node}.*/{GATEWAY_ADDRESS}"):
        if address.read_text().strip():
            return address.parent
    return None


def _pid_of(pid_file: Path, jobdir: Path) -> int | None:
    """The pid in ``pid_file`` if that process still runs for ``jobdir`` (never a reused pid)."""
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(jobdir).encode() in cmdline else None


def _node_pid(jobdir: Path) -> int | None:
    """The node's process in component 0: its pid file (chains), else the youngest python process running the
    job's command (Snakemake: the rule's script once it runs, else the job's own snakemake)."""
    if (jobdir / "node.pid").exists():
        return _pid_of(jobdir / "node.pid", jobdir)
    marker = f"HCQW_GATEWAY_ADDRESS_FILE={jobdir}/gateway.address".encode()
    youngest: tuple[int, int] | None = None
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or b"python" not in (proc / "cmdline").read_bytes().split(b"\0")[0]:
                continue
            if marker not in (proc / "environ").read_bytes().split(b"\0"):
                continue
            started = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[19])
        except (OSError, IndexError, ValueError):
            continue
        if youngest is None or started > youngest[0]:
            youngest = (started, int(proc.name))
    return youngest[1] if youngest else None


def _job_id(jobdir: Path) -> str:
    """The SLURM job of a job directory, ``<node>.<job id>[.r<restart>]`` (a Snakemake node name has dots)."""
    return re.search(r"\.(\d+)(?:\.r\d+)?$", jobdir.name).group(1)


def _srun_pid(jobdir: Path) -> int | None:
    """The component-0 ``srun --het-group=1`` whose gateway writes into ``jobdir``."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"srun") and any(str(jobdir).encode() in arg for arg in argv):
            return int(proc.name)
    return None


def _corrupt_checkpoints(run_dir: Path, workflow: str) -> int:
    bad = 0
    for path in sorted(run_dir.glob("*.ckpt")):
        try:
            load_checkpoint(path, workflow=workflow)
        except HcqwError as err:
            log.error("checkpoint %s fails verification: %s", path, err)
            bad += 1
    return bad


def inject(kind: str, lab: LabCluster, jobdir: Path, rng: random.Random, resident, qpu_host: str | None) -> bool:
    """Inject the fault; False if its target had already ended (the block was over: no fault)."""
    if kind in ("node", "gateway", "srun"):
        if kind == "srun":
            pid = _srun_pid(jobdir)
        else:
            pid = _node_pid(jobdir) if kind == "node" else _pid_of(jobdir / "gateway.pid", jobdir)
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True
    if kind == "resident":
        resident.kill(qpu_host)
    elif kind == "slurmd":
        pid = lab.daemon_pids()[f"slurmd-{qpu_host}"]
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
    elif kind == "slurmctld":
        pid = lab.daemon_pids()["slurmctld"]
        os.kill(pid, signal.SIGTERM)
        _wait(lambda: lab.daemon_pids()["slurmctld"] is None, 60, "slurmctld stop")
        time.sleep(rng.uniform(3, 10))
        lab.up()
    else:
        raise ValueError(kind)
    return True


class Resident:
    """A resident QPU service kept running for the gateways (``hcqw device serve``), restartable after a kill."""

    def __init__(self, home: Path):
        self.home = home
        self.address = f"ipc://{home}/qpu.ipc"
        self.proc = None
        self.start()

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "address").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hcqw.cli.device", "serve", "--address", self.address, "--address-file",
             str(self.home / "address"), "--log", str(self.home / "metrics.jsonl")],
            stdout=subprocess.DEVNULL, stderr=(self.home / "service.err").open("a"), start_new_session=True)
        _wait(lambda: (self.home / "address").exists(), 120, "the resident service")

    def kill(self, host: str | None = None) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def ensure(self) -> None:
        if self.proc.poll() is not None:
            self.start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)


class LabResidents:
    """The lab's resident QPU services, one per qpu host; a killed one (or a killed slurmd) is restarted by the lab."""

    def __init__(self, lab: LabCluster):
        self.lab = lab
        self.address = lab.layout.qpu_service_address_pattern

    def kill(self, host: str | None) -> None:
        pid = self.lab.daemon_pids()[resident_daemon_name(host)]
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def ensure(self) -> None:
        if not all(self.lab.daemon_pids().values()):
            self.lab.up()

    def stop(self) -> None:
        self.ensure()


def _qpu_host(backend, jobdir: Path) -> str | None:
    job = _job_id(jobdir)
    qpu = backend.status([job], force=True)[job].component(1)
    return qpu.nodelist if qpu is not None else None


class Chains:
    """Rounds of VQE chains (``hcqw.hetjob.chain``): the nodes are ``q0001``...; a failed chain is submitted again."""

    def __init__(self, backend, params: dict, settings: NodeJobSettings, out: Path):
        self.backend, self.params, self.settings, self.runs = backend, params, settings, out / "runs"

    def node(self, iteration: int) -> str:
        return f"q{iteration:04d}"

    def start(self, workflow: str):
        self.workflow = workflow
        self.chain = submit_chain(self.backend, LOOP, self.params, workflow, self.runs, self.settings)
        return self.chain.run_dir

    def finished(self) -> bool:
        """Follows the run to its end: False if it failed."""
        try:
            follow_chain(self.backend, self.chain, timeout=900)
            return True
        except ChainFailed as failed:
            log.info("%s: %s", self.workflow, str(failed).splitlines()[0])
            return False

    def rerun(self) -> None:
        self.start(self.workflow)

    def checkpoints(self) -> Path:
        return self.chain.run_dir

    def checkpoint_owner(self) -> str:
        return self.workflow

    def result(self):
        return final_state(self.chain).energies


class SnakemakeRuns:
    """Rounds of README's Snakemake workflow (examples/snakemake/Snakefile) with ``--executor hcqw
    --hcqw-backend slurm``, each in a directory of its own; a failed run is run again with the same
    ``--hcqw-workflow-id`` (so it adopts jobs still in SLURM) until it completes."""

    SNAKEFILE = ROOT / "examples" / "snakemake" / "Snakefile"

    def __init__(self, params: dict, settings: NodeJobSettings, out: Path):
        self.config = [f"{key}={value}" for key, value in params.items()]
        self.settings, self.runs = settings, out / "snakemake"

    def node(self, iteration: int) -> str:
        return path_part(f"quantum.{wildcards_part({'i': f'{iteration:04d}'})}")

    def start(self, workflow: str) -> Path:
        self.workflow, self.workdir = workflow, self.runs / workflow
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.rerun()
        return self.workdir / ".snakemake" / "hcqw"

    def rerun(self) -> None:
        argv = [str(Path(sys.executable).parent / "snakemake"), "--snakefile", str(self.SNAKEFILE), "--directory",
                str(self.workdir), "--executor", "hcqw", "--hcqw-backend", "slurm", "--jobs", "4",
                "--hcqw-poll-interval", "0.5", "--hcqw-workflow-id", self.workflow, "--rerun-incomplete", "--nocolor",
                "--config", *self.config]
        if self.settings.device_service:
            argv += ["--hcqw-device-service", self.settings.device_service]
        with (self.workdir / "snakemake.log").open("a") as output:
            self.proc = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)

    def finished(self) -> bool:
        if self.proc.wait(900) == 0:
            return True
        log.info("%s: snakemake exited %d (see %s)", self.workflow, self.proc.returncode, self.workdir / "snakemake.log")
        return False

    def checkpoints(self) -> Path:
        return self.workdir / "vqe" / "checkpoints"

    def checkpoint_owner(self) -> str:
        return "vqe-h2-snakemake"  # examples/snakemake/config.yaml's workflow

    def result(self):
        return (self.workdir / "vqe" / "energy.txt").read_text()


def run(args: argparse.Namespace) -> list[Outcome]:
    rng = random.Random(args.seed)
    lab = LabCluster.from_dir(Path(args.lab_dir))
    os.environ.update(lab.env)
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    backend = open_backend("slurm", env=lab.env, poll_interval=0.5)
    out = Path(args.out).absolute()
    params = {"iterations": args.iterations, "shots": args.shots, "seed": args.seed}
    if args.lab_services:
        resident = LabResidents(lab)
    else:
        resident = Resident(out / "resident") if args.device_service else None
    settings = NodeJobSettings(device_service=resident.address if resident else None, heartbeat_timeout=5.0)
    engine = SnakemakeRuns(params, settings, out) if args.engine == "snakemake" else Chains(backend, params, settings,
                                                                                             out)
    kinds = KINDS + (("resident",) if resident else ()) + (("slurmd",) if args.lab_services else ())
    if args.kinds:
        unknown = set(args.kinds) - set(kinds)
        if unknown:
            raise SystemExit(f"--kinds: {', '.join(sorted(unknown))} not possible here (choose from {', '.join(kinds)}; "
                             "'resident' needs --device-service or --lab-services, 'slurmd' --lab-services)")
        kinds = tuple(k for k in kinds if k in args.kinds)
    try:
        engine.start(f"chaos-{args.engine}-reference-{args.seed}")
        if not engine.finished():
            raise SystemExit("the undisturbed reference run failed")
        reference = engine.result()
        log.info("reference result: %s", reference)
        outcomes: list[Outcome] = []
        attempt = 0
        while len(outcomes) < args.faults:
            i, attempt = len(outcomes), attempt + 1
            kind = rng.choice(kinds)
            node = engine.node(rng.randint(1, args.iterations))
            workflow = f"chaos-{args.engine}-{args.seed}-{attempt:03d}"
            run_dir = engine.start(workflow)
            jobdir = _wait(lambda: _block_open(run_dir, node), 600, f"{workflow}/{node} to hold the device")
            time.sleep(rng.uniform(0, args.delay))
            faulted_at = time.time()
            qpu_host = _qpu_host(backend, jobdir) if kind in ("resident", "slurmd") else None
            if not inject(kind, lab, jobdir, rng, resident, qpu_host):
                log.info("%s/%s: its block was over before the %s fault; not counted", workflow, node, kind)
                engine.finished()
                continue
            log.info("round %d: %s of %s/%s", i, kind, workflow, node)
            reruns = 0
            while not engine.finished():
                if resident:
                    resident.ensure()
                if args.lab_services:
                    lab.up()
                reruns += 1
                if reruns > 3:
                    raise SystemExit(f"{workflow} still fails after {reruns - 1} re-runs")
                engine.rerun()
            faulted_job = _job_id(jobdir)
            held = None
            if kind != "slurmctld":
                qpu = backend.status([faulted_job], force=True)[faulted_job].component(1)
                if qpu is not None and qpu.end_time is not None:
                    held = max(0.0, qpu.end_time.timestamp() - faulted_at)
            if resident:
                resident.ensure()
            if kind == "slurmd":
                lab.up()  # the killed slurmd (the lab waits for its node to be ready again)
            outcomes.append(Outcome(i, kind, node, held, _corrupt_checkpoints(engine.checkpoints(),
                                                                               engine.checkpoint_owner()),
                                    reruns, engine.result() == reference))
            print(_line(outcomes[-1]), flush=True)
        return outcomes
    finally:
        if resident:
            resident.stop()


def _line(o: Outcome) -> str:
    held = "-" if o.held_after_s is None else f"{o.held_after_s:.0f}"
    return (f"round {o.round:3d}  {o.kind:9s} {o.node}  qpu held after fault {held:>3s} s  corrupt {o.corrupt}  "
            f"re-runs {o.reruns}  energies {'same' if o.same_energies else 'DIFFERENT'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab-dir", required=True, help="the lab cluster's directory (hcqw lab up --dir)")
    parser.add_argument("--faults", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--shots", type=int, default=4000)
    parser.add_argument("--delay", type=float, default=1.0, help="longest random pause between block start and fault")
    parser.add_argument("--device-service", action="store_true",
                        help="gateways relay to a resident QPU service the harness runs (adds 'resident' faults)")
    parser.add_argument("--lab-services", action="store_true",
                        help="gateways relay to the lab's resident service of their qpu host (multi-host lab; "
                             "adds 'resident' and 'slurmd' faults)")
    parser.add_argument("--kinds", type=lambda text: text.split(","), default=None,
                        help="comma-separated fault kinds to draw from (default: every kind the setup allows)")
    parser.add_argument("--engine", choices=("chain", "snakemake"), default="chain",
                        help="what runs under faults: VQE chains (hcqw.hetjob.chain) or README's Snakemake workflow "
                             "(examples/snakemake/Snakefile, --executor hcqw --hcqw-backend slurm)")
    parser.add_argument("--out", default="bench-runs/chaos")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    outcomes = run(args)
    beyond = sum(max(0.0, o.held_after_s - HELD_GOAL_S) for o in outcomes if o.held_after_s is not None)
    corrupt = sum(o.corrupt for o in outcomes)
    same = sum(o.same_energies for o in outcomes)
    print(f"{len(outcomes)} faults ({args.engine}, seed {args.seed}): QPU-seconds held beyond {HELD_GOAL_S:g} s after a fault "
          f"{beyond:.0f}; corrupt checkpoints {corrupt}; final energies identical {same}/{len(outcomes)}")
    return 0 if beyond == 0 and corrupt == 0 and same == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
