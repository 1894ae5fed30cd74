"""``hcqw usage`` credits an event to the owner of the file it came from (issue 24, finding 7).

On the lab, ``hcqw-bob`` writes a metrics log of his own that names ``hcqw-alice`` (an hour's hold
and an exec); ``hcqw-alice`` has a genuine log of hers. Root's ``hcqw usage`` charges bob's hour to
bob and says so, alice keeps exactly her own charge, and a log that is a link bob planted to
alice's is refused rather than read twice."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import pytest

from hcqw.lab.users import USERS
from hcqw.usage.collect import collect
from hcqw.usage.period import Period, UsageError

pytestmark = pytest.mark.slurm
ALICE, BOB = USERS


def write_log(lab, user, run_dir, events):
    text = "".join(json.dumps(e) + "\n" for e in events)
    made = lab.exec(user, ["sh", "-c", f"mkdir -p {run_dir}/metrics && cat > {run_dir}/metrics/qpu.jsonl"],
                    input=text, capture_output=True, text=True, timeout=30)
    assert made.returncode == 0, made.stderr


def test_an_event_naming_another_user_is_charged_to_the_files_owner(slurm_lab, lab_user_dir, caplog):
    now = time.time() - 7200
    alice_dir, bob_dir = lab_user_dir(ALICE), lab_user_dir(BOB)
    write_log(slurm_lab, ALICE, alice_dir, [
        {"kind": "hold", "workflow": "hers", "node": "q1", "user": ALICE, "start": now, "end": now + 10}])
    write_log(slurm_lab, BOB, bob_dir, [
        {"kind": "hold", "workflow": "hers", "node": "q9", "user": ALICE, "start": now + 100, "end": now + 3700},
        {"kind": "exec", "workflow": "hers", "node": "q9", "user": {"uid": 0, "user": ALICE}, "device": "d",
         "start": now + 200, "end": now + 260}])
    with caplog.at_level(logging.WARNING, logger="hcqw.usage.logs"):
        table = collect([alice_dir, bob_dir], Period(None, None), "hold", ("user",))
    charged = {row.key["user"]: (row.charged_s, row.busy_s) for row in table.rows}
    assert charged == {ALICE: (pytest.approx(10), 0), BOB: (pytest.approx(3600), pytest.approx(60))}
    assert f"{bob_dir}/metrics/qpu.jsonl: 2 event(s) name a user other than the file's owner; charged to its " \
           f"owner {BOB}" in caplog.text


def test_the_cli_reports_it_and_believes_only_the_service_accounts_named(slurm_lab, lab_user_dir):
    bob_dir = lab_user_dir(BOB)
    write_log(slurm_lab, BOB, bob_dir, [
        {"kind": "hold", "workflow": "hers", "node": "q9", "user": ALICE, "start": 100.0, "end": 3700.0}])
    argv = [sys.executable, "-m", "hcqw", "usage", "--charge", "hold", "--by", "user", "--json", str(bob_dir)]
    default = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert default.returncode == 0, default.stderr
    assert [(r["user"], r["charged_s"]) for r in json.loads(default.stdout)["rows"]] == [(BOB, 3600.0)]
    assert "name a user other than the file's owner; charged to its owner hcqw-bob" in default.stderr
    believed = subprocess.run([*argv, "--service-account", BOB], capture_output=True, text=True, timeout=120)
    assert [(r["user"], r["charged_s"]) for r in json.loads(believed.stdout)["rows"]] == [(ALICE, 3600.0)]


def test_a_metrics_log_that_is_a_link_is_refused(slurm_lab, lab_user_dir):
    alice_dir, bob_dir = lab_user_dir(ALICE), lab_user_dir(BOB)
    write_log(slurm_lab, ALICE, alice_dir, [
        {"kind": "hold", "workflow": "hers", "node": "q1", "user": ALICE, "start": 1.0, "end": 11.0}])
    made = slurm_lab.exec(BOB, ["sh", "-c", f"mkdir {bob_dir}/metrics && ln -s {alice_dir}/metrics/qpu.jsonl "
                                            f"{bob_dir}/metrics/qpu.jsonl"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    with pytest.raises(UsageError, match=f"cannot read metrics log {bob_dir}/metrics/qpu.jsonl: .*symbolic link"):
        collect([alice_dir, bob_dir], Period(None, None), "hold", ("user",))
