"""Where the gateway listens: the qpu node's NodeAddr, found at run time (``hcqw.hetjob.address``)."""

from __future__ import annotations

import os
import re

import pytest

from hcqw.errors import DeviceError
from hcqw.hetjob.address import (cluster_address, controller_host, expand_node, node_addr, resolve, route_address,
                                 submit_address, tcp_bind_address)
from hcqw.lab.pytest_plugin import during_controller_outage
from hcqw.slurm.commands import run_slurm

# One line of `scontrol show node -o` (22.05), trimmed.
RECORD = ("NodeName=q7 Arch=x86_64 CoresPerSocket=1 CPUAlloc=0 CPUTot=4 Gres=qpu:1 NodeAddr=10.20.0.17 "
          "NodeHostName=q7 Version=22.05.8 OS=Linux 6.1.0 RealMemory=1 State=IDLE Partitions=qpu")


def test_node_addr_is_read_from_the_node_record():
    assert node_addr(RECORD) == "10.20.0.17"
    with pytest.raises(DeviceError, match="no NodeAddr for node 'q7'"):
        node_addr(RECORD.replace("NodeAddr=10.20.0.17 ", ""))


def test_a_host_name_resolves_on_the_node_and_an_address_stays_as_it_is():
    assert resolve("10.20.0.17") == "10.20.0.17"
    assert resolve("localhost") in ("127.0.0.1", "::1")
    with pytest.raises(DeviceError, match="cannot resolve the qpu node's NodeAddr 'no-such-host.invalid'"):
        resolve("no-such-host.invalid")


def test_bind_address_has_a_port_chosen_at_bind():
    assert tcp_bind_address("10.20.0.17") == "tcp://10.20.0.17:*"
    assert tcp_bind_address("fd00::17") == "tcp://[fd00::17]:*"


def test_outside_slurm_the_gateway_binds_loopback():
    assert cluster_address({}) == "127.0.0.1"


def test_the_controller_is_found_in_scontrol_show_config():
    config = "ClusterName             = hcqw\nSlurmctldAddr           = (null)\nSlurmctldHost[0]        = vm(10.31.64.2)\n"
    assert controller_host(config) == "10.31.64.2"
    assert controller_host(config.replace("vm(10.31.64.2)", "head")) == "head"
    assert controller_host(config.replace("(null)", "10.9.9.9")) == "10.9.9.9"  # SlurmctldAddr wins
    with pytest.raises(DeviceError, match="names no SlurmctldHost"):
        controller_host("ClusterName = hcqw\n")
    assert route_address("127.0.0.1") == "127.0.0.1"


def test_percent_n_becomes_the_node_name_and_needs_one():
    assert expand_node("ipc:///lab/hosts/%n/qpu/qpu.ipc", {"SLURMD_NODENAME": "q2"}) == "ipc:///lab/hosts/q2/qpu/qpu.ipc"
    assert expand_node("ipc:///run/qpu.ipc", {}) == "ipc:///run/qpu.ipc"
    with pytest.raises(DeviceError, match=r"contains %n .* \$SLURMD_NODENAME is not set"):
        expand_node("ipc:///lab/hosts/%n/qpu.ipc", {})


@pytest.mark.slurm
def test_the_submit_host_is_reached_on_its_address_on_the_lab_network(slurm_lab):
    """Parsl's interchange binds this: the submit host's address on the lab's bridge, not loopback."""
    submit = [h for h in slurm_lab.hosts if h.role == "submit"]
    assert [submit_address(slurm_lab.env)] == [h.address for h in submit]


@pytest.mark.slurm
def test_every_qpu_node_gets_the_address_its_slurm_conf_line_gives(slurm_lab):
    """On the lab: the address found for each qpu node is the NodeAddr its slurm.conf line sets."""
    configured_addr = {}  # a NodeName line may list several nodes, their NodeAddr the same number of addresses
    for line in slurm_lab.slurm_conf.read_text().splitlines():
        names, addrs = re.match(r"NodeName=(\S+)", line), re.search(r"NodeAddr=(\S+)", line)
        if names and addrs:
            configured_addr.update(zip(names.group(1).split(","), addrs.group(1).split(","), strict=True))
    nodes = run_slurm(["sinfo", "-h", "-N", "-p", "qpu", "-o", "%N"], env=slurm_lab.env).stdout.split()
    assert len(nodes) == 2
    for node in nodes:
        configured = configured_addr[node]
        assert cluster_address({**slurm_lab.env, "SLURMD_NODENAME": node, "PATH": os.environ["PATH"]}) \
            == resolve(configured)


@pytest.mark.slurm
@pytest.mark.slow
def test_a_gateway_starting_while_the_controller_restarts_waits_for_its_address(slurm_lab):
    """A gateway asks slurmctld for its node's NodeAddr; during a slurmctld restart it waits instead of failing
    (found when a Parsl qpu app's gateway started during an outage and the app was lost)."""
    node = slurm_lab.layout.qpu_node_names[0]
    env = {**slurm_lab.env, "SLURMD_NODENAME": node, "PATH": os.environ["PATH"]}
    expected = cluster_address(env)
    assert during_controller_outage(slurm_lab, lambda: cluster_address(env)) == expected
