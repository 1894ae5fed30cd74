"""Installing the Debian packages the lab cluster needs (only when missing).

A developer machine usually has them already; a fresh CI machine does not,
so ``LabCluster.up()`` installs them itself. ``--no-install-recommends``
matters: the ``slurm-wlm`` metapackage and recommends drag in ~40 packages.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable

from hcqw.lab.errors import LabError

log = logging.getLogger(__name__)

#: auth/jwt lives in its own package; slurmrestd is needed for the REST API; iproute2 makes the hosts.
BASE_PACKAGES: tuple[str, ...] = ("slurmctld", "slurmd", "slurm-client", "munge", "slurmrestd", "slurm-wlm-jwt-plugin",
                                  "iproute2")
ACCOUNTING_PACKAGES: tuple[str, ...] = ("slurmdbd", "mariadb-server")

_lock = threading.Lock()
_apt_updated = False  # `apt-get update` at most once per process


def missing_packages(packages: Iterable[str]) -> list[str]:
    """The packages of ``packages`` that dpkg does not list as installed."""
    packages = list(packages)
    if shutil.which("dpkg-query") is None:
        raise LabError("dpkg-query not found: the lab cluster needs a Debian or Ubuntu host (apt/dpkg)")
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    installed = {
        parts[0]
        for parts in (line.split() for line in result.stdout.splitlines())
        if len(parts) >= 2 and parts[1].startswith("ii")
    }
    return [p for p in packages if p not in installed]


def ensure_packages(packages: Iterable[str]) -> None:
    """Install whatever of ``packages`` is missing with apt-get; a no-op if all are installed."""
    global _apt_updated
    with _lock:
        missing = missing_packages(packages)
        if not missing:
            return
        command = "apt-get install -y --no-install-recommends " + " ".join(missing)
        if os.geteuid() != 0:
            raise LabError(f"Debian packages missing: {' '.join(missing)}. Installing them needs root: run `sudo {command}` "
                           "(or run hcqw as root) and try again")
        log.warning("installing Debian packages: %s", " ".join(missing))
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # Wait for a concurrent apt/dpkg instead of failing on its lock.
        lock_opt = ["-o", "DPkg::Lock::Timeout=300"]
        if not _apt_updated:
            _run(["apt-get", *lock_opt, "update"], env, "apt-get update")
            _apt_updated = True
        _run(["apt-get", *lock_opt, "install", "-y", "--no-install-recommends", *missing], env, command)
        still = missing_packages(missing)
        if still:
            raise LabError(f"apt-get reported success but these packages are still not installed: {' '.join(still)}")


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise LabError(f"`{what}` failed (exit {result.returncode}); fix the package setup and retry. Last output:\n{output}")
