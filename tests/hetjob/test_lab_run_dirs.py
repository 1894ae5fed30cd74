"""A user's run is theirs alone, on the multi-host lab (issue 24, finding 5; issue 23, point 7).

``hcqw-bob`` prepares directories in /tmp for ``hcqw-alice``: README's Snakemake working directory
with a planted ``hcqw/`` package, a runs directory, a copy of her pipeline module. Each use is
refused with an error that names the directory and what to do, and nothing bob planted runs as
alice. From her own (private) directory, ``hcqw run mine:make_loop`` and ``hcqw slurm run`` find
her module as ``python -m`` would there, the SLURM jobs too (the directory travels checked)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from tests.support.lab_user import ALICE, BOB, run_as

pytestmark = pytest.mark.slurm

MINE = '''
from hcqw.workflow import HybridLoop


def make_loop(iterations=1):
    def quantum(state, qpu):
        import cirq

        from hcqw.device.work import WorkItem

        q = cirq.LineQubit.range(2)
        bell = cirq.Circuit(cirq.X(q[0]), cirq.CNOT(*q), cirq.measure(*q, key="m"))
        samples = qpu.run_batch([WorkItem(circuit=bell, repetitions=20, params=({},))])
        qpu.close()
        return [int(s["m"].sum()) for s in samples[0]]

    return HybridLoop(name="mine", initial_state=lambda: 0, quantum_step=quantum,
                      classical_step=lambda state, measured: state + sum(measured), iterations=iterations)
'''
#: Every shot of X;CNOT measures 11: 2 x 20 ones per iteration.
ONES_PER_ITERATION = 40


@pytest.fixture
def bobs_tmp(slurm_lab):
    """A factory of world-writable directories bob made in /tmp (removed afterwards, as bob)."""
    made: list[Path] = []

    def make(script: str = "") -> Path:
        path = Path(f"/tmp/hcqw-shared-{uuid.uuid4().hex[:8]}")
        result = slurm_lab.exec(BOB, ["sh", "-c", f"mkdir -m 777 {path} && chmod 777 {path} && cd {path} && "
                                                  f"{script or 'true'}"], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        made.append(path)
        return path

    yield make
    for path in made:
        slurm_lab.exec(BOB, ["rm", "-rf", str(path)], timeout=30)


PLANT = "mkdir hcqw && echo \"open('/tmp/' + __import__('os').environ['USER'] + '-PWNED-{tag}', 'w')\" > hcqw/__init__.py"


def her_pipeline(directory: Path) -> Path:
    """``directory`` (hers, private) with her pipeline module ``mine.py`` in it."""
    (directory / "mine.py").write_text(MINE)
    shutil.chown(directory / "mine.py", ALICE)
    return directory


def as_alice(lab, argv, cwd, timeout=300):
    return lab.exec(ALICE, argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_readmes_snakemake_command_refuses_a_directory_bob_prepared(slurm_lab, bobs_tmp):
    tag = uuid.uuid4().hex[:8]
    shared = bobs_tmp(PLANT.format(tag=tag))
    result = as_alice(slurm_lab, ["snakemake", "-s", str(slurm_lab.site.src / "examples" / "snakemake" / "Snakefile"),
                                  "-d", str(shared), "--executor", "hcqw", "--jobs", "1"], cwd=None)
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert f"Snakemake working directory {shared} is not private to {ALICE}: {shared} belongs to {BOB}" in said
    assert "-d ~/vqe-smk" in said
    assert not Path(f"/tmp/{ALICE}-PWNED-{tag}").exists()


def test_hcqw_run_finds_her_module_where_she_is_and_refuses_a_shared_directory(slurm_lab, lab_user_dir, bobs_tmp):
    mine = her_pipeline(lab_user_dir(ALICE))
    done = run_as(slurm_lab, ALICE, ["hcqw", "run", "mine:make_loop", "--param", "iterations=2", "--runs-dir",
                                     str(mine / "runs")], cwd=mine)
    assert f"final state: {2 * ONES_PER_ITERATION}\n" in done.stdout

    tag = uuid.uuid4().hex[:8]
    shared = bobs_tmp(PLANT.format(tag=tag) + f" && cat > mine.py <<'EOF'\n{MINE}\nEOF")
    refused = as_alice(slurm_lab, ["hcqw", "run", "mine:make_loop", "--runs-dir", str(mine / "runs")], cwd=shared)
    assert refused.returncode != 0
    assert (f"No module named 'mine'. mine is in the working directory {shared}, which hcqw does not import from: "
            f"{shared} belongs to {BOB}") in refused.stderr
    assert "--path DIR or PYTHONPATH" in refused.stderr
    given = as_alice(slurm_lab, ["hcqw", "run", "mine:make_loop", "--path", str(shared)], cwd=mine)
    assert given.returncode != 0 and f"module directory {shared} is not private to {ALICE}" in given.stderr
    assert not Path(f"/tmp/{ALICE}-PWNED-{tag}").exists()


def test_hcqw_slurm_run_jobs_import_her_module_from_her_directory(slurm_lab, lab_user_dir, bobs_tmp):
    mine = her_pipeline(lab_user_dir(ALICE))
    refused = as_alice(slurm_lab, ["hcqw", "slurm", "run", "mine:make_loop", "--runs-dir", str(bobs_tmp())], cwd=mine)
    assert refused.returncode != 0 and "run directory" in refused.stderr and "is not private" in refused.stderr
    assert "mkdir -m 700" in refused.stderr
    done = run_as(slurm_lab, ALICE, ["hcqw", "slurm", "run", "mine:make_loop", "--param", "iterations=1",
                                     "--runs-dir", str(mine / "runs"), "--device-service",
                                     slurm_lab.layout.qpu_service_address_pattern], cwd=mine, timeout=300)
    assert f"final state: {ONES_PER_ITERATION}\n" in done.stdout
