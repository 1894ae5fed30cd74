"""The device gateway: what the qpu component of a quantum-node hetjob runs.

It is the QPU service (``hcqw.service``) serving exactly one workflow node -- or, with
``upstream`` set, a relay to the service node's resident QPU service (``relay.py``) -- with
three additions that make the allocation safe to hand out:

- it listens on the qpu node's cluster address, found at run time (``address.py``), and
  writes the bound endpoint into the job's private directory (``address_file``), where the
  node runtime in component 0 -- on another host -- waits for it;
- it exits on its own when its one client is gone: no session opened within
  ``connect_timeout`` (component 0 never came; 0: no such limit, for a command that holds the
  qpu node for its whole run unless it opens a lease), or the session ended -- closed, or
  expired after ``heartbeat_timeout`` s without a request or heartbeat (component 0 was
  killed, even with SIGKILL);
- when it exits for any reason it ends its own SLURM component (``release_job``, i.e.
  ``$SLURM_JOB_ID_HET_GROUP_1``), because a process exiting does not free a hetjob
  component: only ``scancel`` of the component or the end of the whole job does.

Run it as ``python -m hcqw.hetjob.gateway --address-file F --release-job ID ...``
(``srun --het-group=1`` in the batch script; under ``mpiexec -n 1`` for the MPI transport).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from hcqw.hetjob.address import cluster_address, expand_node, tcp_bind_address
from hcqw.paths import QPU_RELEASED

log = logging.getLogger(__name__)

#: Under MPI the gateway keeps serving this long after the session ended, so the node's
#: ``Disconnect`` calls (collective) find their partner; an unmatched one makes
#: MPI_Finalize abort. The node does not wait for it: it releases the component at once.
MPI_LINGER_S = 3.0


@dataclass
class GatewayConfig:
    address: str  # "" (ZeroMQ on this node's cluster address, port chosen at bind) or mpi:file:/path
    address_file: str
    simulator: str = "qsim"
    threads: int | None = None
    metrics: str | None = ""  # dispatcher's exec/hold log; "" disables
    heartbeat_timeout: float = 5.0
    connect_timeout: float = 120.0
    release_job: str | None = None  # this component's SLURM job id, cancelled on exit
    upstream: str | None = None  # a resident QPU service on this node: relay to it instead of simulating here
    upstream_timeout: float = 10.0


def release_component(job_id: str | None, job_dir: Path | None = None) -> None:
    """``scancel`` this component, riding out a controller outage; never raises (the gateway is on its
    way out anyway, and the batch script's trap in component 0 is the backstop). Not if the node in
    component 0 has already released it (``hcqw.paths.QPU_RELEASED`` in ``job_dir``)."""
    if not job_id:
        return
    if job_dir is not None and (job_dir / QPU_RELEASED).exists():
        log.info("qpu component %s already released by the node", job_id)
        return
    from hcqw.slurm import SlurmError
    from hcqw.slurm.backend import ride_out
    from hcqw.slurm.commands import run_slurm

    try:
        proc = ride_out(lambda: run_slurm(["scancel", job_id], check=False), f"scancel {job_id}")
        if proc.returncode != 0:
            log.warning("scancel %s exited %d: %s", job_id, proc.returncode, proc.stderr.strip())
        else:
            log.info("released qpu component %s", job_id)
    except SlurmError as err:
        log.warning("could not release qpu component %s: %s", job_id, err)


def bind_address(config: GatewayConfig) -> str:
    """What the gateway binds: the given MPI address, else ZeroMQ on this node's cluster address."""
    return config.address or tcp_bind_address(cluster_address())


def run_gateway(config: GatewayConfig) -> str:
    """Serve one node until its session ends; return why the gateway stopped."""
    # Finding the bind address asks slurmctld (``scontrol show node``); this process imports what it
    # serves with meanwhile. Both are start-up inside the qpu component's charged allocation.
    lookup = _Lookup(bind_address, config)
    if config.upstream:
        import hcqw.hetjob.relay  # noqa: F401
        import hcqw.service.transport_zmq  # noqa: F401
    else:
        import hcqw.service.server  # noqa: F401
    config = replace(config, address=lookup.result(),
                     upstream=expand_node(config.upstream) if config.upstream else None)
    if config.upstream:
        return _run_relay(config)
    from hcqw.service.server import Service, ServiceConfig

    mpi = config.address.startswith("mpi:")
    service = Service(ServiceConfig(
        address=config.address, simulator=config.simulator, threads=config.threads, metrics=config.metrics,
        session_timeout=config.heartbeat_timeout, address_file=config.address_file,
        # MUNGE authenticates whoever connects to the cluster address; only the job's owner is served.
        owner_only=True,
        # The node connects once (its client heartbeats in the background on the same
        # connection); then the accept thread stops, so it does not busy-poll a core for the
        # rest of the block.
        mpi_max_clients=1 if mpi else None,
    ))
    signal.signal(signal.SIGTERM, service.request_stop)
    signal.signal(signal.SIGINT, service.request_stop)
    has_session = lambda: bool(service.dispatcher.sessions)  # noqa: E731
    return service.run(until=_lifetime(has_session, config, MPI_LINGER_S if mpi else 0.0), wakeup_cap=0.2)


def _run_relay(config: GatewayConfig) -> str:
    from hcqw.hetjob.relay import Relay
    from hcqw.metrics import MetricsLog
    from hcqw.service import servicekey
    from hcqw.service import protocol as P
    from hcqw.service.transport import make_client_transport, make_server_transport, publish_address

    mpi = config.address.startswith("mpi:")
    options: dict = {"max_clients": 1} if mpi else {}
    client_key = Path(config.address_file + ".client")
    if not mpi:
        # The one client this gateway admits: whoever reads this key in the job's private directory (its
        # owner's node). Anyone else fails the CurveZMQ handshake: nothing of theirs reaches the relay.
        client_key.unlink(missing_ok=True)
        options["clients"] = frozenset({servicekey.write_client_key(client_key)})
    # Authenticated: the relay checks every open's MUNGE credential is the job owner's (hcqw.hetjob.relay).
    server = make_server_transport(config.address, P.MAX_MESSAGE_BYTES, authenticated=True, **options)
    if not mpi:
        server.address = servicekey.card(server.endpoint, replace(server.server_key, client=str(client_key)))
    relay = Relay(server, config.upstream, MetricsLog(config.metrics) if config.metrics else None)
    try:
        relay.check_upstream(config.upstream_timeout)
    except BaseException:
        relay.close()
        raise
    publish_address(config.address_file, server.address)
    log.info("relaying %s to the resident QPU service at %s", server.address, config.upstream)
    stop: list[str] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append("SIGTERM"))
    signal.signal(signal.SIGINT, lambda *_: stop.append("SIGINT"))
    lifetime = _lifetime(lambda: bool(relay.sessions), config, MPI_LINGER_S if mpi else 0.0)
    # A link of our own to the resident service, only to watch it: if the service dies (its socket
    # closes) or stops answering, the node's block cannot go on, so the gateway stops and frees the
    # qpu node instead of relaying into the void (the node sees us go and reads why in our log).
    watch = make_client_transport(config.upstream, liveness_timeout=config.heartbeat_timeout)

    def until() -> str | None:
        if stop:
            return f"{stop[0]} received"
        if relay.sessions and time.monotonic() - relay.last_heard > config.heartbeat_timeout:
            return f"the node was silent for {config.heartbeat_timeout:g} s"
        down = watch.disconnected_for()
        if down > config.heartbeat_timeout / 2:
            return (f"the resident QPU service at {config.upstream} on {_node_name()} went away "
                    f"(no connection for {down:.1f} s); see its log on that node")
        return lifetime()

    try:
        return relay.run(until)
    finally:
        watch.close()
        client_key.unlink(missing_ok=True)


