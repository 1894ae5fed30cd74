"""The disk fills while a checkpoint is written: a real, small tmpfs mount runs out of space.

What users rely on: the previous checkpoint survives intact, the error names the checkpoint, says the
disk is full and how to go on, no temp file is left behind, and once space is freed a re-run resumes
to the result an undisturbed run gives.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from examples.vqe.pipeline import make_loop as make_vqe
from hcqw.checkpoint import load_checkpoint, save_checkpoint
from hcqw.device import LocalDevice
from hcqw.embedded import Workflow, run_split
from hcqw.errors import CheckpointError, WorkflowError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root (CI runs as root)")


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs: ENOSPC comes from the kernel, as on a full disk."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill ``disk`` with a file until the kernel refuses more, then give back ``leave`` bytes."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def temp_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob(".*.tmp-*")]


def test_a_checkpoint_that_does_not_fit_leaves_the_previous_one_intact_and_says_so(small_disk):
    path = small_disk / "state-0001.ckpt"
    save_checkpoint(path, {"energy": -1.0}, workflow="wf", iteration=1, producer="c0001")
    fill(small_disk)

    with pytest.raises(CheckpointError) as failed:
        save_checkpoint(path, {"energy": -2.0, "history": list(range(20000))}, workflow="wf", iteration=1,
                        producer="c0001")

    message = str(failed.value)
    assert str(path) in message and "No space left on device" in message
    assert "previous checkpoint there is unchanged" in message and "re-run to resume" in message
    assert load_checkpoint(path, workflow="wf")[0] == {"energy": -1.0}
    assert temp_files(small_disk) == []


def test_a_node_whose_checkpoint_hits_a_full_disk_fails_clearly_and_the_rerun_resumes(small_disk, tmp_path):
    reference = Workflow.create(make_vqe(iterations=3), tmp_path / "reference", "disk-full")
    run_split([reference], LocalDevice("qsim"))

    workflow = Workflow.create(make_vqe(iterations=3), small_disk / "run", "disk-full")
    # Room for the first checkpoints (a quantum one measures ~145 kB), not for all of them.
    filler = fill(small_disk, leave=200 * 1024)
    with pytest.raises(WorkflowError) as failed:
        run_split([workflow], LocalDevice("qsim"))
    assert "No space left on device" in str(failed.value) and "re-run to resume" in str(failed.value)
    written = sorted(workflow.ctx.checkpoints.glob("*.ckpt"))
    assert written, "no checkpoint fitted at all: the test's space budget is wrong"
    for path in written:
        load_checkpoint(path, workflow="disk-full")  # each one that exists verifies
    assert temp_files(small_disk) == []

    filler.unlink()
    run_split([workflow], LocalDevice("qsim"))
    assert workflow.final_state().energies == reference.final_state().energies
