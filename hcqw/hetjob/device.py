"""Component 0's side of a quantum node: a device provider backed by the job's gateway.

``gateway_device()`` builds it from what the job script exported. ``GatewayDevice.acquire`` waits for the gateway's address file, opens a service session
and returns a ``GatewayLease``. Closing the lease -- the end of the quantum block, whether
the step returned, raised, or closed it early -- closes the session (the gateway then stops on
its own), and ends the qpu component (``scancel <leader>+1``), so the device is free while
the rest of the node (classical work, checkpoint write) goes on in component 0.

The run's metrics log gets one ``hold`` event (session open -> block end) and one
``release`` event (block end -> the qpu component cancelled) per quantum node.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

from hcqw import environment
from hcqw.errors import DeviceError, DeviceOffline
from hcqw.metrics import MetricsLog
from hcqw.slurm.errors import SlurmError
from hcqw.service.client import ServiceClient, ServiceUnreachable, SessionLease
from hcqw.paths import QPU_RELEASED
from hcqw.trust import read_own_file, require_private, write_nofollow

log = logging.getLogger(__name__)

# The client's keep-alive heartbeats the session at least this often, also while the step
# computes classically inside its block: well inside the gateway's default 5 s timeout.
HEARTBEAT_S = 1.0
CONTROL_TIMEOUT_S = 10.0
#: Seconds a run may wait for the device (offline, calibrating) unless the block says otherwise
#: (the job script passes NodeJobSettings.device_wait).
DEVICE_WAIT_S = 300.0
#: Seconds the link to the gateway may be down before the node gives up on it (the job script
#: passes NodeJobSettings.heartbeat_timeout, the bound the gateway applies to the node).
PEER_TIMEOUT_S = 5.0
#: Seconds the end of a block waits for the qpu component's release before the step goes on (see
#: ``GatewayLease.close``); a release takes well under a second unless slurmctld is unreachable.
RELEASE_WAIT_S = 5.0


def gateway_device(env: Mapping[str, str] | None = None, connect_timeout: float = 120.0) -> "GatewayDevice":
    """The gateway of the hetjob this process runs in, as its batch script describes it in the
    environment (``hcqw.hetjob.jobs.quantum_body``); an error outside one."""
    env = os.environ if env is None else env
    address_file = env.get(environment.GATEWAY_ADDRESS_FILE)
    if not address_file:
        raise DeviceError(f"not inside an hcqw quantum job (no ${environment.GATEWAY_ADDRESS_FILE}): this node has no "
                          "qpu component; submit it as a quantum node (e.g. resources qpu=1)")
    pid = env.get(environment.GATEWAY_PID)
    peer_timeout, device_wait = env.get(environment.PEER_TIMEOUT), env.get(environment.DEVICE_WAIT)
    return GatewayDevice(address_file, connect_timeout=connect_timeout, gateway_pid=int(pid) if pid else None,
                         gateway_log=env.get(environment.GATEWAY_LOG),
                         peer_timeout=float(peer_timeout) if peer_timeout else PEER_TIMEOUT_S,
                         device_wait=float(device_wait) if device_wait else DEVICE_WAIT_S)


def release_qpu_component(leader: str, env: dict[str, str] | None = None) -> None:
    """End component 1 of hetjob ``leader``; the leader (this process's job) runs on."""
    from hcqw.slurm.sbatch import SbatchBackend

    SbatchBackend(env=env).cancel_component(leader, 1)


class GatewayDevice:
    """A ``DeviceProvider`` for one quantum node inside its hetjob.

    ``gateway_pid``: the local process that launched the gateway (the batch script's
    ``srun --het-group=1``); it ends when the gateway does, so its exit is the gateway's death
    -- before the address appears (the gateway failed to start) or during the block (killed,
    or stopped because its resident service went away). ``peer_timeout``: the gateway is also
    taken for dead when the link to it has been down (ZeroMQ) that long. Either way the qpu
    component is released at once, even while the step computes, and the step's next device
    call raises ``ServiceUnreachable`` naming the gateway, its host and its log.
    ``device_wait``: the longest a run may wait for the device (offline, calibrating) when the
    caller gives no ``timeout``: the node then fails with ``DeviceOffline`` and frees the qpu
    node, instead of holding it idle to its time limit.
    ``release``: called with no arguments when the block ends (or the gateway is lost); by
    default it cancels ``$SLURM_JOB_ID_HET_GROUP_1``; called more than once, it acts once.
    """

    def __init__(self, address_file: Path | str, connect_timeout: float = 120.0, gateway_pid: int | None = None,
                 release: Callable[[], None] | None = None, gateway_log: str | None = None,
                 peer_timeout: float = PEER_TIMEOUT_S, device_wait: float = DEVICE_WAIT_S,
                 device_name: str | None = None, job: str | None = None):
        self.address_file = Path(address_file)
        # What the metrics name: the qpu node and the job released (default: the hetjob's component 1).
        self.device_name = device_name
        self.job = job
        self.connect_timeout = connect_timeout
        self.gateway_pid = gateway_pid
        self.gateway_log = gateway_log
        self.peer_timeout = peer_timeout
        self.device_wait = device_wait
        self._release = _Once(release if release is not None else _release_from_environment)
        # The job's own release also tells the gateway, before the session closes, not to release again.
        self._announce = _announce_from_environment if release is None else None

    def release(self) -> None:
        """Free the qpu component now if no lease did (a fused node whose quantum part had nothing to run)."""
        self._release()

    def describe(self, address: str | None = None) -> str:
        """The gateway as errors name it: its job, host, address and log."""
        return describe_gateway(address, self.gateway_log)

    def wait_address(self) -> str:
        deadline = time.monotonic() + self.connect_timeout
        # Only the job's private directory is trusted: an address planted where others may write would
        # send the node's credential and circuits to whoever listens there.
        require_private(self.address_file.parent, "job directory", "Run the job from a run directory only you may "
                        "write; remove the job directory if someone else made it")
        while True:
            try:
                address = read_own_file(self.address_file).strip()
                if address:
                    return address
            except FileNotFoundError:
                pass
            if self.gateway_pid is not None and not _alive(self.gateway_pid):
                raise DeviceError(f"{self.describe()} exited (srun pid {self.gateway_pid}) before writing "
                                  f"its address to {self.address_file}{_log_tail(self.gateway_log)}")
            if time.monotonic() >= deadline:
                raise DeviceError(f"{self.describe()} wrote no address to {self.address_file} within "
                                  f"{self.connect_timeout:g} s{_log_tail(self.gateway_log)}")
            time.sleep(0.02)

    def acquire(self, workflow: str, node: str, timeout: float | None = None, metrics: MetricsLog | None = None,
                seed: int | None = None) -> "GatewayLease":
        try:
            address = self.wait_address()
            client = ServiceClient(address, timeout=CONTROL_TIMEOUT_S, heartbeat=HEARTBEAT_S,
                                   peer=self.describe(address), liveness=self._gateway_gone,
                                   peer_timeout=self.peer_timeout, on_lost=lambda _: self._release())
            try:
                session = client.session(workflow, node, seed=seed,
                                         timeout=self.device_wait if timeout is None else timeout)
            except BaseException:
                client.close()
                raise
        except ServiceUnreachable as err:
            self._release()  # no lease to close: free the qpu component here
            raise ServiceUnreachable(f"{err}{_log_tail(self.gateway_log)}") from None
        except BaseException:
            self._release()  # no lease to close: free the qpu component here
            raise
        return GatewayLease(client, session, metrics, self._release, device=self.device_name, job=self.job,
                            announce=self._announce)

    def _gateway_gone(self) -> str | None:
        """Why the gateway is known dead (its srun step ended), with the end of its log; else ``None``."""
        if self.gateway_pid is None or _alive(self.gateway_pid):
            return None
        return f"its srun step (pid {self.gateway_pid}) ended{_log_tail(self.gateway_log)}"


class _Once:
    """Call ``action`` the first time only (the keep-alive thread and the block's end may both release)."""

    def __init__(self, action: Callable[[], None]):
        self._action = action
        self._lock = threading.Lock()
        self._done = False

    def __call__(self) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        self._action()


class GatewayLease(SessionLease):
    """The quantum step's device context: a service session plus the component's release."""

    def run(self, circuit: Any, repetitions: int, params: Any = None) -> list:
        with _offline_says_how_to_resume():
            return super().run(circuit, repetitions, params)

    def run_batch(self, items: Any) -> list:
        with _offline_says_how_to_resume():
            return super().run_batch(items)

    def __init__(self, client: Any, session: Any, metrics: MetricsLog | None, release: Callable[[], None],
                 device: str | None = None, job: str | None = None, announce: Callable[[], None] | None = None):
        super().__init__(client, session)
        self._metrics = metrics
        self._release = release
        self._announce = announce
        self._device_name = device
        self._job = job
        self.block_end: float | None = None
        self.released_at: float | None = None

    def close(self) -> None:
        """End the quantum block: close the session, stop the gateway, release the component."""
        if self.block_end is not None:
            return
        self.block_end = time.time()
        if self._announce:  # before the session closes: the gateway stops on that, and must see it
            self._announce()
        try:
            # Closing the session is the listener's shut-down notice (listing 5): the gateway
            # stops on its own once the session has ended. Closing the client disconnects it
            # (collective under MPI, so it completes while the gateway still serves).
            self._session.close()
            self._client.close()
        finally:
            device = self._device_name or self._device()
            if self._metrics:
                self._metrics.record("hold", workflow=self.workflow, node=self.node, device=device,
                                     start=self.acquired_at, end=self.block_end)
            # Never holding up the block's results (the step's code goes on, its checkpoint is written): a
            # release still riding out an unreachable slurmctld after RELEASE_WAIT_S goes on in the
            # background, and the job script's exit trap releases the component if the process ends first.
            if not _finished_within(RELEASE_WAIT_S, self._release_and_record, device):
                log.warning("%s/%s: quantum block ended; slurmctld does not answer, so the qpu component is "
                            "released once it is back (in the background, or by the job's exit trap)",
                            self.workflow, self.node)

    def _release_and_record(self, device: str) -> None:
        try:
            self._release()
        except SlurmError as err:
            # The release rode out the outage it could; the job script's trap frees the component when the
            # node's process exits.
            log.error("%s/%s: could not release the qpu component: %s", self.workflow, self.node, err)
        self.released_at = time.time()
        log.info("%s/%s: quantum block ended; qpu component released %.3f s later", self.workflow, self.node,
                 self.released_at - self.block_end)
        if self._metrics:
            self._metrics.record("release", workflow=self.workflow, node=self.node, device=device,
                                 start=self.block_end, end=self.released_at,
                                 job=self._job or os.environ.get("SLURM_JOB_ID_HET_GROUP_1"))

    @staticmethod
    def _device() -> str:
        """The device is the qpu node SLURM gave the job: a site may have several (one lane each)."""
        return os.environ.get("SLURM_JOB_NODELIST_HET_GROUP_1") or "gateway"


def _finished_within(seconds: float, action: Callable[..., None], *args: Any) -> bool:
    """Run ``action(*args)`` in a daemon thread and wait for it up to ``seconds``; True if it finished (an
    exception it raised is raised here), False if it goes on in the background."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            action(*args)
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            raised.append(err)

    thread = threading.Thread(target=run, name="qpu-release", daemon=True)
    thread.start()
    thread.join(seconds)
    if raised:
        raise raised[0]
    return not thread.is_alive()


def _release_from_environment() -> None:
    leader = os.environ.get("SLURM_JOB_ID_HET_GROUP_0") or os.environ.get("SLURM_JOB_ID")
    if not leader or not os.environ.get("SLURM_JOB_ID_HET_GROUP_1"):
        log.warning("not inside a hetjob (no SLURM_JOB_ID_HET_GROUP_1): nothing to release")
        return
    job_dir = _job_dir()
    # "requested" first (the lease's close announced it already): the scancel ends the gateway's step, and
    # the gateway, stopping, must already see it; "done" once slurmctld accepted it: only then does the job
    # script's trap skip its own release (a node process that ends while its release still rides out an
    # outage leaves it to the trap).
    marked = job_dir is not None and mark_released(job_dir, "requested")
    try:
        release_qpu_component(leader)
    except BaseException:
        if marked:  # not released: the gateway's exit and the job script's trap must try
            (job_dir / QPU_RELEASED).unlink(missing_ok=True)
        raise
    if marked:
        mark_released(job_dir, "done")


def _job_dir() -> Path | None:
    address_file = os.environ.get(environment.GATEWAY_ADDRESS_FILE)
    return Path(address_file).parent if address_file else None


def _announce_from_environment() -> None:
    """Tell the gateway that this node releases the qpu component (before closing its session)."""
    job_dir = _job_dir()
    if job_dir is not None and os.environ.get("SLURM_JOB_ID_HET_GROUP_1"):
        mark_released(job_dir, "requested")


def mark_released(job_dir: Path, stage: str) -> bool:
    """Record in the job directory how far this node's release of the qpu component is
    (``hcqw.paths.QPU_RELEASED``: "requested", then "done"), so the gateway's exit and the job script's
    trap do not ask slurmctld again; False if it could not be written (the backstops then release
    again: a no-op for SLURM)."""
    try:
        write_nofollow(job_dir / QPU_RELEASED, f"{stage}\n".encode(), mode=0o600)
        return True
    except OSError as err:
        log.warning("could not record the qpu release in %s: %s", job_dir, err)
        return False


def describe_gateway(address: str | None, gateway_log: str | None, env: dict[str, str] | None = None) -> str:
    """``the device gateway of SLURM job 12 (qpu component 13 on node q1 at tcp://10.0.0.5:4242; log: ...)``,
    from the hetjob's environment in component 0: what a user needs to find the dead or silent peer."""
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID_HET_GROUP_0") or env.get("SLURM_JOB_ID") or "?"
    where = [f"qpu component {env.get('SLURM_JOB_ID_HET_GROUP_1', '?')} on node "
             f"{env.get('SLURM_JOB_NODELIST_HET_GROUP_1', '?')}"]
    if address:
        where.append(f"at {address}")
    return f"the device gateway of SLURM job {job} ({' '.join(where)}; log: {gateway_log or '(unknown)'})"


@contextlib.contextmanager
def _offline_says_how_to_resume() -> Iterator[None]:
    try:
        yield
    except DeviceOffline as err:
        raise DeviceOffline(f"{err}. The qpu node is given back as this quantum block ends; re-run the workflow "
                            "once the device is back (`hcqw device status` on the qpu node) to resume from the "
                            "last checkpoint") from None


def _log_tail(path: str | None) -> str:
    """What the gateway's log says about its end: its stop reason or error if it logged one (srun's
    own lines follow it), else its last lines; "" if unreadable."""
    from hcqw.slurm.backend import tail

    lines = tail(path, 30).splitlines() if path else []
    why = [line for line in lines if "gateway stopping:" in line or " gateway ERROR" in line][-2:]
    text = "\n".join(why or lines[-3:]).strip()
    return f"; its log says:\n{text}" if text else ""


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
