"""Fair order of concurrent chains on the lab cluster: a quantum node of an earlier iteration
gets the qpu node before a waiting node of a later iteration, whichever workflow was submitted
first (each chain keeps a window of its jobs in SLURM; a quantum node queued ahead of its turn
carries ``nice = LOOKAHEAD_NICE``), plus the ``nice`` field on both submission paths.

With two chains the contest depends on timing (A's c0001 must end before the qpu node is free
again for B's q0001; releasing the node and starting the next hetjob take about a second each),
so three users submit one after another: while B's q0001 holds the qpu node, A's q0002 becomes
eligible and C's q0001 is still waiting. A's q0002 entered SLURM with A's first window, before
C's q0001: without the look-ahead nice, SLURM's submit order would give it the qpu node first. The
lab has two qpu nodes; the contest needs one, so every qpu component asks for the first.
"""

from __future__ import annotations

import logging
from itertools import permutations

import pytest

from hcqw.hetjob.chain import follow_chains, submit_chain
from hcqw.hetjob.jobs import NodeJobSettings
from hcqw.hetjob.records import qpu_component_times
from hcqw.metrics import read_events
from hcqw.slurm import ComponentSpec, JobRequest, SlurmSettingsError, render_script
from hcqw.slurm.rest import submit_payload

pytestmark = pytest.mark.slurm
log = logging.getLogger(__name__)
LOOP = "tests.support.loops:make"


def test_nice_reaches_the_script_and_every_rest_part(tmp_path):
    request = JobRequest("wf", "q0002", "true\n", (ComponentSpec("cpu"), ComponentSpec("qpu", gres="qpu:1")),
                         tmp_path, nice=2000)
    assert "#SBATCH --nice=2000" in render_script(request).split("#SBATCH hetjob")[0]
    assert [part["nice"] for part in submit_payload(request)["jobs"]] == [2000, 2000]
    assert "--nice" not in render_script(JobRequest("wf", "init", "true\n", (ComponentSpec("cpu"),), tmp_path))
    with pytest.raises(SlurmSettingsError, match="JobRequest.nice"):
        JobRequest("wf", "x", "true\n", (ComponentSpec("cpu"),), tmp_path, nice=2**31)
    with pytest.raises(SlurmSettingsError, match="JobRequest.nice"):
        ComponentSpec("cpu", extra=("--nice=5",))


def test_concurrent_chains_share_the_qpu_node_iteration_by_iteration(sbatch, slurm_lab, tmp_path):
    params = {"iterations": 2, "hold": 1.0}
    one_qpu_node = NodeJobSettings(qpu=ComponentSpec("qpu", gres="qpu:1", time_limit=10,
                                                     extra=(f"--nodelist={slurm_lab.layout.qpu_node_names[0]}",)))
    chains = [submit_chain(sbatch, LOOP, params, f"fair-{user}", tmp_path / "runs", one_qpu_node) for user in "abc"]
    follow_chains(sbatch, chains, timeout=120)
    states = sbatch.status([job for chain in chains for _, job in chain.jobs])

    eligible, qpu_start, hold_start = {}, {}, {}
    for chain in chains:
        jobs = dict(chain.jobs)
        for i in (1, 2):
            key = (chain.workflow, i)
            if i == 1:  # the submitter wrote the initial state: eligible when submitted
                eligible[key] = states[jobs["q0001"]].component(0).submit_time.timestamp()
            else:
                eligible[key] = states[jobs[f"c{i - 1:04d}"]].component(0).end_time.timestamp()  # whole seconds
            qpu_start[key] = qpu_component_times(states[jobs[f"q{i:04d}"]])[0]
            (hold,) = [e for e in read_events(chain.ctx.metrics_path, "hold") if e["node"] == f"q{i:04d}"]
            hold_start[key] = hold["start"]  # session open on the gateway: exact order on the device

    # (early, late): node ``early`` of a lower iteration was already waiting when ``late`` became
    # eligible (comparisons on SLURM's whole seconds, strict, so they hold for the true times too).
    contests = [(early, late) for early, late in permutations(eligible, 2)
                if early[1] < late[1] and eligible[early] < eligible[late] < qpu_start[early]]
    waits = {key: qpu_start[key] - eligible[key] for key in eligible}
    log.info("qpu order: %s; contests: %s; longest wait for the qpu node %.0f s (%s)",
             sorted(hold_start, key=hold_start.get), contests, max(waits.values()), max(waits, key=waits.get))
    assert contests, "no quantum node of a later iteration became eligible while one of an earlier iteration waited"
    for early, late in contests:
        assert hold_start[early] < hold_start[late], (
            f"{late[0]} iteration {late[1]} got the qpu node before {early[0]} iteration {early[1]}, "
            "which was waiting for it already")
