"""The service process: backend loaded once, a dispatcher, a transport and the loop between them.

Keeping this process alive is the point ("hot runtime"): the cirq/qsimcirq import and
simulator set-up (seconds) are paid once per service, not once per quantum node.
"""

from __future__ import annotations

import grp
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hcqw.device.backend import make_backend
from hcqw.errors import DeviceError
from hcqw.identity import uid_of
from hcqw.paths import state_dir
from hcqw.service import protocol as P
from hcqw.service import credential
from hcqw.service.auth import Authenticator, resolve_mode
from hcqw.service.grants import Grants
from hcqw.service.dispatcher import Dispatcher
from hcqw.service.executor import Executor
from hcqw.service.exporter import MetricsServer, ServiceMonitor
from hcqw.service.limits import WorkLimits
from hcqw.service.policy import PriorityCaps, PriorityPolicy
from hcqw.service.transport import ServerTransport, default_address, make_server_transport, publish_address
from hcqw.trust import open_nofollow

log = logging.getLogger(__name__)

_DRAIN_BATCH = 256  # messages handled per loop turn before the device gets its turn (no starvation)
_FLUSH_GRACE = 0.05  # s between the last reply and closing the transport
_COLLECT_EVERY = 0.001  # s: how often the loop looks for the executor's result while a job runs there


def default_metrics_path() -> Path:
    return state_dir() / "service" / "metrics.jsonl"


@dataclass
class ServiceConfig:
    address: str = ""
    simulator: str = "qsim"
    threads: int | None = None
    seed: int | None = None
    policy: str = "fifo"
    metrics: str | None = None  # path; "" disables
    session_timeout: float = 60.0
    max_message: int = P.MAX_MESSAGE_BYTES
    address_file: str | None = None
    mpi_max_clients: int | None = None
    mpi_clients_group: str | None = None  # who may connect over MPI (default: the service's own group)
    priority_grants: tuple[tuple[str, int], ...] = ()  # (user, highest priority) above the default cap 0
    log_group: str | None = None  # the group (admins) that may read the metrics log, which is 0640
    auth: str = "auto"  # auto, munge or none (hcqw.service.auth)
    operators: tuple[str, ...] = ()  # besides the service's own account and root
    owner_only: bool = False  # serve only the service's own uid (a job's gateway)
    limits: WorkLimits = WorkLimits()
    executor: bool = True  # long executions in a child process, so the loop keeps serving
    exclusive_sessions: bool = False  # one executing session at a time, the others staged (dispatcher.py)
    grants: str | None = None  # a resident service: SLURM's grant directory (hcqw.service.grants)
    slurmd_spool: str = "/var/spool/slurmd"  # with grants: this host's SlurmdSpoolDir, where running steps listen
    max_exclusive_seconds: float = 900.0  # with exclusive_sessions: the most one session keeps the device
    metrics_address: str | None = None  # IP:PORT of the Prometheus endpoint (hcqw.service.exporter); None: off


