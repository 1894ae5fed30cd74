"""Component 0's side of a quantum node: a device provider backed by the job's gateway.

``GatewayDevice.acquire`` waits for the gateway's address file, opens a service session
and returns a ``GatewayLease``. Closing the lease -- the end of the quantum block, whether
the step returned, raised, or closed it early -- closes the session (the gateway then stops on
its own), and ends the qpu component (``scancel <leader>+1``), so the device is free while
the rest of the node (classical work, checkpoint write) goes on in component 0.

The run's metrics log gets one ``hold`` event (session open -> block end) and one
``release`` event (block end -> the qpu component cancelled) per quantum node.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from hcqw.errors import DeviceError
from hcqw.metrics import MetricsLog
from hcqw.service.client import ServiceClient, ServiceUnreachable, SessionLease

log = logging.getLogger(__name__)

# The client's keep-alive heartbeats the session at least this often, also while the step
# computes classically inside its block: well inside the gateway's default 5 s timeout.
HEARTBEAT_S = 1.0
CONTROL_TIMEOUT_S = 10.0


def release_qpu_component(leader: str, env: dict[str, str] | None = None) -> None:
    """End component 1 of hetjob ``leader``; the leader (this process's job) runs on."""
    from hcqw.slurm.sbatch import SbatchBackend

    SbatchBackend(env=env).cancel_component(leader, 1)


class GatewayDevice:
    """A ``DeviceProvider`` for one quantum node inside its hetjob.

    ``gateway_pid``: the local process that launched the gateway (the batch script's
    ``srun --het-group=1``); if it exits before the address appears, the gateway failed and
    waiting longer is pointless. ``release``: called with no arguments after the session
    closed; by default it cancels ``$SLURM_JOB_ID_HET_GROUP_1``.
    """

    def __init__(self, address_file: Path | str, connect_timeout: float = 120.0, gateway_pid: int | None = None,
                 release: Callable[[], None] | None = None, gateway_log: str | None = None):
        self.address_file = Path(address_file)
        self.connect_timeout = connect_timeout
        self.gateway_pid = gateway_pid
        self.gateway_log = gateway_log
        self._release = release if release is not None else _release_from_environment

    def describe(self, address: str | None = None) -> str:
        """The gateway as errors name it: its job, host, address and log."""
        return describe_gateway(address, self.gateway_log)

    def wait_address(self) -> str:
        deadline = time.monotonic() + self.connect_timeout
        while True:
            try:
                address = self.address_file.read_text().strip()
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
                                   peer=self.describe(address))
            try:
                session = client.session(workflow, node, timeout=timeout, seed=seed)
            except BaseException:
                client.close()
                raise
        except ServiceUnreachable as err:
            self._release()  # no lease to close: free the qpu component here
            raise ServiceUnreachable(f"{err}{_log_tail(self.gateway_log)}") from None
        except BaseException:
            self._release()  # no lease to close: free the qpu component here
            raise
        return GatewayLease(client, session, metrics, self._release)


class GatewayLease(SessionLease):
    """The quantum step's device context: a service session plus the component's release."""

    def __init__(self, client: Any, session: Any, metrics: MetricsLog | None, release: Callable[[], None]):
        super().__init__(client, session)
        self._metrics = metrics
        self._release = release
        self.block_end: float | None = None
        self.released_at: float | None = None

    def close(self) -> None:
        """End the quantum block: close the session, stop the gateway, release the component."""
        if self.block_end is not None:
            return
        self.block_end = time.time()
        try:
            # Closing the session is the listener's shut-down notice (listing 5): the gateway
            # stops on its own once the session has ended. Closing the client disconnects it
            # (collective under MPI, so it completes while the gateway still serves).
            self._session.close()
            self._client.close()
        finally:
            self._release()
            self.released_at = time.time()
            log.info("%s/%s: quantum block ended; qpu component released %.3f s later", self.workflow, self.node,
                     self.released_at - self.block_end)
            if self._metrics:
                self._metrics.record("hold", workflow=self.workflow, node=self.node, device="gateway",
                                     start=self.acquired_at, end=self.block_end)
                self._metrics.record("release", workflow=self.workflow, node=self.node, device="gateway",
                                     start=self.block_end, end=self.released_at,
                                     job=os.environ.get("SLURM_JOB_ID_HET_GROUP_1"))


def _release_from_environment() -> None:
    leader = os.environ.get("SLURM_JOB_ID_HET_GROUP_0") or os.environ.get("SLURM_JOB_ID")
    if not leader or not os.environ.get("SLURM_JOB_ID_HET_GROUP_1"):
        log.warning("not inside a hetjob (no SLURM_JOB_ID_HET_GROUP_1): nothing to release")
        return
    release_qpu_component(leader)


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


def _log_tail(path: str | None, lines: int = 3) -> str:
    """``; its log ends with: ...`` -- the gateway says why it stopped -- or "" if unreadable."""
    from hcqw.slurm.backend import tail

    text = tail(path, lines).strip() if path else ""
    return f"; its log ends with:\n{text}" if text else ""


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