class _Lookup:
    """``function(*args)`` in a thread of its own; ``result()`` waits for it and returns it or raises its error."""

    def __init__(self, function: Callable[..., str], *args: object):
        self._outcome: list = []
        self._thread = threading.Thread(target=self._run, args=(function, *args), daemon=True)
        self._thread.start()

    def _run(self, function: Callable[..., str], *args: object) -> None:
        try:
            self._outcome.append((True, function(*args)))
        except BaseException as err:  # handed to the caller of result()
            self._outcome.append((False, err))

    def result(self) -> str:
        self._thread.join()
        ok, value = self._outcome[0]
        if not ok:
            raise value
        return value


def _node_name() -> str:
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()


def _lifetime(has_session: Callable[[], bool], config: GatewayConfig, linger: float) -> Callable[[], str | None]:
    """The one-client lifetime rules (see the module docstring), as a stop check for the serving loop."""
    started = time.monotonic()
    had_session = False
    ended_at: float | None = None

    def until() -> str | None:
        nonlocal had_session, ended_at
        if has_session():
            had_session = True
        elif had_session:
            ended_at = ended_at or time.monotonic()
            if time.monotonic() - ended_at >= linger:
                return "the node's session ended"
        elif config.connect_timeout and time.monotonic() - started > config.connect_timeout:
            return f"no session opened within {config.connect_timeout:g} s"
        return None

    return until


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hcqw.hetjob.gateway", description=__doc__.split("\n")[0])
    parser.add_argument("--address", default="",
                        help="mpi:file:PATH for the MPI transport; default: ZeroMQ on this node's cluster address "
                             "(SLURM's NodeAddr of $SLURMD_NODENAME; loopback outside SLURM)")
    parser.add_argument("--address-file", required=True)
    parser.add_argument("--simulator", default="qsim", help="the simulator this gateway serves (without --upstream)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--metrics", default="")
    parser.add_argument("--heartbeat-timeout", type=float, default=5.0)
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    parser.add_argument("--release-job", default=None)
    parser.add_argument("--pid-file", default=None, help="write this process's pid here (for operators and tests)")
    parser.add_argument("--upstream", default=None,
                        help="address of the resident QPU service on this node (%%n: this node's name): relay to "
                             "it, load no simulator")
    parser.add_argument("-v", "--verbose", action="count", default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2),
                        format="%(asctime)s gateway %(levelname)s: %(message)s")
    config = GatewayConfig(
        address=args.address, address_file=args.address_file, simulator=args.simulator, threads=args.threads,
        metrics=args.metrics, heartbeat_timeout=args.heartbeat_timeout,
        connect_timeout=args.connect_timeout, release_job=args.release_job, upstream=args.upstream)
    if args.pid_file:
        Path(args.pid_file).write_text(f"{os.getpid()}\n")
    code = 0
    try:
        reason = run_gateway(config)
        log.info("gateway stopping: %s", reason)
    except Exception:  # noqa: BLE001 - whatever happened, the component must be released below
        log.exception("gateway failed")
        code = 1
    release_component(config.release_job, Path(config.address_file).parent if config.address_file else None)
    return code


if __name__ == "__main__":
    sys.exit(main())
