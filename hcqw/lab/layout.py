"""Where a lab cluster keeps its files and which ports it uses.

Everything a lab cluster writes lives under its root directory, so several
clusters coexist on one host as long as they have different roots, names and
port bases. Nothing outside the root is touched (no /etc/slurm, no /run/munge).

Port layout, all relative to ``port_base`` (every service binds 127.0.0.1 or
is reached only through it)::

    port_base + 0            slurmctld
    port_base + 1            slurmrestd (HTTP, 127.0.0.1 only)
    port_base + 2            slurmdbd        (accounting=True only)
    port_base + 3            mariadb         (accounting=True only, 127.0.0.1)
    port_base + 9            slurmd of the qpu node  <name>-q1
    port_base + 10 + i       slurmd of cpu node      <name>-c<i+1>,  i = 0 .. cpu_nodes-1

A cluster therefore spans ``10 + cpu_nodes`` ports; keep port bases of
clusters on the same host at least that far apart (the test suite uses 6900
and 6950, the default is Slurm's own 6817).
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
PORT_SPAN_FIXED = 10


@dataclass(frozen=True)
class Ports:
    """The TCP ports of one lab cluster (see the module docstring)."""

    base: int
    cpu_nodes: int

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
    def qpu_node(self) -> int:
        return self.base + 9

    def cpu_node(self, index: int) -> int:
        """Port of the slurmd of cpu node ``index`` (0-based)."""
        return self.base + PORT_SPAN_FIXED + index

    @property
    def span(self) -> int:
        return PORT_SPAN_FIXED + self.cpu_nodes


@dataclass(frozen=True)
class Layout:
    """Paths and names of one lab cluster, derived from its constructor arguments."""

    root: Path
    name: str
    ports: Ports
    cpus_per_node: int

    @classmethod
    def create(cls, root: Path, name: str, port_base: int, cpu_nodes: int, cpus_per_node: int) -> "Layout":
        if not _NAME_RE.match(name):
            raise LabError(
                f"invalid lab cluster name {name!r}: use 1-32 characters a-z, 0-9 and '_', starting with a letter "
                "(it prefixes node names and database tables)"
            )
        if not 1 <= cpu_nodes <= MAX_CPU_NODES:
            raise LabError(f"cpu_nodes must be between 1 and {MAX_CPU_NODES}, not {cpu_nodes}")
        if cpus_per_node < 1:
            raise LabError(f"cpus_per_node must be at least 1, not {cpus_per_node}")
        ports = Ports(port_base, cpu_nodes)
        if not 1024 <= port_base or port_base + ports.span > 65535:
            raise LabError(f"port_base {port_base} out of range: the cluster needs ports {port_base}..{port_base + ports.span - 1} "
                           "within 1024..65535")
        return cls(root=Path(root).absolute(), name=name, ports=ports, cpus_per_node=cpus_per_node)

    # --- node names ---------------------------------------------------------------------------
    @property
    def cpu_node_names(self) -> list[str]:
        return [f"{self.name}-c{i + 1}" for i in range(self.ports.cpu_nodes)]

    @property
    def qpu_node_name(self) -> str:
        return f"{self.name}-q1"

    @property
    def node_names(self) -> list[str]:
        return [*self.cpu_node_names, self.qpu_node_name]

    def node_port(self, node: str) -> int:
        if node == self.qpu_node_name:
            return self.ports.qpu_node
        return self.ports.cpu_node(self.cpu_node_names.index(node))

    # --- directories --------------------------------------------------------------------------
    @property
    def etc(self) -> Path:
        """Configuration files; world-readable because slurmrestd runs as user ``slurm``."""
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
        """PID files written by hcqw (one per daemon it started)."""
        return self.root / "run"

    @property
    def native_run(self) -> Path:
        """PID files the Slurm daemons write themselves (informational only)."""
        return self.root / "run" / "native"

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
    def lock_file(self) -> Path:
        return self.root / ".lock"

    def pid_file(self, daemon: str) -> Path:
        return self.run / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.log / f"{daemon}.log"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.slurmrestd}"
