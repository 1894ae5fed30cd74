"""The site fragments (hcqw/lab/site/): what docs/site-guide.md tells a site is what the lab runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hcqw.lab import config, resident
from hcqw.lab.errors import LabError
from hcqw.lab.layout import Layout
from hcqw.lab.network import Network
from hcqw.lab.software import SiteSoftware
from tests.support import ROOT

GUIDE = ROOT / "docs" / "site-guide.md"


def _guide_blocks() -> list[str]:
    return [block for block in re.findall(r"```[a-z]*\n(.*?)```", GUIDE.read_text(), re.S)]


def test_the_site_guide_shows_every_fragment_exactly() -> None:
    blocks = _guide_blocks()
    for name in config.FRAGMENTS:
        assert config.fragment(name) in blocks, f"docs/site-guide.md does not show hcqw/lab/site/{name} as it is"
    assert sorted(p.name for p in config.SITE_DIR.iterdir() if p.is_file()) == sorted(config.FRAGMENTS)


def test_the_lab_configuration_contains_the_rendered_fragments() -> None:
    layout = Layout.create(Path("/tmp/lab"), "hcqw", 6900, 2, 2, 4)
    net = Network.plan(layout)
    conf = config.render_slurm_conf(layout, net, accounting=True)
    qpu = config.render_fragment("slurm-qpu.conf", qpu_nodes="hcqw-q1,hcqw-q2",
                                 qpu_addresses="10.26.244.101,10.26.244.102", cpus=4, memory_mb=config.NODE_MEMORY_MB,
                                 staging_depth=1)
    assert qpu in conf
    assert config.render_fragment("slurm-accounting.conf", dbd_host="10.26.244.2", dbd_port=6902) in conf
    # Billing weights apply to partitions defined after them.
    assert conf.index("PartitionName=DEFAULT") < conf.index("PartitionName=cpu")
    assert "AccountingStorageTRES" not in config.render_slurm_conf(layout, net, accounting=False)
    assert config.render_gres_conf(layout, net).endswith("NodeName=hcqw-q1,hcqw-q2 Name=qpu Count=1\n")
    # Only jobs holding the QPU reach it: the submit filter and the qpu hosts' grant records.
    assert config.render_fragment("slurm-qpu-access.conf", grant_script=layout.grant_script) in conf
    script = config.render_grant_script(layout)
    assert 'grants="/tmp/lab/hosts/$SLURMD_NODENAME/grants"' in script


def test_the_resident_service_command_comes_from_the_unit() -> None:
    layout = Layout.create(Path("/tmp/lab"), "hcqw", 6900, 2, 2, 4)
    unit = resident.render_unit(layout, SiteSoftware(Path("/opt/site")), "hcqw-q2", "cirq")
    user, argv = resident.service_command(unit)
    assert user == "hcqw-qpu"
    assert argv == ["/opt/site/venv/bin/hcqw", "device", "serve", "--address",
                    "ipc:///tmp/lab/hosts/hcqw-q2/qpu/qpu.ipc", "--auth", "munge", "--simulator", "cirq", "--grants",
                    "/tmp/lab/hosts/hcqw-q2/grants", "--slurmd-spool", "/tmp/lab/spool/hcqw-q2", "--log", "/tmp/lab/hosts/hcqw-q2/qpu/qpu.jsonl", "--log-group",
                    "hcqw-admin", "--metrics-address", "127.0.0.1:9464"]
    assert layout.qpu_service_address_pattern.replace("%n", "hcqw-q2") == layout.qpu_service_address("hcqw-q2")


def test_a_staged_lab_gives_each_qpu_host_its_staging_depth_in_gres_and_one_executor_at_its_service() -> None:
    layout = Layout.create(Path("/tmp/lab"), "hcqw", 6900, 2, 2, 4, staging_depth=2)
    net = Network.plan(layout)
    assert "Gres=qpu:2 " in config.render_slurm_conf(layout, net)
    assert config.render_gres_conf(layout, net).endswith("NodeName=hcqw-q1,hcqw-q2 Name=qpu Count=2\n")
    _, argv = resident.service_command(resident.render_unit(layout, SiteSoftware(Path("/opt/site")), "hcqw-q1"))
    assert argv[-1] == "--exclusive-sessions"


def test_a_staging_depth_out_of_range_is_refused_with_what_it_means() -> None:
    for depth in (0, 5):
        with pytest.raises(LabError, match="staging_depth must be between 1 .no staging. and 4"):
            Layout.create(Path("/tmp/lab"), "hcqw", 6900, 2, 2, 4, staging_depth=depth)


def test_accounts_come_from_the_sacctmgr_fragment() -> None:
    commands = config.render_accounts("hcqw-alice")
    assert commands[-1] == "add user hcqw-alice Account=alice DefaultAccount=alice"
    assert all(c.startswith("add ") for c in commands)
