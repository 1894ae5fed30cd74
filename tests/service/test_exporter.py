"""The Prometheus exporter against a real service in this process: real sockets, MUNGE, qsim and an HTTP scrape."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

import cirq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hcqw.device.work import WorkItem
from hcqw.errors import DeviceError, DeviceOffline
from hcqw.identity import current_user
from hcqw.service import protocol as P
from hcqw.service.client import ServiceClient, ServiceError
from hcqw.service.exporter import (LIMITS, METRICS, REASONS, WORKFLOW_MEMORY, WORKFLOW_SERIES, WORKFLOW_WINDOW,
                                   ServiceMonitor, parse_address)
from hcqw.service.limits import WorkLimits
from hcqw.service.server import Service, ServiceConfig
from hcqw.service.stats import compute_stats

Q = cirq.LineQubit.range(3)
BELL = cirq.Circuit(cirq.H(Q[0]), cirq.CNOT(Q[0], Q[1]), cirq.measure(*Q[:2], key="m"))


def scrape(address: str) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label pairs: value} of every sample at http://address/metrics (and every family's name)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        samples.setdefault(family.name, {})  # a family with no series yet (no user has run) is served too
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def one(samples: dict, name: str, **labels: str) -> float:
    return samples[name][tuple(sorted(labels.items()))]


@pytest.fixture
def service(tmp_path, munged):
    config = ServiceConfig(address="tcp://127.0.0.1:*", threads=1, metrics=str(tmp_path / "qpu.jsonl"),
                           metrics_address="127.0.0.1:0", session_timeout=30,
                           limits=WorkLimits(sessions_per_user=2, item_shots=10_000))
    service = Service(config)
    thread = threading.Thread(target=service.run, name="qpu-service", daemon=True)
    thread.start()
    yield service
    service.request_stop()
    thread.join(30)
    assert not thread.is_alive()


def test_a_scrape_reports_what_the_service_did_and_its_log_says(service):
    me = current_user()
    with ServiceClient(service.address) as client:
        first = client.session("wf-a", "n1")
        second = client.session("wf-b", "n1")
        for _ in range(3):
            first.run(BELL, 100)
        second.run_batch([WorkItem.build(BELL, 50), WorkItem.build(BELL, 50)])
        with pytest.raises(ServiceError) as quota:  # a third session: beyond sessions_per_user
            client.session("wf-c", "n1")
        with pytest.raises(ServiceError) as large:  # beyond item_shots
            first.run(BELL, 20_000)
        with pytest.raises(ServiceError) as unknown:
            client.call("heartbeat", session="0" * 32)
        assert (quota.value.code, large.value.code, unknown.value.code) == (P.E_QUOTA, P.E_TOO_LARGE, P.E_NO_SESSION)
        during = scrape(service.metrics_server.address)
        second.close()

        assert one(during, "hcqw_qpu_sessions", user=me) == 2
        assert one(during, "hcqw_qpu_sessions_opened_total", user=me) == 2
        assert one(during, "hcqw_qpu_runs_total", user=me) == 4
        assert one(during, "hcqw_qpu_shots_total", user=me) == 400
        assert one(during, "hcqw_qpu_limit_hits_total", limit="sessions_per_user") == 1
        assert one(during, "hcqw_qpu_limit_hits_total", limit="item_shots") == 1
        assert one(during, "hcqw_qpu_refused_requests_total", reason=P.E_QUOTA) == 1
        assert one(during, "hcqw_qpu_refused_requests_total", reason=P.E_TOO_LARGE) == 1
        assert one(during, "hcqw_qpu_refused_requests_total", reason=P.E_NO_SESSION) == 1
        assert one(during, "hcqw_qpu_device_status", status="idle") == 1
        assert one(during, "hcqw_qpu_device_status", status="executing") == 0
        # Every run queued on an idle device made it executing, and back.
        assert one(during, "hcqw_qpu_device_status_changes_total", status="executing") == 4
        assert one(during, "hcqw_qpu_device_status_changes_total", status="idle") == 4
        assert one(during, "hcqw_qpu_queue_wait_seconds_count") == 4
        assert one(during, "hcqw_qpu_queue_jobs") == 0

        # One source of truth: the busy seconds are the log's, as `hcqw device stats` sums them.
        stats = compute_stats(service.config.metrics)
        busy = one(during, "hcqw_qpu_busy_seconds_total", user=me)
        assert busy > 0 and busy == pytest.approx(stats["per_user"][me]["quantum_s"], rel=1e-9)
        for workflow in ("wf-a", "wf-b"):
            assert one(during, "hcqw_qpu_workflow_busy_seconds_total", workflow=workflow) == pytest.approx(
                stats["per_workflow"][workflow]["quantum_s"], rel=1e-9)
        assert one(during, "hcqw_qpu_device_busy_seconds_total") == pytest.approx(busy, rel=1e-9)

        # Calibrating: the status and its change show, and a run waits in the queue.
        assert client.set_status("calibrating", "weekly") == "calibrating"
        waiting = ServiceClient(service.address)
        try:
            queued = threading.Thread(target=expect_offline, args=(waiting,), daemon=True)
            queued.start()
            wait_until(lambda: service.dispatcher.status().value == "calibrating" and len(service.dispatcher.policy))
            calibrating = scrape(service.metrics_server.address)
            assert one(calibrating, "hcqw_qpu_device_status", status="calibrating") == 1
            assert one(calibrating, "hcqw_qpu_device_status_changes_total", status="calibrating") == 1
            assert one(calibrating, "hcqw_qpu_queue_jobs") == 1
            assert one(calibrating, "hcqw_qpu_queue_items", user=me) == 1
            assert one(calibrating, "hcqw_qpu_sessions", user=me) == 2  # "first" and the waiting one
            queued.join(30)
        finally:
            waiting.close()
        after = scrape(service.metrics_server.address)
        assert one(after, "hcqw_qpu_refused_requests_total", reason=P.E_TIMEOUT) == 1
        assert one(after, "hcqw_qpu_queue_jobs") == 0
        client.set_status("idle")
        first.close()


def expect_offline(client: ServiceClient) -> None:
    """A run that waits in the queue while the device calibrates, until its own timeout."""
    qpu = client.session("wf-wait", "n1", timeout=1.0)
    with pytest.raises(DeviceOffline):
        qpu.run(BELL, 10)
    qpu.close()


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_every_exported_name_is_in_the_contract(service):
    """What a scrape shows is ``METRICS`` (plus the process collector's own ``process_*``), every label
    value bounded: refusal reasons and limits are listed in full from the start."""
    samples = scrape(service.metrics_server.address)
    ours = {name for name in samples if name.startswith("hcqw_qpu_")}
    families = {base for base in METRICS for name in ours if name.startswith(base)}
    assert families == set(METRICS)
    for name in ours:
        assert any(name in (base, f"{base}_info", f"{base}_total", f"{base}_bucket", f"{base}_count", f"{base}_sum")
                   for base in METRICS), name
    assert {dict(k)["reason"] for k in samples["hcqw_qpu_refused_requests_total"]} == set(REASONS)
    assert {dict(k)["limit"] for k in samples["hcqw_qpu_limit_hits_total"]} == set(LIMITS)
    assert all(name.startswith(("hcqw_qpu_", "process_")) for name in samples), sorted(samples)


def test_workflow_series_are_bounded_to_recent_ones():
    monitor = ServiceMonitor()
    now = 1_000_000.0
    for n in range(WORKFLOW_MEMORY + 10):
        monitor.event("exec", {"user": "alice", "workflow": f"wf{n}", "start": now - 1.0, "end": now, "queued": now - 1})
    assert len(monitor.workflows) == WORKFLOW_MEMORY  # the least recently active forgotten
    exported = monitor.recent_workflows(now)
    assert len(exported) == WORKFLOW_SERIES and exported[0][0] == f"wf{WORKFLOW_MEMORY + 9}"
    assert monitor.per_user["alice"][0] == pytest.approx(WORKFLOW_MEMORY + 10)  # per user: everything
    stale = ServiceMonitor()
    stale.event("exec", {"user": "bob", "workflow": "old", "start": 0.0, "end": 1.0})
    assert stale.recent_workflows(1.0 + WORKFLOW_WINDOW + 1) == []


def test_the_address_is_an_ip_and_port():
    assert parse_address("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    for bad in ("localhost:9464", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ":9464"):
        with pytest.raises(DeviceError, match="expected IP:PORT"):
            parse_address(bad)


def test_a_taken_port_fails_the_start_with_a_clear_error(tmp_path, munged):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DeviceError, match="cannot serve metrics on 127.0.0.1:"):
            Service(ServiceConfig(address="tcp://127.0.0.1:*", threads=1, metrics="", executor=False,
                                  metrics_address=f"127.0.0.1:{port}"))


def test_off_by_default(tmp_path, munged):
    service = Service(ServiceConfig(address="tcp://127.0.0.1:*", threads=1, metrics="", executor=False))
    try:
        assert service.metrics_server is None and service.dispatcher.monitor is None
    finally:
        service.close()


DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "hcqw-qpu.json"
_NAME = re.compile(r"\b((?:hcqw_qpu|process)_[a-z_]+)\b")


def test_the_grafana_dashboard_queries_only_what_the_exporter_serves(service):
    """Every metric name in every panel's query is one a real scrape serves, and every family of the
    contract has a panel: a renamed metric breaks this test, not the operators' dashboard."""
    with ServiceClient(service.address) as client:  # one run, so every per-user and per-workflow series exists
        qpu = client.session("wf", "n1")
        qpu.run(BELL, 10)
        qpu.close()
    served = set(scrape(service.metrics_server.address))
    dashboard = json.loads(DASHBOARD.read_text())
    used: set[str] = set()
    for panel in dashboard["panels"]:
        exprs = [target["expr"] for target in panel["targets"]]
        assert exprs and all(_NAME.search(e) for e in exprs), panel["title"]
        for expr in exprs:
            names = set(_NAME.findall(expr))
            assert names <= served, (panel["title"], names - served)
            used |= names
    for query in (v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"):
        assert set(_NAME.findall(query)) <= served, query
    assert {base for base in METRICS if any(name.startswith(base) for name in used)} == set(METRICS)
