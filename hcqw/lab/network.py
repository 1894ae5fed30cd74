"""The lab's hosts on one machine: a network namespace per host, all on one bridge of their own.

Each host of a lab cluster (head, cpu and qpu nodes) is a network namespace
with its own address on a per-lab bridge; the submit host is the machine's
own namespace, whose address is the bridge's. Daemons are started inside a
host with ``nsenter --net=/var/run/netns/NS`` (not ``ip netns exec``, which
remounts /sys and makes slurmd fail on cgroups). Only the network is
separated: all hosts share the file system, users and the munge socket, like
the nodes of a cluster with a shared file system.

Names and the /24 subnet are derived from the port base, which is unique per
lab on a machine: port base ``P`` gives namespaces ``hqP-<host>``, links
``hqPv<host>``, bridge ``hqPbr`` and subnet ``10.<P // 256>.<P % 256>.0/24``.
The bridge has no route to the outside (no default route in the namespaces, no
forwarding or NAT is set up), so traffic stays between the lab's hosts.
``up`` refuses names or a subnet that something else already uses; ``down``
removes exactly what the record written by ``up`` lists.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import pwd
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from hcqw.lab.errors import LabError
from hcqw.lab.layout import Layout

log = logging.getLogger(__name__)

NETNS_DIR = Path("/var/run/netns")
SUBMIT = "submit"
_HEAD_HOST = 2
_CPU_HOST = 10  # cpu node i (1-based) is .10+i
_QPU_HOST = 100  # qpu node i is .100+i


@dataclass(frozen=True)
class Host:
    """One host of the lab: a Slurm node, the head or the submit host."""

    name: str  # the Slurm node name for nodes; "<cluster>-head"; "submit"
    role: str  # head | cpu | qpu | submit
    address: str
    netns: str | None  # None: the machine's own namespace (the submit host)
    link: str | None  # the bridge-side end of the host's veth pair

    @property
    def netns_path(self) -> Path | None:
        return NETNS_DIR / self.netns if self.netns else None

    def enter(self, user: str | None = None) -> list[str]:
        """The argv prefix that runs a command on this host, as ``user`` if given (else as the caller).

        nsenter execs the command, so its PID is the command's; ``--setuid/--setgid`` also drop
        supplementary groups."""
        if not self.netns:
            if user:
                raise ValueError("the lab runs no daemon as another user on the submit host")
            return []
        return ["nsenter", f"--net={self.netns_path}", *_nsenter_ids(user), "--"]


@dataclass(frozen=True)
class Network:
    """The bridge, subnet and hosts of one lab cluster."""

    tag: str
    subnet: str
    bridge: str
    hosts: tuple[Host, ...]

    @classmethod
    def plan(cls, layout: Layout) -> "Network":
        base = layout.ports.base
        tag = f"hq{base}"
        subnet = ipaddress.ip_network(f"10.{base // 256}.{base % 256}.0/24")

        def host(name: str, short: str, role: str, number: int) -> Host:
            return Host(name, role, str(subnet[number]), f"{tag}-{short}", f"{tag}v{short}")

        hosts = [host(layout.head_name, "head", "head", _HEAD_HOST)]
        hosts += [host(n, f"c{i + 1}", "cpu", _CPU_HOST + i + 1) for i, n in enumerate(layout.cpu_node_names)]
        hosts += [host(n, f"q{i + 1}", "qpu", _QPU_HOST + i + 1) for i, n in enumerate(layout.qpu_node_names)]
        hosts.append(Host(SUBMIT, "submit", str(subnet[1]), None, None))
        return cls(tag=tag, subnet=str(subnet), bridge=f"{tag}br", hosts=tuple(hosts))

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(name)

    @property
    def head(self) -> Host:
        return next(h for h in self.hosts if h.role == "head")

    @property
    def submit(self) -> Host:
        return self.host(SUBMIT)

    @property
    def namespaced(self) -> list[Host]:
        return [h for h in self.hosts if h.netns]

    @property
    def prefix_len(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def to_json(self) -> str:
        return json.dumps({"tag": self.tag, "subnet": self.subnet, "bridge": self.bridge,
                           "hosts": [asdict(h) for h in self.hosts]}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Network":
        data = json.loads(text)
        return cls(tag=data["tag"], subnet=data["subnet"], bridge=data["bridge"],
                   hosts=tuple(Host(**h) for h in data["hosts"]))


def _nsenter_ids(user: str | None) -> list[str]:
    if user is None:
        return []
    entry = pwd.getpwnam(user)
    return [f"--setgid={entry.pw_gid}", f"--setuid={entry.pw_uid}"]


def is_up(net: Network) -> bool:
    """True if the bridge and every host's namespace exist."""
    return _link_exists(net.bridge) and all(h.netns_path.exists() for h in net.namespaced)  # type: ignore[union-attr]


