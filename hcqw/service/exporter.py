"""The QPU service's Prometheus metrics (``hcqw device serve --metrics-address HOST:PORT``; off by default).

This module owns the Prometheus names, as ``hcqw.metrics`` owns the JSON-lines timeline: one
module per contract, so a dashboard or alert has one place to look (``METRICS`` lists every
name; docs/grafana/hcqw-qpu.json uses only these, a test checks it). Both are fed by the same
facts: the dispatcher hands every ``exec``/``hold`` event it appends to its log to
``ServiceMonitor.event`` too, so busy seconds per user and workflow here are the sums
``hcqw device stats`` computes from the log (``quantum_s``), and the queue, sessions and device
status are read from the dispatcher's own state at scrape time, as ``hcqw device status`` is.

Labels are bounded, never a raw request string:

- ``user``: the Unix account a session's opener was authenticated as (MUNGE, the kernel);
- ``reason``: a refused request's error code, from the protocol's fixed set (``protocol.E_*``);
- ``limit``: a ``WorkLimits`` field name, or ``max_exclusive_seconds``;
- ``status``: a ``DeviceStatus`` value;
- ``workflow``: a client-chosen name, so bounded twice: the busy seconds of at most
  ``WORKFLOW_MEMORY`` workflows are kept (least recently active forgotten first: a forgotten one
  that comes back restarts at 0, a counter reset), and only the ``WORKFLOW_SERIES`` most recently
  active within the last ``WORKFLOW_WINDOW`` seconds are exported. Totals per user cover the rest.

The endpoint shows no keys, credentials, session ids or circuits, but it does show who used the
device and workflow names, as the 0640 metrics log does: bind an address only the monitoring
host reaches (docs/site-guide.md, "Monitoring").

Thread safety: the service's loop is the only writer (plain dict updates, no lock on the dispatch
path); the HTTP server's thread reads at scrape time, copying each dict first and retrying a read
that raced with the loop (``_stable``).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from hcqw.device.backend import DeviceStatus
from hcqw.errors import DeviceError
from hcqw.identity import user_name
from hcqw.service import protocol as P
from hcqw.service.limits import WorkLimits

if TYPE_CHECKING:
    from hcqw.service.dispatcher import Dispatcher

log = logging.getLogger(__name__)

PREFIX = "hcqw_qpu"
#: Every metric this module exports (name without the ``_total``/``_info``/``_bucket``... suffixes) and its help.
METRICS = {
    f"{PREFIX}_service": "the service: device, queue policy (an info metric: {PREFIX}_service_info 1)",
    f"{PREFIX}_start_time_seconds": "when the service started (Unix time)",
    f"{PREFIX}_device_status": "1 for the device's current status, 0 for the others",
    f"{PREFIX}_device_status_changes": "changes of the device status, by the status entered",
    f"{PREFIX}_device_busy_seconds": "seconds the device executed work",
    f"{PREFIX}_queue_jobs": "run requests waiting in the queue",
    f"{PREFIX}_queue_items": "work items waiting in the queue, per user",
    f"{PREFIX}_queue_oldest_wait_seconds": "how long the longest-waiting queued run has waited",
    f"{PREFIX}_queue_wait_seconds": "time executed runs waited in the queue",
    f"{PREFIX}_sessions": "open sessions, per user",
    f"{PREFIX}_sessions_opened": "sessions opened, per user",
    f"{PREFIX}_busy_seconds": "device seconds executing a user's work",
    f"{PREFIX}_runs": "run requests executed, per user",
    f"{PREFIX}_shots": "shots executed, per user",
    f"{PREFIX}_workflow_busy_seconds": "device seconds executing a workflow's work (recently active workflows)",
    f"{PREFIX}_limit_hits": "requests refused or sessions ended at a work limit, by limit",
    f"{PREFIX}_refused_requests": "requests answered with an error, by reason (the error code)",
}
#: The refusal reasons: the protocol's error codes, a fixed set.
REASONS = (P.E_BAD_MESSAGE, P.E_VERSION, P.E_UNKNOWN_TYPE, P.E_TOO_LARGE, P.E_CIRCUIT, P.E_NO_SESSION, P.E_TIMEOUT,
           P.E_UNAVAILABLE, P.E_INTERNAL, P.E_FORBIDDEN, P.E_UNAUTHENTICATED, P.E_QUOTA)
#: The limits that can be hit: ``WorkLimits``' own, and the exclusive sessions' device-time cap.
LIMITS = (*WorkLimits().as_dict(), "max_exclusive_seconds")
#: Queue wait histogram buckets (s): from a hybrid loop's back-to-back runs to a long calibration.
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
WORKFLOW_MEMORY = 1024
WORKFLOW_SERIES = 50
WORKFLOW_WINDOW = 3600.0
DEFAULT_PORT = 9464  # Prometheus' default-port allocations list 9464 for OpenTelemetry-style exporters

T = TypeVar("T")


class ServiceMonitor:
    """Counters the dispatcher updates as things happen; everything else is read at scrape time."""

    def __init__(self) -> None:
        self.started = time.time()
        self.busy_seconds = 0.0
        self.per_user: dict[str, list[float]] = {}  # user -> [busy seconds, runs, shots]
        self.workflows: OrderedDict[str, list[float]] = OrderedDict()  # name -> [busy seconds, last active]
        self.opened: dict[str, int] = {}
        self.refused = dict.fromkeys(REASONS, 0)
        self.limit_hits = dict.fromkeys(LIMITS, 0)
        self.status = DeviceStatus.IDLE.value  # a dispatcher starts idle: its first change is the first entry
        self.status_changes = {s.value: 0 for s in DeviceStatus}
        self.wait_buckets = [0] * (len(WAIT_BUCKETS) + 1)  # the last one is +Inf
        self.wait_sum = 0.0

    # -- what the dispatcher reports ----------------------------------------------------------

    def event(self, kind: str, fields: dict[str, Any]) -> None:
        """An event the dispatcher appends to its metrics log (``hcqw.metrics``); ``exec`` ones count."""
        if kind != "exec":
            return
        seconds = fields["end"] - fields["start"]
        self.busy_seconds += seconds
        row = self.per_user.setdefault(fields["user"], [0.0, 0, 0])
        row[0] += seconds
        row[1] += 1
        row[2] += fields.get("shots", 0)
        self._workflow(fields["workflow"], seconds, fields["end"])
        self._waited(max(0.0, fields["start"] - fields.get("queued", fields["start"])))

    def session_opened(self, user: str) -> None:
        self.opened[user] = self.opened.get(user, 0) + 1

    def refused_request(self, code: str) -> None:
        if code in self.refused:  # always: every code the dispatcher replies with is one of REASONS
            self.refused[code] += 1

    def limit_hit(self, limit: str) -> None:
        if limit in self.limit_hits:
            self.limit_hits[limit] += 1

    def observe_status(self, status: DeviceStatus) -> None:
        """The device's status now (the server loop reports it after every change it may have made)."""
        if status.value != self.status:
            self.status = status.value
            self.status_changes[status.value] += 1

    def _workflow(self, name: str, seconds: float, when: float) -> None:
        row = self.workflows.get(name)
        if row is None:
            row = self.workflows[name] = [0.0, when]
            if len(self.workflows) > WORKFLOW_MEMORY:
                self.workflows.popitem(last=False)
        row[0] += seconds
        row[1] = when
        self.workflows.move_to_end(name)

    def _waited(self, seconds: float) -> None:
        self.wait_sum += seconds
        for index, bound in enumerate(WAIT_BUCKETS):
            if seconds <= bound:
                self.wait_buckets[index] += 1
                return
        self.wait_buckets[-1] += 1

    def recent_workflows(self, now: float) -> list[tuple[str, float]]:
        """(workflow, busy seconds) of the exported workflows: see the module docstring."""
        rows = _stable(lambda: list(self.workflows.items()))
        recent = [(name, row[0]) for name, row in reversed(rows) if now - row[1] <= WORKFLOW_WINDOW]
        return recent[:WORKFLOW_SERIES]


