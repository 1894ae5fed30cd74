"""``hcqw lab env|status|exec`` (hcqw.cli.lab) against the running lab."""

from __future__ import annotations

import argparse
import json

import pytest

from hcqw.cli import lab as cli
from hcqw.lab import LabCluster, LabError
from hcqw.lab.users import USERS

pytestmark = pytest.mark.slurm


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lab", *argv])
    return args.handler(args)


def test_env(slurm_lab: LabCluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("env", "--dir", str(slurm_lab.root)) == 0
    assert capsys.readouterr().out == (f"export SLURM_CONF={slurm_lab.slurm_conf}\n"
                                       f"export HCQW_MUNGE_SOCKET={slurm_lab.layout.munge_socket}\n")


def test_status_json_lists_hosts_users_and_daemons(slurm_lab: LabCluster, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("status", "--json", "--dir", str(slurm_lab.root)) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["up"] is True and status["cluster"] == slurm_lab.cluster_name
    hosts = {h["name"]: h for h in status["hosts"]}
    assert sorted(h["role"] for h in hosts.values()) == ["cpu", "cpu", "head", "qpu", "qpu", "submit"]
    assert all(h["address"].startswith(slurm_lab.network.subnet.rsplit(".", 1)[0]) for h in hosts.values())
    assert hosts["submit"]["namespace"] is None and hosts["hcqw-q2"]["namespace"] == "hq{}-q2".format(
        slurm_lab.layout.ports.base)
    assert [u["name"] for u in status["users"] if u["role"] == "user"] == list(USERS)
    daemons = {d["name"]: d for d in status["daemons"]}
    assert all(d["pid"] for d in daemons.values())
    assert daemons["qpu-service-hcqw-q1"]["user"] == "hcqw-qpu" and daemons["slurmctld"]["host"] == "hcqw-head"
    assert status["qpu_service_pattern"].replace("%n", "hcqw-q2") == status["qpu_services"]["hcqw-q2"]
    assert _run("status", "--dir", str(slurm_lab.root)) == 0
    assert "hcqw-q2" in capsys.readouterr().out


def test_exec_passes_the_exit_code_through(slurm_lab: LabCluster, capfd: pytest.CaptureFixture[str]) -> None:
    assert _run("exec", "--dir", str(slurm_lab.root), "--user", USERS[1], "--", "sh", "-c", "id -un; exit 3") == 3
    assert capfd.readouterr().out == f"{USERS[1]}\n"
    with pytest.raises(LabError, match="not a lab user"):
        _run("exec", "--dir", str(slurm_lab.root), "--user", "root", "--", "true")
