"""A real SLURM site on one machine for tests, CI and users (see ``hcqw lab --help``).

``LabCluster`` owns a directory (``root``) and a port base. ``up()`` installs
the Debian packages and the shared site venv if needed, creates the lab's
users, makes one network namespace per host on a bridge of its own
(:mod:`hcqw.lab.network`), renders the configuration (partly from the site
fragments of docs/site-guide.md) and starts, in order: a private munged (its
socket reachable from every host through the file system), slurmctld on the
head host, one slurmd per node on its own host, slurmrestd on the submit host
(127.0.0.1 only) and, on each qpu host, the resident QPU service under the
service account. Partitions: ``cpu`` (default, ``cpu_nodes`` nodes) and ``qpu``
(``qpu_nodes`` nodes, each ``Gres=qpu:<staging_depth>``, 1 unless staged). With ``accounting=True`` a private
MariaDB and slurmdbd run on the head too, with fair share and gres/qpu billing,
and each lab user has an account.

Daemons run detached and outlive the Python process that started them;
``down()`` (any process, same root) stops exactly the processes recorded in
the PID files under ``root/run`` and removes the namespaces, links and bridge
recorded there.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from hcqw import environment
from hcqw.identity import user_name
from hcqw.lab import config, host, network, packages, procs, resident, software, users
from hcqw.lab.errors import LabConfigChanged, LabError
from hcqw.lab.layout import Layout
from hcqw.lab.network import Network
from hcqw.lab.procs import DaemonSpec
from hcqw.lab.software import SiteSoftware

log = logging.getLogger(__name__)

REST_API = "v0.0.38"
SLURM_USER = "slurm"
#: Node states that mean "slurmd registered and the node is usable".
_READY_NODE_STATES = {"idle", "mixed", "allocated", "planned", "completing"}
#: PATH after the site venv's bin for commands run as lab users and services.
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"


class LabCluster:
    """A SLURM cluster of network-namespace hosts whose whole state lives under ``root``.

    Several clusters coexist on one machine when they differ in ``root``,
    ``name`` and ``port_base`` (the port base also names their network; see
    :mod:`hcqw.lab.layout` and :mod:`hcqw.lab.network`). ``simulator`` is the
    simulator of the resident QPU services (``hcqw device serve --simulator``).
    """

    def __init__(
        self,
        root: Path,
        name: str = "hcqw",
        port_base: int = 6817,
        cpu_nodes: int = 2,
        qpu_nodes: int = 2,
        cpus_per_node: int = 4,
        accounting: bool = False,
        simulator: str = resident.DEFAULT_SIMULATOR,
        staging_depth: int = 1,
    ) -> None:
        self.layout = Layout.create(Path(root), name, port_base, cpu_nodes, qpu_nodes, cpus_per_node, staging_depth)
        self.network = Network.plan(self.layout)
        self.site = SiteSoftware(software.site_dir())
        self.accounting = accounting
        self.simulator = simulator
        self._timeout: float = 60
        self._started_now: list[str] = []  # daemons started by the current up(), for rollback

    @property
    def params(self) -> dict[str, object]:
        """The constructor arguments (except root), as saved in ``root/lab.json``."""
        return {"name": self.layout.name, "port_base": self.layout.ports.base, "cpu_nodes": self.layout.cpu_nodes,
                "qpu_nodes": self.layout.qpu_nodes, "cpus_per_node": self.layout.cpus_per_node,
                "accounting": self.accounting, "simulator": self.simulator,
                "staging_depth": self.layout.staging_depth}

    @classmethod
    def from_dir(cls, root: Path, **overrides: object) -> "LabCluster":
        """The cluster last started in ``root`` (parameters from ``root/lab.json``), with ``overrides`` applied.

        Overrides that are None are ignored; without a saved file the defaults apply.
        """
        params: dict[str, object] = {}
        path = Layout.params_path(Path(root))
        if path.exists():
            try:
                params = json.loads(path.read_text())
            except ValueError as err:
                raise LabError(f"{path} is not valid JSON ({err}); delete it and pass the options explicitly") from err
            unknown = sorted(set(params) - set(inspect.signature(cls).parameters))
            if unknown:  # written by another version of hcqw (e.g. qpu_backend, now simulator)
                raise LabError(f"{path} has settings this hcqw does not know ({', '.join(unknown)}); stop the lab with "
                               f"the hcqw that started it, or delete the file and pass the options explicitly")
        params.update({k: v for k, v in overrides.items() if v is not None})
        return cls(Path(root), **params)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (f"LabCluster(root={str(self.root)!r}, name={self.cluster_name!r}, "
                f"port_base={self.layout.ports.base}, cpu_nodes={self.layout.cpu_nodes}, "
                f"qpu_nodes={self.layout.qpu_nodes}, accounting={self.accounting})")

    # ------------------------------------------------------------------ public properties
    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def cluster_name(self) -> str:
        return self.layout.name

    @property
    def slurm_conf(self) -> Path:
        return self.layout.slurm_conf

    @property
    def rest_url(self) -> str:
        return self.layout.rest_url

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point Slurm commands at this cluster.

        Merge into a subprocess environment: ``{**os.environ, **lab.env}``.
        Do not export ``SLURM_JWT`` where ``srun`` runs (slurmd rejects it).
        """
        return {"SLURM_CONF": str(self.slurm_conf), environment.MUNGE_SOCKET: str(self.layout.munge_socket)}

    @property
    def hosts(self) -> tuple[network.Host, ...]:
        """Every host: the head, the cpu and qpu nodes and the submit host (the machine's own namespace)."""
        return self.network.hosts

    @property
    def users(self) -> tuple[str, ...]:
        """The lab's ordinary users (their homes: ``home(user)``)."""
        return users.USERS

    def home(self, user: str) -> Path:
        return self.layout.home / user

    def qpu_service_address(self, node: str) -> str:
        """The resident QPU service of qpu host ``node``."""
        return self.layout.qpu_service_address(node)

    def user_env(self, user: str) -> dict[str, str]:
        """The environment a lab user's commands get on the submit host (see :meth:`exec`)."""
        return users.user_env(user, self.home(user), {
            "PATH": f"{self.site.bin}:{SYSTEM_PATH}",
            "SLURM_CONF": str(self.slurm_conf),
            environment.MUNGE_SOCKET: str(self.layout.munge_socket),
        })

    def exec(self, user: str, argv: list[str], cwd: Path | str | None = None, env: dict[str, str] | None = None,
             **run_options: object) -> subprocess.CompletedProcess:
        """Run ``argv`` as lab user ``user`` on the submit host, like a user logged in there.

        A clean environment (:meth:`user_env` plus ``env``), working directory
        ``cwd`` (default: the user's home), umask 077, in a session of its own: the user's
        process has no controlling terminal, so it cannot push input into root's (TIOCSTI).
        ``run_options`` go to :func:`subprocess.run` (``capture_output``, ``text``, ``timeout``,
        ``check``, ``input``...); the command's exit code is returned as is.
        """
        if user not in users.USERS:
            raise LabError(f"{user!r} is not a lab user; the lab's users are {', '.join(users.USERS)}")
        full_env = {**self.user_env(user), **(env or {})}
        return subprocess.run(users.as_user(user, list(argv)), env=full_env, cwd=cwd or self.home(user),
                              umask=users.USER_UMASK, start_new_session=True,
                              **run_options)  # type: ignore[call-overload]

    def secure_root(self) -> None:
        """Create the lab directory if missing; ``LabError`` unless it is root's alone (see ``host.secure_root``)."""
        host.secure_root(self.root)

    def status(self) -> dict[str, object]:
        """Hosts, users, daemons (with PIDs) and where the cluster's configuration and API are."""
        daemons = self._daemons()
        return {
            "cluster": self.cluster_name,
            "root": str(self.root),
            "up": self.is_up(),
            "slurm_conf": str(self.slurm_conf),
            "rest_url": self.rest_url,
            "subnet": self.network.subnet,
            "bridge": self.network.bridge,
            "hosts": [{"name": h.name, "role": h.role, "address": h.address, "namespace": h.netns}
                      for h in self.hosts],
            "users": [{"name": u, "role": "user", "home": str(self.home(u))} for u in users.USERS]
            + [{"name": users.SERVICE_ACCOUNT, "role": "service", "home": None}],
            "daemons": [{"name": d.name, "host": d.host, "user": d.user or "root",
                         "pid": procs.running_pid(self.layout.pid_file(d.name))} for d in daemons],
            "qpu_services": {n: self.qpu_service_address(n) for n in self.layout.qpu_node_names},
            # For a job's device_service: %n becomes the qpu node SLURM gave the job.
            "qpu_service_pattern": self.layout.qpu_service_address_pattern,
        }

    # ------------------------------------------------------------------ lifecycle
    def up(self, timeout: float = 60) -> None:
        """Install what is missing, make the hosts, write the configuration and start every daemon not running.

        Idempotent: daemons already running (same root) are kept. ``timeout`` bounds the start of the
        daemons (installing packages and the site venv comes before it, once). Returns when
        every node is usable, the REST API answers an authenticated ping and
        every resident QPU service listens. Raises :class:`LabError` with the
        log file to read if anything fails.
        """
        started = time.monotonic()
        self._timeout = timeout  # for error messages only
        if os.geteuid() != 0:
            raise LabError("the lab cluster runs slurmctld/slurmd as root: run `hcqw lab up` (or the tests) as root, "
                           "e.g. in a CI container or with sudo")
        self.secure_root()  # first: refuse a directory another user prepared before root writes anything
        packages.ensure_packages(packages.BASE_PACKAGES + (packages.ACCOUNTING_PACKAGES if self.accounting else ()))
        host.ensure_user(SLURM_USER)
        self.site = software.ensure_site_venv(self.site.root)
        users.ensure_accounts(self.layout.home)
        deadline = time.monotonic() + timeout  # for the daemons: installing above may take minutes, once
        with self._locked():
            self._prepare_files()
            daemons = self._daemons()
            self._check_ports([d for d in daemons if not self._running(d)])
            made_network = self._ensure_network()
            self._started_now = []
            try:
                self._start_all({d.name: d for d in daemons}, deadline)
            except BaseException:
                # Leave nothing half-started behind (daemons that ran before this call stay).
                for stage in sorted({_stop_order(name) for name in self._started_now}):
                    with contextlib.suppress(LabError):
                        self._stop_all([name for name in self._started_now if _stop_order(name) == stage])
                if made_network:
                    network.destroy(self.layout.network_file)
                raise
        log.info("lab cluster %s up in %.1f s (%s)", self.cluster_name, time.monotonic() - started, self.root)

    def _start_all(self, by_name: dict[str, DaemonSpec], deadline: float) -> None:
        """Start the daemons in dependency order, each only once the ones it needs answer."""
        started = time.monotonic()
        self._start(by_name["munged"])
        self._wait(by_name["munged"], deadline, self._munge_ready)
        if self.accounting:
            from hcqw.lab import accounting

            accounting.start(self, by_name, deadline)
        ctld = by_name["slurmctld"]
        self._start(ctld)
        self._wait(ctld, deadline, self._ctld_ready)
        # slurmds, slurmrestd and the resident QPU services start in parallel; they only need slurmctld
        # (the services not even that: they load their simulator meanwhile).
        services = [by_name[resident.daemon_name(n)] for n in self.layout.qpu_node_names]
        for service in services:
            self._clear_socket(service)
            self._start(service)
        slurmds = [d for d in by_name.values() if d.name.startswith("slurmd-")]
        for d in slurmds:
            self._start(d)
        restd = by_name["slurmrestd"]
        self._start(restd)
        self._wait_nodes(slurmds, deadline)
        log.info("all %d nodes idle %.1f s after the first daemon started", len(slurmds), time.monotonic() - started)
        self._wait(restd, deadline, self._rest_ready)
        for service, node in zip(services, self.layout.qpu_node_names):
            self._wait(service, deadline, lambda node=node: self._qpu_socket(node).is_socket(),
                       what=f"the resident QPU service of {node}")

    def _ensure_network(self) -> bool:
        """Make the hosts' namespaces and bridge unless they exist; True if made now."""
        record = self.layout.network_file
        if record.exists():
            if network.Network.from_json(record.read_text()) == self.network and network.is_up(self.network):
                return False
            network.destroy(record)  # a partial or outdated network of this lab
        network.create(self.network, record)
        return True

    def _qpu_socket(self, node: str) -> Path:
        return Path(self.layout.qpu_service_address(node).removeprefix("ipc://"))

    def _clear_socket(self, service: DaemonSpec) -> None:
        """Remove a dead service's socket file, so readiness means the new one listens."""
        if not self._running(service):
            self._qpu_socket(service.host).unlink(missing_ok=True)

    def down(self) -> None:
        """Stop every daemon this cluster started (by PID file), then remove its namespaces, links and bridge.

        Running jobs are cancelled first.

        Idempotent and safe: only processes recorded in this root's PID files,
        with matching start times, are signalled. PID files of daemons that
        the current parameters do not know (e.g. nodes of an earlier, larger
        configuration) are honoured too, so nothing is left behind.
        """
        if not self.layout.run.exists():
            return
        with self._locked():
            known = {d.name: d for d in self._daemons()}
            names = set(known) | {p.stem for p in self.layout.run.glob("*.pid")}
            if self._running(known["slurmctld"]):
                self._cancel_all_jobs()
            # Each stage at once (e.g. all slurmds), stages in reverse start order.
            for stage in sorted({_stop_order(name) for name in names}):
                self._stop_all([name for name in names if _stop_order(name) == stage])
            network.destroy(self.layout.network_file)
        log.info("lab cluster %s down (%s)", self.cluster_name, self.root)

    def is_up(self) -> bool:
        """True if every daemon of this cluster runs and its hosts exist (process and file checks; cheap)."""
        if not self.root.exists():
            return False
        return all(self._running(d) for d in self._daemons()) and network.is_up(self.network)

    def daemon_pids(self) -> dict[str, int | None]:
        """Each daemon of this cluster and its PID, or None if it is not running."""
        return {d.name: procs.running_pid(self.layout.pid_file(d.name)) for d in self._daemons()}

    def token(self, lifespan: int = 600, username: str | None = None) -> str:
        """A JWT for the REST API (``X-SLURM-USER-TOKEN``), from ``scontrol token``.

        ``username`` defaults to the calling user; send it as ``X-SLURM-USER-NAME``.
        """
        argv = ["scontrol", "token", f"lifespan={int(lifespan)}"]
        if username:
            argv.append(f"username={username}")
        result = self._client(argv, check=False)
        for line in result.stdout.splitlines():
            if line.startswith("SLURM_JWT="):
                return line.split("=", 1)[1].strip()
        # stdout would hold the token on success only; stderr is safe to show.
        raise LabError(f"`scontrol token` failed (exit {result.returncode}): {result.stderr.strip()}; "
                       f"is the lab cluster up? see {self.layout.log_file('slurmctld')}")

    # ------------------------------------------------------------------ daemons
    def _daemons(self) -> list[DaemonSpec]:
        lay = self.layout
        conf = str(lay.slurm_conf)
        head = self.network.head.name
        daemons = [
            DaemonSpec(
                "munged",
                ["munged", "-F", f"--socket={lay.munge_socket}", f"--key-file={lay.munge_key}",
                 f"--pid-file={lay.native_run / 'munged.pid'}", f"--seed-file={lay.munge_dir / 'munged.seed'}",
                 f"--log-file={lay.log_file('munged')}", "--num-threads=4"],
                log_file=lay.log_file("munged"),
                out_file=lay.log_file("munged"),
            ),
        ]
        if self.accounting:
            from hcqw.lab import accounting

            daemons += accounting.daemons(self)
        daemons.append(
            # -i: start even if a state file is damaged (e.g. after a power cut of the VM).
            DaemonSpec("slurmctld", ["slurmctld", "-D", "-i", "-f", conf], log_file=lay.log_file("slurmctld"),
                       out_file=lay.log / "slurmctld.out", host=head)
        )
        for node in lay.node_names:
            daemons.append(
                DaemonSpec(f"slurmd-{node}", ["slurmd", "-D", "-N", node, "-f", conf],
                           log_file=lay.log_file(f"slurmd-{node}"), out_file=lay.log / f"slurmd-{node}.out", host=node)
            )
        daemons.append(
            # slurmrestd refuses to run as root; SLURM_JWT=daemon makes it forward each request's token
            # instead of rejecting everything. On the submit host's loopback only: tokens never cross the
            # lab network in clear (a site puts TLS in front of it).
            DaemonSpec("slurmrestd",
                       ["slurmrestd", "-f", conf, "-u", SLURM_USER, "-a", "rest_auth/jwt", "-s", f"openapi/{REST_API}",
                        f"127.0.0.1:{lay.ports.slurmrestd}"],
                       log_file=lay.log_file("slurmrestd"), out_file=lay.log_file("slurmrestd"),
                       port=lay.ports.slurmrestd, extra_env={"SLURM_JWT": "daemon"})
        )
        for node in lay.qpu_node_names:
            user, argv = resident.service_command(resident.render_unit(lay, self.site, node, self.simulator))
            name = resident.daemon_name(node)
            env = users.user_env(user, lay.qpu_service_dir(node), {
                "PATH": f"{self.site.bin}:{SYSTEM_PATH}", environment.MUNGE_SOCKET: str(lay.munge_socket)})
            daemons.append(DaemonSpec(name, argv, log_file=lay.log_file(name), out_file=lay.log_file(name), host=node,
                                      user=user, env=env))
        return daemons

    def _running(self, daemon: DaemonSpec) -> bool:
        return procs.running_pid(self.layout.pid_file(daemon.name)) is not None

    def _start(self, daemon: DaemonSpec) -> None:
        if self._running(daemon):
            log.debug("%s already running", daemon.name)
            return
        env = daemon.env if daemon.env is not None else {**self._base_env(), **daemon.extra_env}
        argv = [*self.network.host(daemon.host).enter(daemon.user), *daemon.argv]
        procs.spawn(daemon.name, argv, env, self.layout.pid_file(daemon.name), daemon.out_file, cwd=self.root)
        self._started_now.append(daemon.name)

    def _stop_all(self, names: list[str]) -> None:
        try:
            stopped = procs.stop_all({name: self.layout.pid_file(name) for name in names})
        except OSError as err:
            raise LabError(f"could not stop a daemon: {err}; see the logs in {self.layout.log}") from err
        if stopped:
            log.debug("stopped %s", ", ".join(stopped))

    def _wait(self, daemon: DaemonSpec, deadline: float, ready: Callable[[], bool], what: str | None = None) -> None:
        """Poll ``ready`` until it holds; fail fast (with the log tail) if the daemon dies."""
        what = what or daemon.name
        delay = 0.02
        while True:
            if not self._running(daemon):
                raise LabError(f"{daemon.name} exited during startup; see {daemon.log_file}. Last lines:\n"
                               f"{procs.tail(daemon.out_file) or procs.tail(daemon.log_file)}")
            if ready():
                return
            if time.monotonic() >= deadline:
                raise LabError(f"{what} did not become ready within {self._timeout:g} s; see {daemon.log_file}. "
                               f"Last lines:\n"
                               f"{procs.tail(daemon.log_file)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def _wait_nodes(self, slurmds: list[DaemonSpec], deadline: float) -> None:
        pending: dict[str, str] = {}

        def ready() -> bool:
            for d in slurmds:
                if not self._running(d):
                    raise LabError(f"{d.name} exited during startup; see {d.log_file}. Last lines:\n"
                                   f"{procs.tail(d.log_file)}")
            states = self._node_states()
            pending.clear()
            pending.update({n: s for n, s in states.items() if not _node_ready(s)})
            pending.update({n: "not registered" for n in self.layout.node_names if n not in states})
            return not pending

        delay = 0.02
        while not ready():
            if time.monotonic() >= deadline:
                detail = ", ".join(f"{n}={s}" for n, s in sorted(pending.items()))
                raise LabError(f"nodes did not become idle within {self._timeout:g} s ({detail}); see "
                               f"{self.layout.log / 'slurmd-<node>.log'} and {self.layout.log_file('slurmctld')}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    # ------------------------------------------------------------------ readiness probes
    def _munge_ready(self) -> bool:
        return self.layout.munge_socket.is_socket()

    def _ctld_ready(self) -> bool:
        result = self._client(["scontrol", "ping"], check=False, timeout=15)
        return result.returncode == 0 and " is UP" in result.stdout

    def _node_states(self) -> dict[str, str]:
        result = self._client(["sinfo", "-h", "-N", "-o", "%N|%T"], check=False, timeout=15)
        states: dict[str, str] = {}
        for line in result.stdout.splitlines():
            node, _, state = line.partition("|")
            states[node.strip()] = state.strip()
        return states

    def _rest_ready(self) -> bool:
        user = user_name(os.geteuid())
        try:
            token = self.token(lifespan=60)
        except LabError:
            return False
        request = urllib.request.Request(
            f"{self.rest_url}/slurm/{REST_API}/ping",
            headers={"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                body = json.load(response)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            return False
        return not body.get("errors")

    # ------------------------------------------------------------------ helpers
    def _base_env(self) -> dict[str, str]:
        """os.environ without the caller's SLURM_* (a foreign SLURM_CONF or SLURM_JWT would misdirect us)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
        env.update(self.env)
        return env

    def _client(self, argv: list[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command against this cluster."""
        try:
            result = subprocess.run(argv, env=self._base_env(), capture_output=True, text=True, timeout=timeout,
                                    check=False)
        except subprocess.TimeoutExpired as err:
            raise LabError(f"`{' '.join(argv[:2])}` timed out after {timeout} s; see "
                           f"{self.layout.log_file('slurmctld')}") from err
        if check and result.returncode != 0:
            raise LabError(f"`{' '.join(argv)}` failed (exit {result.returncode}): {result.stderr.strip()}")
        return result

    def _cancel_all_jobs(self) -> None:
        """Cancel every unfinished job so no slurmstepd outlives its slurmd."""
        result = self._client(["squeue", "-h", "-o", "%A", "-t", "PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING"],
                              check=False)
        job_ids = sorted(set(result.stdout.split()))
        if not job_ids:
            return
        log.info("cancelling %d unfinished job(s) before stopping the cluster", len(job_ids))
        self._client(["scancel", *job_ids], check=False)
        deadline = time.monotonic() + 10  # KillWait=2 plus margin
        while time.monotonic() < deadline:
            left = self._client(["squeue", "-h", "-o", "%A", "-t", "RUNNING,COMPLETING,CONFIGURING,SUSPENDED"],
                                check=False).stdout.split()
            if not left:
                return
            time.sleep(0.1)
        log.warning("jobs still running after cancel: %s", " ".join(left))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up()/down() on one root across processes (e.g. pytest-xdist workers), once the root is
        known to be root's alone (``host.secure_root``)."""
        self.secure_root()
        with host.locked(self.layout.lock_file):
            yield

    def _check_ports(self, daemons: list[DaemonSpec]) -> None:
        """Fail early, naming the port, instead of letting a daemon of the submit host die on bind().

        (The other hosts are namespaces of this lab's own: nothing else binds there.)"""
        for daemon in daemons:
            if daemon.port is not None and not host.port_free(daemon.port):
                raise LabError(f"port {daemon.port} (for {daemon.name}) is already in use on 127.0.0.1: "
                               f"another lab cluster or Slurm runs there; choose another --port-base")

    def _prepare_files(self) -> None:
        """Create directories, keys (once) and configuration files.

        Refuses to change the configuration under running daemons: they would
        keep the old one and the cluster would be inconsistent.
        """
        lay = self.layout
        # The root was checked by _locked (root's, below root's directories): nothing below is followed.
        for directory, mode in ((lay.root, 0o755), (lay.etc, 0o755), (lay.secrets, 0o700), (lay.munge_dir, 0o755),
                                (lay.state, 0o700), (lay.spool, 0o755), (lay.log, 0o755), (lay.run, 0o755),
                                (lay.native_run, 0o755)):
            host.ensure_dir(directory, mode)
        # slurmd fails launches if its spool directory (SlurmdSpoolDir=.../%n) is missing.
        for node in lay.node_names:
            host.ensure_dir(lay.spool / node, 0o755)
        users.ensure_homes(lay.home)
        for node in lay.qpu_node_names:
            host.ensure_dir(lay.host_dir(node).parent, 0o755)
            host.ensure_dir(lay.host_dir(node), 0o755)
            # The service account owns its directory; users may enter it to reach the socket. Set-group-id
            # to the admins' group: the service's log is created in it (0640) readable by them.
            host.ensure_dir(lay.qpu_service_dir(node), 0o2755, users.ids(users.SERVICE_ACCOUNT)[0], users.admin_gid())
            # Its logs name every user's workflows and sessions: the service's, root's and the admins' only.
            host.ensure_file(resident.metrics_log(lay, node), 0o640, users.ids(users.SERVICE_ACCOUNT)[0],
                             users.admin_gid())
            host.ensure_file(lay.log_file(resident.daemon_name(node)), 0o640, 0, users.admin_gid())
            # Root's record of who holds this host's device (written by the Prolog/Epilog, read by the service).
            host.ensure_dir(lay.grants_dir(node), 0o755)
        # munged insists on a key readable only by its own user; JWT wants >= 32 bytes.
        host.write_secret(lay.munge_key, 1024)
        host.write_secret(lay.jwt_key, 32)

        files = {
            lay.slurm_conf: config.render_slurm_conf(lay, self.network, self.accounting),
            lay.gres_conf: config.render_gres_conf(lay, self.network),
            lay.plugstack_conf: config.render_plugstack_conf(),
            lay.grant_script: config.render_grant_script(lay),
            lay.job_submit_lua: config.render_job_submit(),
        }
        if self.accounting:
            from hcqw.lab import accounting

            files.update(accounting.config_files(self))
        changed = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
        running = [d.name for d in self._daemons() if self._running(d)]
        if changed and running:
            raise LabConfigChanged(f"the lab cluster in {lay.root} is running with a different configuration "
                           f"({', '.join(p.name for p in changed)} would change; running: {', '.join(running)}). "
                           f"Stop it first: `hcqw lab down --dir {lay.root}`")
        for path, text in files.items():
            if path in changed:
                host.write_file(path, text, 0o600 if path == lay.slurmdbd_conf else 0o755 if path == lay.grant_script
                                else 0o644)
        # slurmrestd (user slurm) and the lab's users read the configuration.
        host.check_reachable_by(SLURM_USER, lay.slurm_conf)
        # Remember the parameters so `hcqw lab status/down --dir X` need not repeat them.
        host.write_file(lay.params_file, json.dumps(self.params, indent=2) + "\n", 0o644)


def _stop_order(daemon_name: str) -> int:
    """Reverse start order: REST first, munged (which everything authenticates through) last."""
    order = {"slurmrestd": 0, "slurmctld": 3, "slurmdbd": 4, "mariadb": 5, "munged": 6}
    if daemon_name.startswith("qpu-service-"):
        return 0
    return order.get(daemon_name, 1 if daemon_name.startswith("slurmd-") else 2)


def _node_ready(state: str) -> bool:
    # sinfo appends '*' for "not responding" and other flag characters (~ # ! % $ @ ^ -).
    if state.endswith("*"):
        return False
    return state.rstrip("~#!%$@^-+") in _READY_NODE_STATES
