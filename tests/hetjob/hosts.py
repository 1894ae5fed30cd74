"""Two "hosts" on this machine for cross-host tests: network namespaces joined by a veth pair.

Each namespace has loopback and one interface with its own address, so a process in one
reaches the other only over that link, as between two nodes of a cluster (the machine's
own namespace is untouched). Needs root, ``ip`` and ``nsenter``; removed in teardown.
Processes are started with ``nsenter --net`` (``ip netns exec`` would remount /sys).

The interface in each namespace is called ``eth0``, as in the lab's hosts: under ``nsenter
--net`` /sys still shows the machine's own interfaces, and UCX (MPI) lists network devices
from /sys/class/net, so it finds a namespace's interface only under a name the machine has too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

SUBNET = "10.213.7"


@dataclass(frozen=True)
class Host:
    netns: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net=/var/run/netns/{self.netns}", *argv]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def two_hosts():
    if os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("nsenter")):
        pytest.skip("needs root, ip and nsenter to make network namespaces")
    tag = str(os.getpid() % 100000)
    hosts = [Host(f"h2t-{tag}-{side}", f"{SUBNET}.{i + 1}") for i, side in enumerate("ab")]
    made: list[str] = []
    try:
        for host in hosts:
            _ip("netns", "add", host.netns)
            made.append(host.netns)
        _ip("link", "add", f"h2t{tag}a", "type", "veth", "peer", "name", f"h2t{tag}b")
        for host, end in zip(hosts, "ab"):
            _ip("link", "set", f"h2t{tag}{end}", "netns", host.netns)
            for args in (("link", "set", "lo", "up"), ("link", "set", f"h2t{tag}{end}", "name", "eth0"),
                         ("addr", "add", f"{host.address}/24", "dev", "eth0"), ("link", "set", "eth0", "up")):
                _ip("-n", host.netns, *args)
        yield hosts
    finally:
        for netns in made:  # deleting a namespace deletes its end of the veth pair, and so the pair
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
