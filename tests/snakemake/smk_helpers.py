"""Run the real ``snakemake`` command line with ``--executor hcqw`` (helpers of tests/snakemake)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "snakemake" / "Snakefile"
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
