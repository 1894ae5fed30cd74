"""Run the real ``snakemake`` command line with ``--executor hcqw`` (helpers of tests/snakemake)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support import ROOT

EXAMPLE = ROOT / "examples" / "snakemake" / "Snakefile"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
TOLERANCE = 1e-2  # Hartree: the acceptance bound of the VQE examples


def snakemake_argv(workdir: Path, *extra: str, snakefile: Path = EXAMPLE) -> list[str]:
    return [SNAKEMAKE, "--snakefile", str(snakefile), "--directory", str(workdir), "--executor", "hcqw",
            "--jobs", "4", "--hcqw-poll-interval", "0.5", "--nocolor", *extra]


@dataclass
class Finished:
    returncode: int
    output: str  # stdout + stderr
    seconds: float


def run_snakemake(workdir: Path, *extra: str, snakefile: Path = EXAMPLE, timeout: float = 400,
                  env: Mapping[str, str] | None = None) -> Finished:
    started = time.monotonic()
    proc = subprocess.run(snakemake_argv(workdir, *extra, snakefile=snakefile), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env)
    return Finished(proc.returncode, proc.stdout, time.monotonic() - started)


def run_snakemake_as(lab, user: str, workdir: Path, *extra: str, snakefile: str = "examples/snakemake/Snakefile",
                     timeout: float = 400) -> Finished:
    """README's command (``snakemake -s examples/snakemake/Snakefile -d DIR --executor hcqw --jobs 4 ...``) as
    lab user ``user`` on the submit host of ``lab``, from the site's copy of the checkout."""
    started = time.monotonic()
    proc = lab.exec(user, ["snakemake", "-s", snakefile, "-d", str(workdir), "--executor", "hcqw", "--jobs", "4",
                           *extra], cwd=lab.site.src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    timeout=timeout)
    return Finished(proc.returncode, proc.stdout, time.monotonic() - started)


def read_energy(workdir: Path) -> dict[str, float]:
    """``vqe/energy.txt`` of an example run: energy, exact, error."""
    lines = (workdir / "vqe" / "energy.txt").read_text().split("\n")
    return {key: float(value) for key, value in (line.split() for line in lines if line)}


#: How many qpu rules each DIRECT workflow chains. Two did not always show turns on SLURM (a clean-clone CI run
#: saw a-a-b-b: the tests want two switches), so three, as before.
DIRECT_RULES = 3
# Both workflows run this Snakefile (``--config other=<the other's directory>``): after a barrier,
# a chain of DIRECT_RULES qpu rules that call qsimcirq directly, never open_qpu. Each stays on the device until
# the other workflow waits for it, so the FIFO alone decides who is next.
DIRECT = textwrap.dedent(f"""
    import json, os, time

    rule all:
        input: "q{DIRECT_RULES}.json"

    rule ready:
        output: "ready"
        run:
            open(output[0], "w").close()
            deadline = time.time() + 300
            while not os.path.exists(os.path.join(config["other"], "ready")) and time.time() < deadline:
                time.sleep(0.05)

    rule quantum:
        input: lambda wc: "ready" if wc.i == "1" else f"q{{int(wc.i) - 1}}.json"
        output: "q{{i}}.json"
        wildcard_constraints: i=r"\\d+"
        resources: qpu=1
        run:
            import cirq, qsimcirq
            qubits = cirq.LineQubit.range(2)
            bell = cirq.Circuit(cirq.H(qubits[0]), cirq.CNOT(*qubits), cirq.measure(*qubits, key="m"))
            simulator = qsimcirq.QSimSimulator()
            start = time.time()
            simulator.run(bell, repetitions=100)
            time.sleep(1)  # still on the device: unheld, the other workflow's rule would run meanwhile
            if os.environ.get("HCQW_DEVICE_HOLD"):  # the local device (on SLURM the queue is slurmctld's)
                # Stay on the device until the other workflow queues for it (or has finished), so the order
                # that follows is the device's FIFO, not which snakemake happened to start faster.
                from hcqw.device import LocalDevice
                other_done = os.path.join(config["other"], "q{DIRECT_RULES}.json")
                deadline = time.time() + 120
                while time.time() < deadline and not os.path.exists(other_done) and not any(
                        owner.get("workflow") != os.environ["HCQW_WORKFLOW"] for owner in LocalDevice().queue()[1:]):
                    time.sleep(0.05)
            counts = simulator.run(bell, repetitions=100).histogram(key="m")
            json.dump({{"start": start, "end": time.time(), "counts": dict(counts)}}, open(output[0], "w"))
""")

# Workflow "early" opens open_qpu, closes it, then waits for the "late" workflow's qpu rule to run.
EARLY = textwrap.dedent("""
    import json, os, time

    rule early:
        output: "early.json"
        resources: qpu=1
        run:
            import cirq
            from hcqw.qpu import open_qpu
            qubit = cirq.LineQubit(0)
            with open_qpu() as qpu:
                open("opened", "w").close()
                qpu.run(cirq.Circuit(cirq.X(qubit), cirq.measure(qubit, key="m")), repetitions=10)
                closing = time.time()  # the lease closes right after
            late = os.path.join(config["other"], "late-started")
            deadline = time.time() + 300
            while not os.path.exists(late) and time.time() < deadline:
                time.sleep(0.05)
            json.dump({"closing": closing, "saw_late": os.path.exists(late), "end": time.time()}, open(output[0], "w"))
""")

# Workflow "late": once "early" holds the device, one qpu rule that calls qsimcirq directly.
LATE = textwrap.dedent("""
    import json, os, time

    rule all:
        input: "late.json"

    rule wait_for_early:
        output: "early-opened"
        run:
            deadline = time.time() + 300
            while not os.path.exists(os.path.join(config["other"], "opened")) and time.time() < deadline:
                time.sleep(0.05)
            open(output[0], "w").close()

    rule late:
        input: "early-opened"
        output: "late.json"
        resources: qpu=1
        run:
            started = time.time()
            open("late-started", "w").close()
            import cirq, qsimcirq
            qubit = cirq.LineQubit(0)
            qsimcirq.QSimSimulator().run(cirq.Circuit(cirq.X(qubit), cirq.measure(qubit, key="m")), repetitions=10)
            json.dump({"started": started, "end": time.time()}, open(output[0], "w"))
""")


def run_side_by_side(tmp_path: Path, spawn, snakefiles: dict[str, str], other: dict[str, str],
                     extra: Callable[[str], Sequence[str]] = lambda name: ()) -> dict[str, Path]:
    """One ``snakemake --executor hcqw`` per workflow (with ``extra(name)``), all started at once; each gets
    ``other``'s directory."""
    dirs = {name: tmp_path / name for name in snakefiles}
    procs = {}
    for name, text in snakefiles.items():
        dirs[name].mkdir()
        snakefile = tmp_path / f"{name}.smk"
        snakefile.write_text(text)
        procs[name] = spawn(snakemake_argv(dirs[name], "--config", f"other={dirs[other[name]]}", *extra(name),
                                           snakefile=snakefile))
    for name, proc in procs.items():
        output = proc.communicate(timeout=400)[0]
        assert proc.returncode == 0, output
    return dirs
