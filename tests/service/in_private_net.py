"""The protocol suite over ``mpi:name:`` (hydra name server), run inside a private network namespace.

``hydra_nameserver`` listens on every interface and has no option to bind loopback only, so
the test starts this script with ``unshare --net``: the name server, the service and the
client then share a namespace whose only interface is loopback. Exits with the suite's status.

    unshare --net python -m tests.service.in_private_net TMPDIR   (from the repository's root)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.live import MPIEXEC, SUITE, VENV_BIN, LiveService

PORT = 7000  # nothing else listens inside the private namespace


def main(tmp: Path) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    nameserver = subprocess.Popen([str(VENV_BIN / "hydra_nameserver"), "-port", str(PORT)])
    try:
        launch = ["-nameserver", f"127.0.0.1:{PORT}"]
        service = LiveService(tmp, "mpi:name:hcqw-suite", mpi=True, mpi_args=launch)
        try:
            suite = subprocess.run([str(MPIEXEC), *launch, "-n", "1", str(VENV_BIN / "python"), str(SUITE),
                                    service.address], env=service.env, timeout=120)
            return suite.returncode
        finally:
            service.stop()
    finally:
        nameserver.kill()
        nameserver.wait()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
