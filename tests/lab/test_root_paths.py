"""Root never follows a path a user controls in ``hcqw lab up`` (issue 24, finding 4).

``hcqw-bob`` prepares the lab directory root is about to use: a world-writable directory of his
in /tmp with links in it to root's files (the attack chowned a root-owned directory to bob), or a
link of his named like the lab directory. ``lab up`` refuses before it writes anything, naming the
directory and why, and root's files keep their owner and mode. Below a lab directory that is
root's, a link planted where a directory, key or lock is expected is refused, not followed."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from hcqw.lab import LabCluster
from hcqw.lab import host
from hcqw.lab.errors import LabError
from hcqw.lab.users import USERS

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab's root paths are root's to check")
BOB = USERS[1]


@pytest.fixture
def root_files(tmp_path):
    """A directory and a key of root's (0700/0600), the targets bob's links point at."""
    tmp_path.chmod(0o755)
    victim_dir = tmp_path / "root-dir"
    victim_dir.mkdir(mode=0o700)
    victim_file = tmp_path / "root-key"
    victim_file.write_bytes(b"root's secret")
    victim_file.chmod(0o600)
    return victim_dir, victim_file


def owner_mode(path: Path) -> tuple[int, int, int]:
    info = os.lstat(path)
    return info.st_uid, info.st_gid, info.st_mode


@pytest.mark.slurm
@pytest.mark.parametrize("prepared", ["directory with links", "link"])
def test_lab_up_refuses_a_lab_directory_bob_prepared(slurm_lab, root_files, prepared):
    victim_dir, victim_file = root_files
    before = {p: owner_mode(p) for p in root_files}
    root = Path(f"/tmp/hcqw-lab-{uuid.uuid4().hex[:8]}")
    if prepared == "link":
        script = f"ln -s {victim_dir} {root}"
        said = f"{root} is a link made by {BOB}, not by root"
    else:
        script = (f"mkdir -m 777 {root} && ln -s {victim_dir} {root}/home && ln -s {victim_file} {root}/.lock && "
                  f"ln -s {victim_dir} {root}/secrets && ln -s {victim_file} {root}/lab.json")
        said = f"{root} belongs to {BOB}, not to root"
    made = slurm_lab.exec(BOB, ["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr
    try:
        with pytest.raises(LabError, match=f"lab directory {root} is not safe for root to use: {said}.*--dir"):
            LabCluster(root, port_base=slurm_lab.layout.ports.base + 50).up(timeout=30)
        assert {p: owner_mode(p) for p in root_files} == before
        assert victim_file.read_bytes() == b"root's secret" and not list(victim_dir.iterdir())
        if prepared != "link":
            assert sorted(p.name for p in root.iterdir()) == [".lock", "home", "lab.json", "secrets"]  # bob's only
    finally:
        slurm_lab.exec(BOB, ["rm", "-rf", str(root)], timeout=30)


def test_below_roots_lab_directory_planted_links_are_refused_not_followed(tmp_path, root_files):
    victim_dir, victim_file = root_files
    before = {p: owner_mode(p) for p in root_files}
    lab = tmp_path / "lab"
    host.secure_root(lab)
    (lab / "home").symlink_to(victim_dir)
    (lab / "munge.key").symlink_to(victim_file)
    (lab / ".lock").symlink_to(victim_file)
    (lab / "slurm.conf").symlink_to(victim_file)
    with pytest.raises(LabError, match="is not a directory.*not followed"):
        host.ensure_dir(lab / "home", 0o755, 65534, 65534)
    for call in (lambda: host.write_secret(lab / "munge.key", 32), lambda: host.locked(lab / ".lock").__enter__(),
                 lambda: host.write_file(lab / "slurm.conf", "x", 0o644)):
        with pytest.raises(LabError, match="symbolic link"):
            call()
    assert {p: owner_mode(p) for p in root_files} == before
    assert victim_file.read_bytes() == b"root's secret"


def test_a_lab_directory_below_a_directory_others_may_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # not sticky: anyone could rename the lab directory away and put theirs in its place
    with pytest.raises(LabError, match=f"{shared} is writable by others"):
        host.secure_root(shared / "lab")
