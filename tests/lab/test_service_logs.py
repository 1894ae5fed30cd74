"""The resident QPU service's logs name every user's workflows and sessions: on the lab they are
0640, the service's (or root's) and the ``hcqw-admin`` group's (issue 24, finding 8). A user reads
neither; the operator's ``hcqw device stats`` as root still does."""

from __future__ import annotations

import stat

import pytest

from hcqw.lab.resident import daemon_name, metrics_log
from hcqw.lab.users import ADMIN_GROUP, SERVICE_ACCOUNT, USERS

pytestmark = pytest.mark.slurm
BOB = USERS[1]


def test_the_service_logs_are_0640_to_the_admin_group_and_bob_reads_neither(slurm_lab):
    node = slurm_lab.layout.qpu_node_names[0]
    logs = {metrics_log(slurm_lab.layout, node): SERVICE_ACCOUNT,
            slurm_lab.layout.log_file(daemon_name(node)): "root"}
    for path, owner in logs.items():
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o640, path
        assert (path.owner(), path.group()) == (owner, ADMIN_GROUP), path
        read = slurm_lab.exec(BOB, ["cat", str(path)], capture_output=True, text=True, timeout=30)
        assert read.returncode != 0 and "Permission denied" in read.stderr and not read.stdout
    stats = slurm_lab.exec(BOB, ["hcqw", "device", "stats", "--log", str(metrics_log(slurm_lab.layout, node))],
                           capture_output=True, text=True, timeout=60)
    assert stats.returncode != 0 and "Permission denied" in stats.stderr
