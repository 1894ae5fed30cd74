"""The shared site venv (hcqw.lab.software): the checkout synced into a world-readable tree."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from hcqw.lab import software


def _git_checkout(path: Path) -> Path:
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / ".gitignore").write_text("ignored.txt\n")
    (path / "pkg").mkdir()
    (path / "pkg" / "mod.py").write_text("X = 1\n")
    (path / "run.sh").write_text("#!/bin/sh\n")
    (path / "run.sh").chmod(0o700)
    (path / "ignored.txt").write_text("secret\n")
    subprocess.run(["git", "-C", str(path), "add", "pkg/mod.py", ".gitignore"], check=True)
    return path


def test_sync_copies_tracked_and_new_files_world_readable_and_drops_removed_ones(tmp_path: Path) -> None:
    checkout = _git_checkout(tmp_path / "checkout")
    dest = tmp_path / "src"
    files = software._checkout_files(checkout)
    assert files == [".gitignore", "pkg/mod.py", "run.sh"]  # untracked but not ignored counts; ignored does not
    assert software._sync(checkout, files, dest) == 3
    assert stat.S_IMODE((dest / "pkg" / "mod.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "pkg").stat().st_mode) == 0o755
    assert software._sync(checkout, files, dest) == 0  # nothing changed, nothing copied
    (checkout / "pkg" / "mod.py").write_text("X = 2\n")
    (checkout / "run.sh").unlink()
    (dest / "pkg" / "__pycache__").mkdir()
    files = software._checkout_files(checkout)
    assert software._sync(checkout, files, dest) == 1
    assert (dest / "pkg" / "mod.py").read_text() == "X = 2\n"
    assert not (dest / "run.sh").exists() and (dest / "pkg" / "__pycache__").is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="installing for all users needs root")
def test_the_venv_is_reinstalled_only_when_pyproject_changes(tmp_path: Path, monkeypatch) -> None:
    # The install itself (a minute of pip) is what every `hcqw lab up` runs for real; here only when.
    checkout = _git_checkout(tmp_path / "checkout")
    (checkout / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    installs = []

    def install(site: software.SiteSoftware) -> None:
        installs.append(site.src)
        site.python.parent.mkdir(parents=True, exist_ok=True)
        site.python.touch()

    monkeypatch.setattr(software, "_install", install)
    site = software.ensure_site_venv(tmp_path / "site", checkout)
    software.ensure_site_venv(tmp_path / "site", checkout)
    (checkout / "pkg" / "mod.py").write_text("X = 3\n")  # code changes need no reinstall (editable)
    software.ensure_site_venv(tmp_path / "site", checkout)
    assert len(installs) == 1 and (site.src / "pkg" / "mod.py").read_text() == "X = 3\n"
    (checkout / "pyproject.toml").write_text("[project]\nname = 'x'\ndependencies = ['y']\n")
    software.ensure_site_venv(tmp_path / "site", checkout)
    assert len(installs) == 2
    assert stat.S_IMODE(site.root.stat().st_mode) == 0o755
