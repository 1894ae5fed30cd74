"""Fair share between users on one QPU (issue 14), on the accounting lab as two real lab users.

User A (hcqw-alice) submits four split chains and user B (hcqw-bob) one, together, on one qpu
node, A having used the QPU more than B before (``fair_share.make_heavier``: fair share acts on
recorded usage only). With multifactor fair share and hcqw's bounded window (``hcqw.hetjob.chain``: no nice that
grows with the iteration, one constant nice on every look-ahead quantum node), B is
not starved: B's longest wait for the QPU is at most one quantum block plus the hand-over, and
B's workflow ends before A's last one. Figures come from SLURM's records (``fair_share.measure``).
"""

from __future__ import annotations

import uuid

import pytest

from hcqw.slurm import open_backend
from tests.usage import fair_share

pytestmark = pytest.mark.slurm


def test_a_short_qpu_job_counts_in_fair_share_when_it_ends(acct_lab, lab_env):
    # A quantum node's qpu component lasts seconds, far less than PriorityCalcPeriod (1 min): unless
    # slurmctld adds its usage when it ends (AccountingStorageEnforce with limits), fair share never
    # sees it (measured on 22.05 with "associations" alone: RawUsage stayed 0).
    backend = open_backend("slurm", env=acct_lab.env, poll_interval=0.5)
    billed, risen = fair_share.charge_qpu_job(acct_lab, backend, fair_share.LIGHT, seconds=3, timeout=10.0)
    assert billed > 0
    assert risen == pytest.approx(billed, rel=0.01)  # all of it (a 7-day half-life decays ~nothing in seconds)


def test_light_user_is_not_starved_by_a_heavy_user(acct_lab, lab_env):
    backend = open_backend("slurm", env=acct_lab.env, poll_interval=0.5)
    qpu_node = next(h.name for h in acct_lab.hosts if h.role == "qpu")
    with fair_share.only_qpu_node(acct_lab, qpu_node):
        # A is the heavy user: fair share acts on recorded usage, which a fresh database has none of.
        fair_share.make_heavier(acct_lab, backend, fair_share.HEAVY, fair_share.LIGHT)
        figures, jobs = fair_share.run(acct_lab, backend, tag=f"test-{uuid.uuid4().hex[:8]}", heavy_workflows=4,
                                       iterations=3, hold=1.0)
    states = backend.status([job for listed in jobs.values() for _, job in listed], force=True)
    assert {states[job].component(1).nodelist for listed in jobs.values() for node, job in listed
            if node.startswith("q")} == {qpu_node}
    assert figures.light_not_starved, figures
    assert figures.light_finishes_first, figures
