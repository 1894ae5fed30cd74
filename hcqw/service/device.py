"""A ``DeviceProvider`` over a running QPU service (``hcqw device serve``).

Each lease is one session on its own connection. Unlike a local or gateway lease, a session
does not hold the device: the service interleaves the work items of all open sessions in its
queue. The run's metrics get one ``session`` event per lease; the device's busy intervals are
in the service's own log.
"""

from __future__ import annotations

import time
from typing import Any

from hcqw.metrics import MetricsLog
from hcqw.service.client import ServiceClient, SessionLease


class ServiceDevice:
    """Sessions on the service at ``address``; who opens them is the caller's own identity (its
    MUNGE credential), so there is no user to name here."""

    def __init__(self, address: str, priority: int = 0, control_timeout: float = 10.0):
        self.address = address
        self.priority = priority
        self.control_timeout = control_timeout

    def acquire(self, workflow: str, node: str, timeout: float | None = None, metrics: MetricsLog | None = None,
                seed: int | None = None) -> "ServiceLease":
        client = ServiceClient(self.address, timeout=self.control_timeout)
        try:
            session = client.session(workflow, node, timeout=timeout, priority=self.priority, seed=seed)
        except BaseException:
            client.close()
            raise
        return ServiceLease(client, session, metrics)


class ServiceLease(SessionLease):
    """One service session and its connection; closing it ends both."""

    def __init__(self, client: Any, session: Any, metrics: MetricsLog | None):
        super().__init__(client, session)
        self._metrics = metrics

    def close(self) -> None:
        if not self._session.is_open:
            return
        try:
            self._session.close()
        finally:
            self._client.close()
            if self._metrics:
                self._metrics.record("session", workflow=self.workflow, node=self.node, device=self._client.address,
                                     start=self.acquired_at, end=time.time())
