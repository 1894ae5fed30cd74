"""Resident QPU services (hcqw.lab.resident): one per qpu host, run from the site's systemd unit as hcqw-qpu."""

from __future__ import annotations

import json
import os
import pwd
import subprocess

import pytest

from hcqw.lab import LabCluster
from hcqw.lab.resident import daemon_name, render_unit, service_command
from hcqw.lab.users import SERVICE_ACCOUNT

pytestmark = pytest.mark.slurm


def test_one_service_per_qpu_host_as_the_service_account_in_its_namespace(slurm_lab: LabCluster) -> None:
    pids = slurm_lab.daemon_pids()
    for node in slurm_lab.layout.qpu_node_names:
        pid = pids[daemon_name(node)]
        assert pid, f"no resident service on {node}"
        status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
        uids = {int(u) for u in status["Uid"].split()}
        assert uids == {pwd.getpwnam(SERVICE_ACCOUNT).pw_uid}  # real, effective, saved, fs
        assert status["Groups"].split() == []  # no supplementary groups of root's
        host = slurm_lab.network.host(node)
        assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(host.netns_path).st_ino
        cmdline = open(f"/proc/{pid}/cmdline").read().split("\0")
        assert slurm_lab.qpu_service_address(node) in cmdline
        # It serves: the device answers on the node-local address.
        result = subprocess.run([str(slurm_lab.site.hcqw), "device", "status", "--json", "--address",
                                 slurm_lab.qpu_service_address(node)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["status"] == "idle"
    assert len({slurm_lab.qpu_service_address(n) for n in slurm_lab.layout.qpu_node_names}) == 2


def test_the_lab_runs_exactly_the_units_command(slurm_lab: LabCluster) -> None:
    node = slurm_lab.layout.qpu_node_names[0]
    unit = render_unit(slurm_lab.layout, slurm_lab.site, node, slurm_lab.simulator)
    user, argv = service_command(unit)
    assert user == SERVICE_ACCOUNT and argv[0] == str(slurm_lab.site.hcqw)
    pid = slurm_lab.daemon_pids()[daemon_name(node)]
    cmdline = open(f"/proc/{pid}/cmdline").read().rstrip("\0").split("\0")
    assert cmdline[1:] == argv  # the venv's hcqw script runs under its python
    assert f"--simulator {slurm_lab.simulator}" in " ".join(argv)
