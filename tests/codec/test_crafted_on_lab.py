"""Issue 20's crafted circuit messages on the multi-host lab, sent by ``hcqw-bob`` from jobs of his
own, each holding the first qpu host's ``gres/qpu`` (only such jobs reach its resident QPU service):
straight to the service, and through his own quantum node's relay gateway. Each is refused by name,
runs nothing as the service's account, and the service meanwhile answers ``hcqw-alice``'s status
requests (no allocation needed) and an operator's runs (root: an operator needs none either; alice's
own runs would need the host's one gres slot, which bob holds). The figures are round trips from
bob's job: the median of each message's refusals must be within 50 ms, the slowest within a second."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from hcqw.device.work import WorkItem
from hcqw.hetjob.jobs import NodeJobSettings, command_request
from hcqw.lab import LabCluster
from hcqw.lab.users import USERS
from hcqw.service import protocol as P
from hcqw.service.client import ServiceClient
from hcqw.slurm import ComponentSpec, render_script
from tests.codec.crafted import circuit_with
from tests.support.lab_user import as_user
from tests.support.lab_jobs import wait_done

pytestmark = pytest.mark.slurm
ALICE, BOB = USERS
SECONDS = 6.0  # how long bob keeps sending; alice works all the while
REFUSED = {  # what the service's decoder says, and what the relay's screen says before forwarding
    "direct": {"sympify_at_top": "unknown field(s) x", "sympify_in_exponent": "'sympy.Xor' is not accepted",
               "indexed_symbol": "'sympy.Indexed' is not accepted", "huge_power": "exponent must be a number",
               "repeated_subcircuit": "1000000000000 is outside"},
    "gateway": {"sympify_at_top": "'sympy.Not' is not accepted", "sympify_in_exponent": "'sympy.Xor' is not accepted",
                "indexed_symbol": "'sympy.Indexed' is not accepted", "huge_power": "exponent must be a number",
                "repeated_subcircuit": "operations with sub-circuit repetitions expanded"},
}

ALICE_ASKS = """
import json, sys, time
from hcqw.service.client import ServiceClient
slowest, count = 0.0, 0
with ServiceClient(sys.argv[1], timeout=30) as client:
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end:
        start = time.perf_counter()
        client.status()
        slowest, count = max(slowest, time.perf_counter() - start), count + 1
        time.sleep(0.005)
print(json.dumps({"slowest": slowest, "rounds": count}))
"""


def crafted_script(lab: LabCluster) -> str:
    return str(lab.site.src / "tests" / "codec" / "crafted.py")


def bobs_quantum_node(lab: LabCluster, workdir: Path, node: str, marker: str) -> str:
    """Bob's own quantum node, relaying to the resident service; its command sends the messages."""
    python = str(lab.site.bin / "python")
    settings = NodeJobSettings(python=python, device_service=lab.layout.qpu_service_address_pattern,
                               qpu=ComponentSpec("qpu", gres="qpu:1", time_limit=10, extra=(f"--nodelist={node}",)))
    request = command_request(f"{python} {crafted_script(lab)} --gateway {marker} {SECONDS} >{workdir}/via-gateway.json",
                              workflow="crafted-wf", name="crafted", workdir=workdir, settings=settings, quantum=True,
                              env_base=lab.user_env(BOB))
    as_user(lab, BOB, "mkdir", "-p", str(workdir / "slurm"))
    submitted = as_user(lab, BOB, "sbatch", "--parsable", "--export=ALL", input=render_script(request),
                        env=request.environment, cwd=workdir)
    assert submitted.returncode == 0, submitted.stderr
    return submitted.stdout.strip()


def others_meanwhile(lab: LabCluster, resident: str, out: dict) -> list[threading.Thread]:
    """Alice's status requests and an operator's runs on the same service, while bob attacks."""
    def alice():
        done = as_user(lab, ALICE, "python", "-c", ALICE_ASKS, resident, str(SECONDS + 4),
                       env={"PYTHONPATH": str(lab.site.src)})
        out["alice"] = json.loads(done.stdout) if done.returncode == 0 else done.stderr

    def operator():
        circuit = circuit_with('{"cirq_type": "HPowGate", "exponent": 1.0, "global_shift": 0.0}')
        slowest, count = 0.0, 0
        with ServiceClient(resident, timeout=30) as client, client.session("operator-wf", "operator", seed=5) as qpu:
            end = time.monotonic() + SECONDS + 4
            while time.monotonic() < end:
                start = time.perf_counter()
                qpu.run_batch([WorkItem(circuit, 100)])
                slowest, count = max(slowest, time.perf_counter() - start), count + 1
        out["operator"] = {"slowest": slowest, "rounds": count}
    threads = [threading.Thread(target=alice), threading.Thread(target=operator)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.parametrize("route", ["direct", "gateway"])
def test_crafted_circuits_are_refused_fast_and_run_nothing_on_the_lab(slurm_lab, lab_user_dir, route):
    node = slurm_lab.layout.qpu_node_names[0]
    resident = slurm_lab.qpu_service_address(node)
    workdir = lab_user_dir(BOB)
    marker = f"/tmp/hcqw-crafted-{uuid.uuid4().hex}"  # anyone, hcqw-qpu too, could write it there
    others: dict = {}
    threads = others_meanwhile(slurm_lab, resident, others)
    try:
        if route == "direct":
            job = as_user(slurm_lab, BOB, "sbatch", "--parsable", "-J", "crafted", "-t", "5", "-n", "1", "-p", "qpu",
                          "--gres=qpu:1", f"--nodelist={node}", "-o", f"{workdir}/crafted.log", "--wrap",
                          f"python {crafted_script(slurm_lab)} {resident} {marker} {SECONDS} >direct.json",
                          cwd=workdir)
            assert job.returncode == 0, job.stderr
            job_id, out = job.stdout.strip(), workdir / "direct.json"
        else:
            job_id, out = bobs_quantum_node(slurm_lab, workdir, node, marker), workdir / "via-gateway.json"
        states = wait_done(job_id, timeout=300)
    finally:
        for thread in threads:
            thread.join(timeout=120)
    logs = "\n".join(p.read_text()[-2000:] for p in [*workdir.glob("slurm/*.out"), *workdir.glob("*.log")])
    assert states[job_id] == "COMPLETED", (states, logs)  # a quantum node's qpu component ends CANCELLED: released
    seen = json.loads(out.read_text())
    print(route, {name: (v.get("sent"), round(v.get("median_ms", 0), 2), round(v.get("slowest_ms", 0), 1))
                  for name, v in seen.items()}, "meanwhile:", others)
    for name, said in REFUSED[route].items():
        assert seen[name]["code"] in (P.E_CIRCUIT, P.E_BAD_MESSAGE), (name, seen[name])
        assert said in seen[name]["message"], (name, seen[name])
        # Round trips from a job, while alice's runs share the service loop and the machine's 2 cores
        assert seen[name]["median_ms"] <= 50 and seen[name]["slowest_ms"] < 1000, (name, seen[name])
    assert seen["own_run_after"] == {"code": "ok"}
    assert not Path(marker).exists(), "a crafted message ran code"
    assert isinstance(others.get("alice"), dict) and isinstance(others.get("operator"), dict), others
    assert others["alice"]["rounds"] > 5 and others["alice"]["slowest"] < 1.0, others
    assert others["operator"]["rounds"] > 5 and others["operator"]["slowest"] < 1.0, others
    with ServiceClient(resident) as operator:
        assert operator.status()["status"] == "idle"