def create(net: Network, record: Path) -> None:
    """Make the bridge, namespaces and links of ``net``; write ``record`` first so ``destroy`` finds them.

    Raises :class:`LabError` (before touching anything) if a name or the subnet is taken.
    """
    _check_free(net)
    record.write_text(net.to_json())
    try:
        _ip("link", "add", net.bridge, "type", "bridge")
        _ip("addr", "add", f"{net.submit.address}/{net.prefix_len}", "dev", net.bridge)
        _ip("link", "set", net.bridge, "up")
        for host in net.namespaced:
            assert host.netns and host.link
            _ip("netns", "add", host.netns)
            _ip("link", "add", host.link, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
            _ip("link", "set", host.link, "master", net.bridge, "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/{net.prefix_len}", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
    except LabError:
        destroy(record)
        raise
    log.info("lab network %s: bridge %s, %d hosts", net.subnet, net.bridge, len(net.hosts))


def destroy(record: Path) -> None:
    """Remove the namespaces, links and bridge listed in ``record`` (whatever of them exists), then the record."""
    try:
        net = Network.from_json(record.read_text())
    except FileNotFoundError:
        return
    for host in net.namespaced:
        assert host.netns and host.link
        # Deleting the namespace destroys its end of the veth pair and with it ours (a moment later).
        if host.netns_path.exists():  # type: ignore[union-attr]
            _warn_about_processes_inside(host)
            _ip("netns", "delete", host.netns)
        _delete_link(host.link)
    _delete_link(net.bridge)
    record.unlink()


def _delete_link(name: str) -> None:
    if not _link_exists(name):
        return
    result = subprocess.run(["ip", "link", "delete", name], capture_output=True, text=True, check=False)
    if result.returncode != 0 and _link_exists(name):
        raise LabError(f"`ip link delete {name}` failed (exit {result.returncode}): {result.stderr.strip()}")


def _check_free(net: Network) -> None:
    """Refuse to reuse a name or overlap a subnet that anything on the machine already has."""
    taken = [h.netns for h in net.namespaced if h.netns_path.exists()]  # type: ignore[union-attr]
    taken += [name for name in (net.bridge, *(h.link for h in net.namespaced)) if name and _link_exists(name)]
    hint = ("another lab cluster with the same port base, or a crashed one whose directory is gone, uses it: stop that "
            "lab (`hcqw lab down --dir ...`), remove the leftovers (`ip netns delete NAME`, `ip link delete NAME`) or "
            "choose another --port-base")
    if taken:
        raise LabError(f"network names of this lab are taken: {', '.join(taken)}; {hint}")
    ours = ipaddress.ip_network(net.subnet)
    result = subprocess.run(["ip", "-4", "-j", "route", "show", "table", "all"], capture_output=True, text=True,
                            check=False)
    for route in json.loads(result.stdout or "[]"):
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("type") in ("local", "broadcast"):
            continue
        try:
            other = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if other.overlaps(ours):
            raise LabError(f"subnet {ours} of this lab overlaps {other} (dev {route.get('dev', '?')}), already routed "
                           f"on this machine; {hint}")


def _warn_about_processes_inside(host: Host) -> None:
    """Name processes still in the host's namespace (they keep it alive, unnamed, after ``ip netns delete``).

    They are not the lab's daemons (those are stopped first, by PID) but leftovers of jobs: say
    so rather than kill what the lab did not start itself."""
    inode = host.netns_path.stat().st_ino  # type: ignore[union-attr]
    left = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "ns" / "net").stat().st_ino == inode:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                left.append(f"{proc.name} ({command})")
        except OSError:
            continue  # gone meanwhile, or a kernel thread
    if left:
        log.warning("processes still running on lab host %s: %s", host.name, "; ".join(left))


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"`ip {' '.join(args)}` failed (exit {result.returncode}): {result.stderr.strip()}; the lab "
                       "needs root and the iproute2 package")