def _stable(read: Callable[[], T], attempts: int = 5) -> T:
    """``read()``, retried if the service's loop changed a dict or deque it iterates meanwhile."""
    for _ in range(attempts - 1):
        try:
            return read()
        except RuntimeError:  # "changed size during iteration": the loop is busy; read again
            continue
    return read()


class ServiceCollector:
    """A ``prometheus_client`` collector: the dispatcher's state and its monitor's counters at scrape time."""

    def __init__(self, dispatcher: "Dispatcher", monitor: ServiceMonitor):
        self.dispatcher = dispatcher
        self.monitor = monitor

    def describe(self) -> list:
        return []  # no samples computed at registration: the metrics are produced by collect() alone

    def collect(self) -> Iterator:
        from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                                            InfoMetricFamily)

        d, m, now = self.dispatcher, self.monitor, time.time()
        name = lambda short: f"{PREFIX}_{short}"  # noqa: E731
        yield InfoMetricFamily(name("service"), METRICS[name("service")],
                               value={"device": d.backend.name, "policy": d.policy.name})
        yield GaugeMetricFamily(name("start_time_seconds"), METRICS[name("start_time_seconds")], value=m.started)

        status = d.status()
        gauge = GaugeMetricFamily(name("device_status"), METRICS[name("device_status")], labels=["status"])
        for s in DeviceStatus:
            gauge.add_metric([s.value], 1.0 if s is status else 0.0)
        yield gauge
        yield _counter(CounterMetricFamily, name("device_status_changes"), "status", m.status_changes.items())
        yield CounterMetricFamily(name("device_busy_seconds"), METRICS[name("device_busy_seconds")],
                                  value=m.busy_seconds)

        jobs = _stable(d.run_order)
        yield GaugeMetricFamily(name("queue_jobs"), METRICS[name("queue_jobs")], value=len(jobs))
        items = GaugeMetricFamily(name("queue_items"), METRICS[name("queue_items")], labels=["user"])
        for uid, count in _stable(lambda: list(d._queued_per_user.items())):
            items.add_metric([_user(uid)], count)
        yield items
        oldest = max((now - j.payload.queued_at for j in jobs), default=0.0)
        yield GaugeMetricFamily(name("queue_oldest_wait_seconds"), METRICS[name("queue_oldest_wait_seconds")],
                                value=oldest)
        counts, total = list(m.wait_buckets), 0
        buckets = []
        for bound, count in zip((*map(str, WAIT_BUCKETS), "+Inf"), counts):
            total += count
            buckets.append((bound, total))
        yield HistogramMetricFamily(name("queue_wait_seconds"), METRICS[name("queue_wait_seconds")],
                                    buckets=buckets, sum_value=m.wait_sum)

        open_per_user: dict[str, int] = {}
        for session in _stable(lambda: list(d.sessions.values())):
            open_per_user[session.owner.user] = open_per_user.get(session.owner.user, 0) + 1
        sessions = GaugeMetricFamily(name("sessions"), METRICS[name("sessions")], labels=["user"])
        for user, count in sorted(open_per_user.items()):
            sessions.add_metric([user], count)
        yield sessions
        yield _counter(CounterMetricFamily, name("sessions_opened"), "user", _stable(lambda: list(m.opened.items())))

        per_user = _stable(lambda: [(u, list(row)) for u, row in m.per_user.items()])
        for short, column in (("busy_seconds", 0), ("runs", 1), ("shots", 2)):
            yield _counter(CounterMetricFamily, name(short), "user", [(u, row[column]) for u, row in per_user])
        yield _counter(CounterMetricFamily, name("workflow_busy_seconds"), "workflow", m.recent_workflows(now))
        yield _counter(CounterMetricFamily, name("limit_hits"), "limit", m.limit_hits.items())
        yield _counter(CounterMetricFamily, name("refused_requests"), "reason", m.refused.items())