class Service:
    """Owns the device. ``run()`` serves until shutdown, drain completion or SIGTERM/SIGINT."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        started = time.perf_counter()
        address = config.address or default_address()
        mode = resolve_mode(config.auth, address)
        auth = Authenticator(mode, operator_names=config.operators, owner_only=config.owner_only,
                             grants=Grants(config.grants, config.slurmd_spool) if config.grants else None)
        backend = make_backend(config.simulator, threads=config.threads, seed=config.seed)
        # Forked before any socket, MPI port or thread exists: the child inherits only the backend.
        executor = Executor(backend, config.seed) if config.executor else None
        metrics = default_metrics_path() if config.metrics is None else (config.metrics or None)
        if metrics:
            private_log(Path(metrics), config.log_group)
        PriorityPolicy.caps = PriorityCaps(grants={uid_of(user): cap for user, cap in config.priority_grants})
        self.monitor = ServiceMonitor() if config.metrics_address else None
        self.dispatcher = Dispatcher(backend, policy=config.policy, metrics_path=metrics,
                                     session_timeout=config.session_timeout, max_message=config.max_message,
                                     auth=auth, limits=config.limits, executor=executor,
                                     exclusive_sessions=config.exclusive_sessions,
                                     max_exclusive_seconds=config.max_exclusive_seconds, monitor=self.monitor)
        # Before the transport: a taken metrics port fails the start-up before any client could connect.
        self.metrics_server = (MetricsServer(config.metrics_address, self.dispatcher, self.monitor)
                               if self.monitor else None)
        options = {"max_clients": config.mpi_max_clients,
                   "clients_group": mpi_group(config.mpi_clients_group)} if address.startswith("mpi:") else {}
        try:
            self.transport: ServerTransport = make_server_transport(address, config.max_message, mode == "munge",
                                                                    **options)
        except BaseException:
            if self.metrics_server is not None:
                self.metrics_server.close()
            raise
        self.address = self.transport.address
        key = getattr(self.transport, "server_key", None)
        auth.service_id = key.ident if key is not None else credential.NO_KEY
        self._stop = False
        self._closed = False
        log.info("QPU service (%s, policy %s, auth %s%s) ready at %s after %.2f s", backend.name, config.policy,
                 mode, ", owner only" if config.owner_only else "", self.address, time.perf_counter() - started)
        if config.address_file:
            publish_address(config.address_file, self.address)

    def request_stop(self, *_: object) -> None:
        self._stop = True

    def run(self, until: Callable[[], str | None] | None = None, wakeup_cap: float = 0.5) -> str:
        """Serve until shut down, stopped, or ``until()`` returns a reason to stop; return why it stopped.

        ``until`` is checked at least every ``wakeup_cap`` seconds; a hetjob gateway uses it for
        its one-session lifetime rules."""
        try:
            while not self.dispatcher.finished:
                if self._stop:
                    self._send(self.dispatcher.shutdown())
                    return "stop requested"
                reason = until() if until else None
                if reason:
                    return reason
                self.step(wakeup_cap)
            return "shut down"
        finally:
            self.close()

    def step(self, wakeup_cap: float = 0.5) -> None:
        """One turn of the loop: handle waiting messages (a bounded batch), expire, start or collect a job."""
        d, t = self.dispatcher, self.transport
        wait = 0.0 if d.runnable() else d.next_wakeup(wakeup_cap)
        if d.running is not None:
            wait = min(wait, _COLLECT_EVERY)
        message = t.recv(wait)
        handled = 0
        while message is not None:
            self._send(d.handle(*message))
            if self.monitor:  # a run queued on an idle device: executing, even if it also ends this turn
                self.monitor.observe_status(d.status())
            handled += 1
            # With work queued, take in what else has arrived first, so the policy chooses among
            # all of it; with none, the next turn's blocking receive is as quick as a check here.
            message = t.recv(0.0) if handled < _DRAIN_BATCH and d.runnable() else None
        if d.running is not None:
            self._send(d.collect())
        self._send(d.expire())
        if d.runnable():
            started = time.monotonic()
            self._send(d.run_next())
            if d.running is None:  # it ran inline: the loop did not listen meanwhile
                d.quiet_for(time.monotonic() - started)
        if self.monitor:
            self.monitor.observe_status(d.status())

    def _send(self, replies) -> None:
        for peer, frames in replies:
            self.transport.send(peer, frames)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        log.info("QPU service stopping (%d jobs served)", self.dispatcher.served)
        # ZeroMQ sockets close with LINGER 0: give the last replies (e.g. to close or shutdown) time to leave.
        time.sleep(_FLUSH_GRACE)
        self.transport.close()
        if self.metrics_server is not None:
            self.metrics_server.close()
        self.dispatcher.close()
        if self.config.address_file:
            Path(self.config.address_file).unlink(missing_ok=True)


def serve(config: ServiceConfig) -> None:
    """Run a service in this process until it is shut down; SIGTERM/SIGINT shut it down cleanly."""
    service = Service(config)
    signal.signal(signal.SIGTERM, service.request_stop)
    signal.signal(signal.SIGINT, service.request_stop)
    service.run()


def mpi_group(name: str | None) -> int | None:
    """The gid of the MPI clients' group ``name`` (None: the service's own group)."""
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise DeviceError(f"no group {name!r} for --mpi-clients-group: create it (groupadd) and add the users "
                          "who may use the service") from None


def private_log(path: Path, group: str | None) -> None:
    """Create the service's metrics log 0640 (its own and ``group``'s: every user's workflows and session
    ids are in it), never through a link; an existing log of the service's is made so too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            if group is not None:
                try:
                    gid = grp.getgrnam(group).gr_gid
                    if os.fstat(fd).st_gid != gid:  # e.g. not inherited from a set-group-id directory
                        os.fchown(fd, -1, gid)
                except (KeyError, PermissionError):
                    raise DeviceError(f"cannot give the log {path} to group {group!r}: create the group and make "
                                      f"the service's account a member (SupplementaryGroups= in its unit), or "
                                      f"give the log's directory to the group, set-group-id (chmod 2750)") from None
            os.fchmod(fd, 0o640)
    finally:
        os.close(fd)
