"""Where a lab cluster keeps its files, which ports it uses and what its hosts are called.

Everything a lab cluster writes lives under its root directory, so several
clusters coexist on one host as long as they have different roots, names and
port bases. Nothing outside the root is touched (no /etc/slurm, no /run/munge)
except the network namespaces, links and bridge of its hosts (see
:mod:`hcqw.lab.network`, named after the port base) and the shared software
tree (:mod:`hcqw.lab.software`).

Hosts: the head (slurmctld; slurmdbd and MariaDB with accounting), cpu hosts
``<name>-c1 ..`` and qpu hosts ``<name>-q1 ..``, each in its own network
namespace, and the submit host (the machine's own namespace), where users run
sbatch, Snakemake, Parsl and hcqw.

Ports, relative to ``port_base``::

    port_base + 0     slurmctld      (head address)
    port_base + 1     slurmrestd     (127.0.0.1 of the submit host only)
    port_base + 2     slurmdbd       (head address; accounting=True only)
    port_base + 3     mariadb        (127.0.0.1 of the head; accounting=True only)
    port_base + 9     slurmd         (each node on its own address)

Only slurmrestd binds in the machine's own namespace, so clusters on one host
need different port bases (the port base also names the cluster's network).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hcqw.lab.errors import LabError

#: Cluster names become node-name prefixes and (with accounting) MySQL table
#: prefixes, so keep them to the characters that are safe in both.
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_CPU_NODES = 64
MAX_QPU_NODES = 16
#: Staging more than a few nodes ahead only charges users for waiting (docs/site-guide.md, "Staging").
MAX_STAGING_DEPTH = 4
PORT_SPAN = 10


@dataclass(frozen=True)
class Ports:
    """The TCP ports of one lab cluster (see the module docstring)."""

    base: int

    @property
    def slurmctld(self) -> int:
        return self.base

    @property
    def slurmrestd(self) -> int:
        return self.base + 1

    @property
    def slurmdbd(self) -> int:
        return self.base + 2

    @property
    def mariadb(self) -> int:
        return self.base + 3

    @property
    def slurmd(self) -> int:
        return self.base + 9


@dataclass(frozen=True)
class Layout:
    """Paths and names of one lab cluster, derived from its constructor arguments."""

    root: Path
    name: str
    ports: Ports
    cpu_nodes: int
    qpu_nodes: int
    cpus_per_node: int
    staging_depth: int = 1  # qpu gres per qpu host: jobs at a device at once (1 executing, the rest staged)

    @classmethod
    def create(cls, root: Path, name: str, port_base: int, cpu_nodes: int, qpu_nodes: int,
               cpus_per_node: int, staging_depth: int = 1) -> "Layout":
        if not _NAME_RE.match(name):
            raise LabError(
                f"invalid lab cluster name {name!r}: use 1-32 characters a-z, 0-9 and '_', starting with a letter "
                "(it prefixes node names and database tables)"
            )
        if not 1 <= cpu_nodes <= MAX_CPU_NODES:
            raise LabError(f"cpu_nodes must be between 1 and {MAX_CPU_NODES}, not {cpu_nodes}")
        if not 1 <= qpu_nodes <= MAX_QPU_NODES:
            raise LabError(f"qpu_nodes must be between 1 and {MAX_QPU_NODES}, not {qpu_nodes}")
        if not 1 <= staging_depth <= MAX_STAGING_DEPTH:
            raise LabError(f"staging_depth must be between 1 (no staging) and {MAX_STAGING_DEPTH}, not {staging_depth}: "
                           "it is how many quantum nodes may be at one device at once, one executing")
        if cpus_per_node < 1:
            raise LabError(f"cpus_per_node must be at least 1, not {cpus_per_node}")
        if not 1024 <= port_base or port_base + PORT_SPAN > 65535:
            raise LabError(f"port_base {port_base} out of range: the cluster needs ports {port_base}.."
                           f"{port_base + PORT_SPAN - 1} within 1024..65535")
        return cls(root=Path(root).absolute(), name=name, ports=Ports(port_base), cpu_nodes=cpu_nodes,
                   qpu_nodes=qpu_nodes, cpus_per_node=cpus_per_node, staging_depth=staging_depth)

    # --- node names ---------------------------------------------------------------------------
    @property
    def head_name(self) -> str:
        return f"{self.name}-head"

    @property
    def cpu_node_names(self) -> list[str]:
        return [f"{self.name}-c{i + 1}" for i in range(self.cpu_nodes)]

    @property
    def qpu_node_names(self) -> list[str]:
        return [f"{self.name}-q{i + 1}" for i in range(self.qpu_nodes)]

    @property
    def node_names(self) -> list[str]:
        return [*self.cpu_node_names, *self.qpu_node_names]

    # --- directories --------------------------------------------------------------------------
    @property
    def etc(self) -> Path:
        """Configuration files; world-readable (users' Slurm commands and slurmrestd read them)."""
        return self.root / "etc"

    @property
    def secrets(self) -> Path:
        """Key material (munge key, JWT key), mode 0700."""
        return self.root / "secrets"

    @property
    def munge_dir(self) -> Path:
        return self.root / "munge"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def run(self) -> Path:
        """PID files written by hcqw (one per daemon it started) and the record of the network it made."""
        return self.root / "run"

    @property
    def native_run(self) -> Path:
        """PID files the Slurm daemons write themselves (informational only)."""
        return self.root / "run" / "native"

    @property
    def home(self) -> Path:
        """Home directories of the lab's users (``home/<user>``, each 0700)."""
        return self.root / "home"

    def host_dir(self, node: str) -> Path:
        """Node-local files of one host (``hosts/<node>``), e.g. its resident QPU service's socket."""
        return self.root / "hosts" / node

    def qpu_service_dir(self, node: str) -> Path:
        """The resident QPU service's directory on qpu host ``node`` (owned by the service account)."""
        return self.host_dir(node) / "qpu"

    def grants_dir(self, node: str) -> Path:
        """Root's record of who holds qpu host ``node``'s device (``hcqw.service.grants``)."""
        return self.host_dir(node) / "grants"

    @property
    def grant_script(self) -> Path:
        """The qpu hosts' Prolog/Epilog (site fragment ``hcqw-qpu-grant.sh``)."""
        return self.etc / "hcqw-qpu-grant.sh"

    @property
    def job_submit_lua(self) -> Path:
        """job_submit/lua's script: slurmctld reads it next to slurm.conf."""
        return self.slurm_conf.parent / "job_submit.lua"

    def qpu_service_address(self, node: str) -> str:
        """Where the resident QPU service of ``node`` listens (``%n`` in a job's ``device_service``)."""
        return f"ipc://{self.qpu_service_dir(node)}/qpu.ipc"

    @property
    def qpu_service_address_pattern(self) -> str:
        """The resident service address with ``%n`` for the node a job runs on (``NodeJobSettings.device_service``)."""
        return f"ipc://{self.host_dir('%n')}/qpu/qpu.ipc"

    # --- files --------------------------------------------------------------------------------
    @property
    def slurm_conf(self) -> Path:
        return self.etc / "slurm.conf"

    @property
    def gres_conf(self) -> Path:
        return self.etc / "gres.conf"

    @property
    def plugstack_conf(self) -> Path:
        return self.etc / "plugstack.conf"

    @property
    def slurmdbd_conf(self) -> Path:
        return self.etc / "slurmdbd.conf"

    @property
    def jwt_key(self) -> Path:
        return self.secrets / "jwt_hs256.key"

    @property
    def munge_key(self) -> Path:
        return self.secrets / "munge.key"

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munge.socket"

    @property
    def jobcomp_log(self) -> Path:
        return self.root / "jobcomp.log"

    @property
    def params_file(self) -> Path:
        return self.params_path(self.root)

    @staticmethod
    def params_path(root: Path) -> Path:
        """Where ``up()`` records the cluster's parameters (for ``LabCluster.from_dir``)."""
        return Path(root) / "lab.json"

    @property
    def network_file(self) -> Path:
        """What ``up()`` made of the network (namespaces, links, bridge), for ``down()`` to remove."""
        return self.run / "network.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def pid_file(self, daemon: str) -> Path:
        return self.run / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.log / f"{daemon}.log"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.slurmrestd}"
