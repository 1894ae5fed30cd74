"""``snakemake --executor hcqw --hcqw-backend slurm`` through a controller outage, on the lab cluster.

slurmctld is stopped for about ten seconds mid-run and started again: meanwhile a job runs on (its
status cannot be asked) and a quantum rule becomes ready (its job cannot be submitted). What users rely
on: the run finishes with the right result, each rule submitted once.
"""

from __future__ import annotations

import logging
import textwrap
import time

import pytest

from hcqw.lab.pytest_plugin import controller_down, wait_for
from hcqw.slurm.commands import run_slurm
from hcqw.slurm.parsing import parse_scontrol

from tests.support.snakemake_runs import snakemake_argv
from tests.snakemake.test_slurm import SLURM, live_jobs, run_name

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
log = logging.getLogger(__name__)
OUTAGE_S = 10.0

# A job that runs long (rule long); a quantum rule that becomes ready when config["go"] exists (after the
# local rule gate) and opens the device once config["release"] exists (missing: at once).
SNAKEFILE = textwrap.dedent("""
    import os, time

    localrules: all, gate

    def wait_for(path):
        deadline = time.time() + 300
        while path and not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.1)

    rule all:
        input: "ones.txt", "long.txt"

    rule long:
        output: "long.txt"
        shell: "sleep 25; echo done > {output}"

    rule gate:
        output: "gate"
        run:
            wait_for(config["go"])
            open(output[0], "w").close()

    rule measure:
        input: "gate"
        output: "q.txt"
        resources: qpu=1
        run:
            import cirq
            from hcqw.qpu import open_qpu
            wait_for(config.get("release"))
            qubit = cirq.LineQubit(0)
            with open_qpu(seed=1) as qpu:
                result = qpu.run(cirq.Circuit(cirq.X(qubit), cirq.measure(qubit, key="m")), repetitions=10)
            open(output[0], "w").write(str(int(result[0].measurements["m"].sum())))

    rule copy:
        input: "q.txt"
        output: "ones.txt"
        shell: "cp {input} {output}"
""")


def submitted(workflow: str) -> list[str]:
    """Names of the run's jobs SLURM has records of, one per submission (leaders only)."""
    records = parse_scontrol(run_slurm(["scontrol", "-o", "show", "job"]).stdout)
    return sorted(r.name.split(":")[-1] for r in records
                  if r.name and r.name.startswith(f"hcqw:{workflow}:") and not r.het_offset)


def test_a_run_rides_out_a_controller_restart(slurm_lab, workdir, spawn):
    snakefile = workdir / "Snakefile"
    snakefile.write_text(SNAKEFILE)
    go = workdir.parent / "go"
    name = run_name("outage")
    proc = spawn(snakemake_argv(workdir, *SLURM, "--hcqw-workflow-id", name, "--config", f"go={go}",
                                snakefile=snakefile))
    wait_for(lambda: any("RUNNING" in s for s in live_jobs(f"hcqw:{name}:long").values()), 120, "rule long to run")
    with controller_down(slurm_lab):
        go.touch()  # the quantum rule becomes ready while the controller is down
        time.sleep(OUTAGE_S)
    output = proc.communicate(timeout=300)[0]
    log.info("snakemake output:\n%s", output[-3000:])
    assert proc.returncode == 0, output
    assert (workdir / "ones.txt").read_text() == "10" and (workdir / "long.txt").read_text() == "done\n"
    assert submitted(name) == ["copy", "long", "measure"]  # each once


def test_a_rerun_while_its_jobs_still_run_adopts_them(slurm_lab, workdir, spawn):
    """snakemake is killed (SIGKILL: it cannot cancel) while its quantum rule's job runs on; the re-run with the
    same workflow id adopts that job instead of submitting the rule again."""
    snakefile = workdir / "Snakefile"
    snakefile.write_text(SNAKEFILE)
    go, release = workdir.parent / "go", workdir.parent / "release"
    go.touch()
    name = run_name("adopt")
    argv = snakemake_argv(workdir, *SLURM, "--hcqw-workflow-id", name, "--config", f"go={go}", f"release={release}",
                          snakefile=snakefile)
    first = spawn(argv)
    wait_for(lambda: any("RUNNING" in s for s in live_jobs(f"hcqw:{name}:measure").values()), 120,
             "rule measure to run")
    (job,) = live_jobs(f"hcqw:{name}:measure")
    first.kill()
    first.communicate()
    unlock = spawn([*argv, "--unlock"])
    assert unlock.wait(120) == 0, unlock.communicate()[0]

    again = spawn([*argv, "--rerun-incomplete"])
    time.sleep(5)  # the re-run starts and finds the job
    release.touch()
    output = again.communicate(timeout=300)[0]
    log.info("re-run output:\n%s", output[-3000:])
    assert again.returncode == 0, output
    assert f"adopted SLURM job {job}" in output
    assert (workdir / "ones.txt").read_text() == "10"
    assert submitted(name) == ["copy", "long", "measure"]  # the quantum rule once
