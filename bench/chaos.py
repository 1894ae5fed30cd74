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

With ``--lab-services`` the gateways relay to the lab's own resident service of the qpu host they
run on (``ipc://<lab root>/hosts/%n/qpu/qpu.ipc``, the multi-host lab) instead of one the harness runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hcqw.checkpoint import load_checkpoint  # noqa: E402
from hcqw.errors import HcqwError  # noqa: E402
from hcqw.hetjob.chain import ChainFailed, final_state, follow_chain, run_chain, submit_chain  # noqa: E402
from hcqw.hetjob.jobs import NodeJobSettings  # noqa: E402
from hcqw.lab.cluster import LabCluster  # noqa: E402
from hcqw.lab.resident import daemon_name as resident_daemon_name  # noqa: E402
from hcqw.paths import GATEWAY_ADDRESS, job_prefix  # noqa: E402
from hcqw.slurm import open_backend  # noqa: E402

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
        pid = _srun_pid(jobdir) if kind == "srun" else _pid_of(jobdir / f"{kind}.pid", jobdir)
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
        import subprocess

        self._subprocess = subprocess
        self.home = home
        self.address = f"ipc://{home}/qpu.ipc"
        self.proc = None
        self.start()

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "address").unlink(missing_ok=True)
        self.proc = self._subprocess.Popen(
            [sys.executable, "-m", "hcqw.cli.device", "serve", "--address", self.address, "--address-file",
             str(self.home / "address"), "--log", str(self.home / "metrics.jsonl")],
            stdout=self._subprocess.DEVNULL, stderr=(self.home / "service.err").open("a"), start_new_session=True)
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
    job = jobdir.name.split(".")[1]
    qpu = backend.status([job], force=True)[job].component(1)
    return qpu.nodelist if qpu is not None else None


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
    kinds = KINDS + (("resident",) if resident else ()) + (("slurmd",) if args.lab_services else ())
    if args.kinds:
        unknown = set(args.kinds) - set(kinds)
        if unknown:
            raise SystemExit(f"--kinds: {', '.join(sorted(unknown))} not possible here (choose from {', '.join(kinds)}; "
                             "'resident' needs --device-service or --lab-services, 'slurmd' --lab-services)")
        kinds = tuple(k for k in kinds if k in args.kinds)
    try:
        reference = final_state(run_chain(backend, LOOP, params, "chaos-reference", out / "runs", settings,
                                          timeout=600))
        log.info("reference energies: %s", reference.energies)
        outcomes: list[Outcome] = []
        attempt = 0
        while len(outcomes) < args.faults:
            i, attempt = len(outcomes), attempt + 1
            kind = rng.choice(kinds)
            node = f"q{rng.randint(1, args.iterations):04d}"
            workflow = f"chaos-{args.seed}-{attempt:03d}"
            chain = submit_chain(backend, LOOP, params, workflow, out / "runs", settings)
            jobdir = _wait(lambda: _block_open(chain.run_dir, node), 600, f"{workflow}/{node} to hold the device")
            time.sleep(rng.uniform(0, args.delay))
            faulted_at = time.time()
            qpu_host = _qpu_host(backend, jobdir) if kind in ("resident", "slurmd") else None
            if not inject(kind, lab, jobdir, rng, resident, qpu_host):
                log.info("%s/%s: its block was over before the %s fault; not counted", workflow, node, kind)
                follow_chain(backend, chain, timeout=900)
                continue
            log.info("round %d: %s of %s/%s", i, kind, workflow, node)
            reruns = 0
            while True:
                try:
                    follow_chain(backend, chain, timeout=900)
                    break
                except ChainFailed as failed:
                    log.info("round %d: %s", i, str(failed).splitlines()[0])
                    if resident:
                        resident.ensure()
                    if args.lab_services:
                        lab.up()
                    reruns += 1
                    if reruns > 3:
                        raise
                    chain = submit_chain(backend, LOOP, params, workflow, out / "runs", settings)
            faulted_job = jobdir.name.split(".")[1]  # job directories are <node>.<job id>[.r<restart>]
            held = None
            if kind != "slurmctld":
                qpu = backend.status([faulted_job], force=True)[faulted_job].component(1)
                if qpu is not None and qpu.end_time is not None:
                    held = max(0.0, qpu.end_time.timestamp() - faulted_at)
            if resident:
                resident.ensure()
            if kind == "slurmd":
                lab.up()  # the killed slurmd (the lab waits for its node to be ready again)
            outcomes.append(Outcome(i, kind, node, held, _corrupt_checkpoints(chain.run_dir, workflow), reruns,
                                    final_state(chain).energies == reference.energies))
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
    parser.add_argument("--out", default="bench-runs/chaos")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    outcomes = run(args)
    beyond = sum(max(0.0, o.held_after_s - HELD_GOAL_S) for o in outcomes if o.held_after_s is not None)
    corrupt = sum(o.corrupt for o in outcomes)
    same = sum(o.same_energies for o in outcomes)
    print(f"{len(outcomes)} faults (seed {args.seed}): QPU-seconds held beyond {HELD_GOAL_S:g} s after a fault "
          f"{beyond:.0f}; corrupt checkpoints {corrupt}; final energies identical {same}/{len(outcomes)}")
    return 0 if beyond == 0 and corrupt == 0 and same == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
