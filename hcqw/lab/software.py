"""hcqw installed where every user of the site can run it: one shared, world-readable venv.

A site installs hcqw once for all its users, outside anyone's home directory.
The lab does the same, in a software tree shared by every lab on the machine
(``$HCQW_SITE_DIR`` or ``/opt/hcqw-site``)::

    <site>/src    a copy of the checkout's files (git-tracked and untracked-but-not-ignored),
                  so jobs can import ``examples.…`` and ``tests.…`` too
    <site>/venv   a venv made from the system's Python, hcqw installed editable from src

Why not the developer's own venv: root's Python is often a build inside root's
home directory (mode 0700), so a venv made from it cannot be executed by any
other user. The venv is made from ``/usr/bin/python3`` instead.

``src`` is synced from the calling checkout at every ``ensure_site_venv()``
(cheap: only changed files are copied); the venv is (re)installed only when
``pyproject.toml`` changes (a stamp in the venv records its hash).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hcqw import environment
from hcqw.lab import host, packages
from hcqw.lab.errors import LabError

log = logging.getLogger(__name__)

DEFAULT_SITE_DIR = Path("/opt/hcqw-site")
#: The distribution's Python: installed world-executable, unlike a pyenv build in root's home.
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: The extras the venv holds: "test" is every one (lab users run Snakemake, Parsl, MPI jobs and tests).
EXTRAS = "test"
_STAMP = ".hcqw-installed"


@dataclass(frozen=True)
class SiteSoftware:
    """The shared software tree of one machine (see the module docstring)."""

    root: Path

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def hcqw(self) -> Path:
        return self.bin / "hcqw"

    @property
    def stamp(self) -> Path:
        return self.venv / _STAMP


def site_dir() -> Path:
    """``$HCQW_SITE_DIR`` or /opt/hcqw-site."""
    return Path(os.environ.get(environment.SITE_DIR) or DEFAULT_SITE_DIR)


def this_checkout() -> Path:
    """The source checkout the running hcqw was imported from."""
    return Path(__file__).resolve().parents[2]


def ensure_site_venv(root: Path | None = None, checkout: Path | None = None) -> SiteSoftware:
    """Sync ``checkout`` into ``<root>/src`` and make sure ``<root>/venv`` runs it; return the tree.

    Needs root (it writes a system-wide tree and may install python3-venv).
    Safe to call concurrently from several processes (an exclusive lock on the tree).
    """
    site = SiteSoftware(Path(root) if root is not None else site_dir())
    checkout = Path(checkout) if checkout is not None else this_checkout()
    if os.geteuid() != 0:
        raise LabError(f"installing hcqw for all users in {site.root} needs root; run as root or point "
                       "$HCQW_SITE_DIR at an existing site installation")
    files = _checkout_files(checkout)
    host.secure_root(site.root, "site software directory")
    host.ensure_dir(site.root, 0o755)
    with host.locked(site.root / ".lock"):
        copied = _sync(checkout, files, site.src)
        if copied:
            log.info("synced %d file(s) of %s into %s", copied, checkout, site.src)
        wanted = _stamp_text(site)
        if not site.python.exists() or not site.stamp.exists() or site.stamp.read_text() != wanted:
            _install(site)
            site.stamp.write_text(wanted)
    return site


def _checkout_files(checkout: Path) -> list[str]:
    """Paths (relative) of the checkout's files: tracked ones plus new ones git does not ignore."""
    result = subprocess.run(["git", "-C", str(checkout), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise LabError(f"{checkout} is not a git checkout ({result.stderr.decode(errors='replace').strip()}); the "
                       "shared site venv is built from a checkout of hcqw: run hcqw from one")
    return sorted({name for name in result.stdout.decode().split("\0") if name and (checkout / name).is_file()})


def _sync(checkout: Path, files: list[str], dest: Path) -> int:
    """Make ``dest`` hold exactly ``files`` of ``checkout`` (world-readable); return how many were copied."""
    copied = 0
    wanted = set(files)
    for name in files:
        source, target = checkout / name, dest / name
        data = source.read_bytes()
        if not target.is_file() or target.read_bytes() != data:
            _make_dirs(target.parent, dest)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            copied += 1
        target.chmod(0o755 if source.stat().st_mode & 0o100 else 0o644)
    # Files deleted from the checkout go from the copy too (bytecode caches stay: Python checks them).
    for path in sorted(dest.rglob("*"), reverse=True):
        relative = path.relative_to(dest).as_posix()
        if "__pycache__" in path.parts or relative in wanted:
            continue
        if path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()  # only if empty
        else:
            path.unlink()
    return copied


def _make_dirs(directory: Path, top: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for parent in (directory, *directory.parents):
        parent.chmod(0o755)
        if parent == top:
            break


def _stamp_text(site: SiteSoftware) -> str:
    digest = hashlib.sha256((site.src / "pyproject.toml").read_bytes()).hexdigest()
    return f"pyproject.toml sha256 {digest}\n"


def _install(site: SiteSoftware) -> None:
    """Create the venv from the system Python (if needed) and install hcqw editable from ``src``."""
    if not SYSTEM_PYTHON.exists():
        raise LabError(f"{SYSTEM_PYTHON} not found: install the distribution's python3 (>= 3.11)")
    packages.ensure_packages(["python3-venv"])
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)  # the venv must stand on its own
    env.pop("VIRTUAL_ENV", None)
    if not site.python.exists():
        log.warning("creating the shared venv %s from %s", site.venv, SYSTEM_PYTHON)
        _run([str(SYSTEM_PYTHON), "-m", "venv", str(site.venv)], env, "create the site venv")
    log.warning("installing hcqw and its dependencies into %s (pip; a minute on first use)", site.venv)
    _run([str(site.python), "-m", "pip", "install", "-q", "-e", f"{site.src}[{EXTRAS}]"], env,
         "install hcqw into the site venv")


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    old = os.umask(0o022)  # everything installed must be readable by every user
    try:
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    finally:
        os.umask(old)
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise LabError(f"could not {what} (`{' '.join(argv)}` exit {result.returncode}). Last output:\n{output}")


def main() -> int:
    """``python -m hcqw.lab.software``: build or refresh the site venv and print its bin directory."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ensure_site_venv().bin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