def _counter(family: type, full_name: str, label: str, values) -> Any:
    counter = family(full_name, METRICS[full_name], labels=[label])
    for key, value in values:
        counter.add_metric([str(key)], value)
    return counter


def _user(uid: int) -> str:
    try:
        return user_name(uid)
    except (KeyError, OSError):
        return str(uid)  # an account deleted while its work waited: still one series per uid


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) of ``--metrics-address``: a literal IP address, so the
    exporter binds exactly what the operator named and no name lookup decides it."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
        if not sep or not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise DeviceError(f"--metrics-address {text!r}: expected IP:PORT, e.g. 127.0.0.1:{DEFAULT_PORT} (loopback) or "
                          f"the address the monitoring host reaches, [::1]:{DEFAULT_PORT} for IPv6") from None
    return host, number


class MetricsServer:
    """The HTTP endpoint (``/metrics``) on ``address``, in a daemon thread of the service's process."""

    def __init__(self, address: str, dispatcher: "Dispatcher", monitor: ServiceMonitor):
        try:
            from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
        except ImportError:
            raise DeviceError("--metrics-address needs prometheus_client: pip install 'hcqw[metrics]' into the "
                              "service's environment") from None
        host, port = parse_address(address)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServiceCollector(dispatcher, monitor))
        ProcessCollector(registry=self.registry)  # the service's CPU and memory: a leak shows on the dashboard
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as err:
            raise DeviceError(f"cannot serve metrics on {address}: {err.strerror or err}; choose a free port or an "
                              "address of this host (--metrics-address)") from None
        bound = self._server.server_address
        self.address = f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"
        log.info("Prometheus metrics at http://%s/metrics", self.address)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
