"""Lab users (hcqw.lab.users, LabCluster.exec): real Unix users whose jobs, files and homes are their own."""

from __future__ import annotations

import os
import pwd
import stat
import uuid
from pathlib import Path

import pytest

from hcqw.lab import LabCluster
from hcqw.lab.users import SERVICE_ACCOUNT, USERS
from tests.support import lab_user
from tests.support.lab_jobs import job_records, wait_done

pytestmark = pytest.mark.slurm
ALICE, BOB = USERS


def as_user(lab: LabCluster, user: str, *argv: str, **kw):
    return lab_user.as_user(lab, user, *argv, timeout=120, **kw)


def test_homes_are_private_and_owned(slurm_lab: LabCluster) -> None:
    for user in USERS:
        home = slurm_lab.home(user)
        info = home.stat()
        assert pwd.getpwuid(info.st_uid).pw_name == user and stat.S_IMODE(info.st_mode) == 0o700
    service = pwd.getpwnam(SERVICE_ACCOUNT)
    assert service.pw_uid < 1000 and service.pw_shell.endswith("nologin")  # a system account, no login


def test_exec_runs_as_the_user_with_the_lab_environment(slurm_lab: LabCluster, tmp_path: Path) -> None:
    result = as_user(slurm_lab, ALICE, "sh", "-c", 'id -un; pwd; echo "$HOME|$USER|$LOGNAME|$SLURM_CONF|'
                                                   '$HCQW_MUNGE_SOCKET|$PATH"; umask; exit 7')
    assert result.returncode == 7  # passed through
    user, cwd, env, umask = result.stdout.splitlines()
    home = str(slurm_lab.home(ALICE))
    assert user == ALICE and cwd == home and umask == "0077"
    h, u, l, conf, munge, path = env.split("|")
    assert (h, u, l, conf, munge) == (home, ALICE, ALICE, str(slurm_lab.slurm_conf), str(slurm_lab.layout.munge_socket))
    assert path.split(":")[0] == str(slurm_lab.site.bin)
    # Nothing of the caller's environment leaks in (e.g. root's PYTHONPATH or a secret).
    os.environ["HCQW_TEST_SECRET"] = "x"
    try:
        assert "HCQW_TEST_SECRET" not in as_user(slurm_lab, BOB, "env").stdout
    finally:
        del os.environ["HCQW_TEST_SECRET"]
    # What the caller passes arrives through the environment, never on a command line others can list.
    token = f"secret-{uuid.uuid4().hex}"
    seen = as_user(slurm_lab, BOB, "sh", "-c", 'echo "$HCQW_SLURM_JWT"; cat /proc/$PPID/cmdline /proc/$$/cmdline',
                   env={"HCQW_SLURM_JWT": token})
    assert seen.stdout.splitlines()[0] == token and token not in seen.stdout.split("\n", 1)[1]


def test_users_run_hcqw_from_the_site_venv(slurm_lab: LabCluster) -> None:
    code = "import hcqw, examples.vqe.pipeline, tests.support.loops, qsimcirq; print(hcqw.__file__)"
    result = as_user(slurm_lab, BOB, "python", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(slurm_lab.site.src / "hcqw" / "__init__.py")
    assert as_user(slurm_lab, BOB, "hcqw", "--version").returncode == 0


def test_alice_job_runs_as_alice_and_bob_cannot_read_her_files(slurm_lab: LabCluster, lab_user_dir) -> None:
    name = f"mine-{uuid.uuid4().hex[:8]}"
    workdir = lab_user_dir(ALICE)
    out = workdir / f"{name}.out"
    submitted = as_user(slurm_lab, ALICE, "sbatch", "--parsable", "-J", name, "-o", str(out), "--wrap",
                        'id -un; python -c "from hcqw.checkpoint import load_key; load_key()"; '
                        'echo "$SLURMD_NODENAME"', cwd=workdir)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    assert wait_done(job)[job] == "COMPLETED"
    record = job_records(job)[job]
    assert record["UserId"].startswith(f"{ALICE}(")
    assert out.read_text().splitlines()[0] == ALICE
    key = slurm_lab.home(ALICE) / ".config" / "hcqw" / "checkpoint.key"
    for path, mode in ((out, 0o600), (key, 0o600)):
        info = path.stat()
        assert pwd.getpwuid(info.st_uid).pw_name == ALICE and stat.S_IMODE(info.st_mode) == mode, path
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
    for argv in (["cat", str(out)], ["ls", str(slurm_lab.home(ALICE))], ["cat", str(key)]):
        denied = as_user(slurm_lab, BOB, *argv)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, argv


def test_bob_cannot_cancel_alices_job(slurm_lab: LabCluster) -> None:
    # SLURM knows who asks from munge, not from anything the client says.
    name = f"keep-{uuid.uuid4().hex[:8]}"
    job = as_user(slurm_lab, ALICE, "sbatch", "--parsable", "-J", name, "-o", "/dev/null", "--wrap",
                  "sleep 30").stdout.strip()
    try:
        refused = as_user(slurm_lab, BOB, "scancel", job)
        assert "permission denied" in refused.stderr.lower(), refused.stderr
        assert job_records(job)[job]["JobState"] in ("PENDING", "RUNNING")
    finally:
        as_user(slurm_lab, ALICE, "scancel", job)
