"""Issue 23, point 4 on the multi-host lab: the resident QPU service's Prometheus metrics while two users run.

The lab runs each qpu host's service from the site's unit, which serves metrics on that host's
loopback (``hcqw.lab.resident.METRICS_ADDRESS``); root scrapes it from inside the host's network
namespace, as a Prometheus agent on the node would. ``hcqw-alice`` and ``hcqw-bob`` each open a
session from a job holding the QPU and run; Bob first tries without an allocation (refused) and
Alice sends one run beyond the limit of shots per item. What the scrapes show between before and
after must be what the service's own log says (``hcqw device stats``' figures over the same events).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hcqw.lab import LabCluster, resident, users
from hcqw.lab.users import USERS
from hcqw.metrics import read_events
from hcqw.service import protocol as P
from hcqw.service.stats import compute_stats
from tests.support.lab_user import as_user, site_script

pytestmark = [pytest.mark.slurm, pytest.mark.usefixtures("lab_munge")]
ALICE, BOB = USERS
SCRAPE = ("import sys, urllib.request; "
          "sys.stdout.write(urllib.request.urlopen(f'http://{sys.argv[1]}/metrics', timeout=10).read().decode())")


def scrape(lab: LabCluster, node: str) -> dict[str, dict[tuple, float]]:
    """name -> {label pairs: value} of the resident service's metrics, fetched on ``node`` itself."""
    argv = [*lab.network.host(node).enter(), str(lab.site.bin / "python"), "-c", SCRAPE, resident.METRICS_ADDRESS]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(done.stdout):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def srun_session(lab: LabCluster, user: str, node: str) -> list[str]:
    """``open_session.py`` on the resident service from ``user``'s job holding the QPU of ``node``."""
    return ["srun", "-p", "qpu", "--gres=qpu:1", f"--nodelist={node}", "-t", "3", "-n", "1",
            str(lab.site.bin / "python"), site_script(lab, "open_session.py"), lab.qpu_service_address(node)]


def test_the_resident_service_exports_what_two_users_did(slurm_lab, tmp_path):
    node = slurm_lab.layout.qpu_node_names[0]
    log = resident.metrics_log(slurm_lab.layout, node)
    before = scrape(slurm_lab, node)
    logged_before = len(list(read_events(log)))

    # Bob without an allocation: refused (forbidden), before any work.
    done = as_user(slurm_lab, BOB, str(slurm_lab.site.bin / "python"), site_script(slurm_lab, "open_session.py"),
                   slurm_lab.qpu_service_address(node), input="run\nquit\n")
    assert json.loads(done.stdout.splitlines()[0])["code"] == P.E_FORBIDDEN, done

    # Alice from her job: two runs and one beyond the limit of shots per item; scraped while her session is open.
    alice = subprocess.Popen(users.as_user(ALICE, srun_session(slurm_lab, ALICE, node)), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=slurm_lab.user_env(ALICE),
                             cwd=slurm_lab.home(ALICE), umask=users.USER_UMASK, start_new_session=True)
    try:
        assert json.loads(alice.stdout.readline())["code"] == "ok"
        replies = []
        for command in ("run", "run", "big"):
            alice.stdin.write(f"{command}\n")
            alice.stdin.flush()
            replies.append(json.loads(alice.stdout.readline()))
        assert [r["code"] for r in replies] == ["ok", "ok", P.E_TOO_LARGE], replies
        during = scrape(slurm_lab, node)
        alice.stdin.write("quit\n")
        alice.stdin.flush()
        assert alice.wait(120) == 0
    finally:
        if alice.poll() is None:
            os.killpg(alice.pid, signal.SIGKILL)
            alice.wait(10)
    assert value(during, "hcqw_qpu_sessions", user=ALICE) == 1, during.get("hcqw_qpu_sessions")

    # Bob from his job: three runs.
    done = as_user(slurm_lab, BOB, *srun_session(slurm_lab, BOB, node), input="run\nrun\nrun\nquit\n")
    assert done.returncode == 0 and [json.loads(line)["code"] for line in done.stdout.splitlines()] == ["ok"] * 4, done
    after = scrape(slurm_lab, node)

    # The service's own record of the same time: the events its log got meanwhile.
    new_events = list(read_events(log))[logged_before:]
    window = tmp_path / "window.jsonl"
    window.write_text("".join(json.dumps(e) + "\n" for e in new_events))
    stats = compute_stats(window)
    for user, runs in ((ALICE, 2), (BOB, 3)):
        busy = value(after, "hcqw_qpu_busy_seconds_total", user=user) - value(before, "hcqw_qpu_busy_seconds_total",
                                                                            user=user)
        assert busy > 0 and busy == pytest.approx(stats["per_user"][user]["quantum_s"], rel=1e-6, abs=1e-9), user
        assert value(after, "hcqw_qpu_runs_total", user=user) - value(before, "hcqw_qpu_runs_total", user=user) \
            == stats["per_user"][user]["jobs"] == runs
        opened = value(after, "hcqw_qpu_sessions_opened_total", user=user) - value(
            before, "hcqw_qpu_sessions_opened_total", user=user)
        assert opened == stats["per_user"][user]["sessions"] == 1, user
        assert value(after, "hcqw_qpu_sessions", user=user) == 0
    busy_all = value(after, "hcqw_qpu_device_busy_seconds_total") - value(before, "hcqw_qpu_device_busy_seconds_total")
    assert busy_all == pytest.approx(stats["busy_s"], rel=1e-6, abs=1e-9)
    workflow = value(after, "hcqw_qpu_workflow_busy_seconds_total", workflow="access-wf") - value(
        before, "hcqw_qpu_workflow_busy_seconds_total", workflow="access-wf")
    assert workflow == pytest.approx(stats["per_workflow"]["access-wf"]["quantum_s"], rel=1e-6, abs=1e-9)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("hcqw_qpu_refused_requests_total", reason=P.E_FORBIDDEN) == 1
    assert delta("hcqw_qpu_refused_requests_total", reason=P.E_TOO_LARGE) == 1
    assert delta("hcqw_qpu_limit_hits_total", limit="item_shots") == 1
    assert delta("hcqw_qpu_queue_wait_seconds_count") == 5
    assert delta("hcqw_qpu_device_status_changes_total", status="executing") == 5  # each run on an idle device
    assert value(after, "hcqw_qpu_device_status", status="idle") == 1
    assert value(after, "hcqw_qpu_queue_jobs") == 0
    # Nothing secret: no session ids (128-bit hex), credentials or circuits among the label values.
    labels = {v for series in after.values() for key in series for _, v in key}
    assert not any(len(v) == 32 and all(c in "0123456789abcdef" for c in v) for v in labels), labels
    assert not any("cirq_type" in v or "MUNGE" in v for v in labels), labels
