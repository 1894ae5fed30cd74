"""Accounting mode (hcqw.lab.accounting): quantum time as a TRES of its own, fair share, an account per user."""

from __future__ import annotations

import pytest

from hcqw.lab import LabCluster
from hcqw.lab.pytest_plugin import wait_for
from hcqw.lab.users import USERS
from tests.support.lab_jobs import HETJOB_SCRIPT, run, wait_done

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
ALICE = USERS[0]


def test_each_user_has_an_account_under_the_parent(acct_lab: LabCluster) -> None:
    rows = run(["sacctmgr", "-n", "-P", "show", "association", "format=account,user,parentname",
                f"cluster={acct_lab.cluster_name}"], acct_lab.env).splitlines()
    accounts = {tuple(row.split("|")) for row in rows}
    for user in USERS:
        account = user.removeprefix("hcqw-")
        assert (account, user, "") in accounts and (account, "", "qpu_users") in accounts
    config = run(["scontrol", "show", "config"], acct_lab.env)
    assert "priority/multifactor" in config and "gres/qpu" in config


def test_sacct_shows_gres_qpu_for_alices_quantum_component(acct_lab: LabCluster) -> None:
    home = acct_lab.home(ALICE)
    (script := home / "het.sh").write_text(HETJOB_SCRIPT)
    submitted = acct_lab.exec(ALICE, ["sbatch", "--parsable", "-o", "/dev/null", str(script)], capture_output=True,
                              text=True, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    leader = submitted.stdout.strip()
    wait_done(leader, acct_lab.env)

    def recorded() -> dict[str, list[str]]:
        out = run(["sacct", "-n", "-P", "-X", "-j", leader, "-o", "JobID,User,Account,AllocTRES,Elapsed,State"],
                  acct_lab.env)
        rows = {line.split("|")[0]: line.split("|") for line in out.splitlines() if line}
        return rows if len(rows) == 2 and all(r[5] == "COMPLETED" for r in rows.values()) else {}

    rows = wait_for(recorded, timeout=30, what="sacct to record both components")
    cpu, qpu = rows[f"{leader}+0"], rows[f"{leader}+1"]
    assert cpu[1] == qpu[1] == ALICE and cpu[2] == qpu[2] == "alice"
    assert "gres/qpu=1" in qpu[3].split(",") and "gres/qpu" not in cpu[3]
    billing = dict(item.split("=") for item in qpu[3].split(","))["billing"]
    assert int(billing) > 60  # quantum-seconds bill 60x a core-second


def test_user_without_association_is_refused(acct_lab: LabCluster) -> None:
    # Associations are enforced: only users the site gave an account may submit.
    result = acct_lab.exec(ALICE, ["sbatch", "-A", "bob", "--wrap", "true"], capture_output=True, text=True,
                           timeout=60)
    assert result.returncode != 0 and "Invalid account" in result.stderr
