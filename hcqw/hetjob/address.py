"""Where the gateway listens: the qpu node's cluster address, found at run time.

Component 0 of a quantum node runs on a cpu host and must reach the gateway on the qpu
host, which SLURM chose only when the job started: no address can be configured in advance
(with two qpu nodes it is not even known at submission). The gateway therefore binds the
address SLURM itself uses to reach its node -- the ``NodeAddr`` of ``$SLURMD_NODENAME`` in
the controller's node table (``scontrol show node -o``) -- and publishes the bound endpoint
(with its port) in the job's private directory, where component 0 reads it.

Why ``NodeAddr``: it is the address slurmctld and srun already reach that node on, so every
host that can run component 0 can route to it; a host name is resolved here, on the node
itself. Outside a SLURM step (no ``$SLURMD_NODENAME``: a gateway started by hand, tests) the
gateway binds loopback.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Mapping

from hcqw.errors import DeviceError
from hcqw.slurm.backend import ride_out
from hcqw.slurm.commands import run_slurm
from hcqw.slurm.parsing import parse_scontrol_record

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def node_addr(record: str) -> str:
    """The ``NodeAddr`` of one ``scontrol show node -o`` line; ``DeviceError`` if it has none."""
    fields = parse_scontrol_record(record)
    address = fields.get("NodeAddr", "").strip()
    if not address or address == "(null)":
        raise DeviceError(f"SLURM reports no NodeAddr for node {fields.get('NodeName', '?')!r}: {record.strip()!r}")
    return address


def resolve(host: str) -> str:
    """An IP address for ``host`` (itself if it is one), IPv4 first; ``DeviceError`` naming the host otherwise."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as err:
        raise DeviceError(f"cannot resolve the qpu node's NodeAddr {host!r}: {err}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(infos[0][4][0])


def cluster_address(env: Mapping[str, str] | None = None) -> str:
    """This node's cluster address: the resolved ``NodeAddr`` of ``$SLURMD_NODENAME``, or loopback outside SLURM."""
    env = os.environ if env is None else env
    node = env.get("SLURMD_NODENAME")
    if not node:
        return LOOPBACK
    # A gateway starting while slurmctld restarts waits for it (ride_out) instead of failing the node.
    proc = ride_out(lambda: run_slurm(["scontrol", "show", "node", "-o", node], env=dict(env)), f"NodeAddr of {node}")
    address = resolve(node_addr(proc.stdout))
    log.info("node %s: cluster address %s", node, address)
    return address


def controller_host(config: str) -> str:
    """Where slurmctld listens, from ``scontrol show config``: ``SlurmctldAddr``, else the address (or
    name) of ``SlurmctldHost[0]``; ``DeviceError`` if neither is there."""
    fields = {key.strip(): value.strip() for key, sep, value in (line.partition("=") for line in config.splitlines())
              if sep}
    if fields.get("SlurmctldAddr", "(null)") != "(null)":
        return fields["SlurmctldAddr"]
    host = fields.get("SlurmctldHost[0]", "")
    name, _, address = host.partition("(")
    if not (address.rstrip(")") or name):
        raise DeviceError("`scontrol show config` names no SlurmctldHost: is SLURM_CONF the cluster's?")
    return address.rstrip(")") or name


def submit_address(env: Mapping[str, str] | None = None) -> str:
    """This host's address on the cluster network: the local end of the route to slurmctld, which
    compute nodes reach this host on too (for a service they call back, e.g. Parsl's interchange).
    Loopback if the controller is on loopback."""
    env = os.environ if env is None else env
    return route_address(controller_host(run_slurm(["scontrol", "show", "config"], env=dict(env)).stdout))


def route_address(host: str) -> str:
    """This host's address on the route to ``host`` (a name or an address)."""
    target = resolve(host)
    family = socket.AF_INET6 if ":" in target else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((target, 9))  # a UDP connect only picks the route; nothing is sent
        address = str(probe.getsockname()[0])
    log.info("this host's address toward %s: %s", target, address)
    return address


def tcp_bind_address(host: str) -> str:
    """ZeroMQ endpoint on ``host`` with a port chosen at bind (IPv6 in brackets)."""
    return f"tcp://[{host}]:*" if ":" in host else f"tcp://{host}:*"


def expand_node(address: str, env: Mapping[str, str] | None = None) -> str:
    """Replace ``%n`` in a per-host address (``ipc:///run/hcqw/%n/qpu.ipc``) by ``$SLURMD_NODENAME``."""
    if "%n" not in address:
        return address
    env = os.environ if env is None else env
    node = env.get("SLURMD_NODENAME")
    if not node:
        raise DeviceError(f"{address!r} contains %n (the qpu node's name) but $SLURMD_NODENAME is not set: "
                          "%n is expanded only inside a SLURM job step on the qpu node")
    return address.replace("%n", node)
