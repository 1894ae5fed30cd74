"""hcqw run as a lab user on the multi-host lab, and what the site recorded of it.

Acceptance of the site (issue 11): what README shows works unchanged for an ordinary user, SLURM
puts the two components of every quantum node on different hosts (a cpu host, a qpu host) under
that user's name, and the user's files stay theirs.
"""

from __future__ import annotations

import pwd
import stat
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from hcqw.checkpoint import load_key
from hcqw.lab import LabCluster
from hcqw.lab.users import USERS
from hcqw.slurm import ComponentInfo
from hcqw.slurm.commands import run_slurm
from hcqw.slurm.parsing import group_by_leader, parse_scontrol

ALICE, BOB = USERS


def as_user(lab: LabCluster, user: str, *argv: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    """``argv`` as lab user ``user`` on the submit host, output captured; the exit code as it is."""
    return lab.exec(user, list(argv), capture_output=True, text=True, timeout=timeout, **kw)


def site_script(lab: LabCluster, name: str, folder: str = "service") -> str:
    """A test script as the lab's users run it: from the site's copy of this checkout."""
    return str(lab.site.src / "tests" / folder / name)


def run_as(lab: LabCluster, user: str, argv: list[str], cwd: Path | None = None,
           env: Mapping[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """``argv`` as ``user`` on the submit host (``LabCluster.exec``), by default from the site's copy of
    the checkout, where README's commands run; fails the test with the output unless it exits 0."""
    result = lab.exec(user, argv, cwd=cwd or lab.site.src, env=dict(env or {}), capture_output=True, text=True,
                      timeout=timeout)
    assert result.returncode == 0, (f"{' '.join(argv)} as {user} exited {result.returncode}:\n"
                                    f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def quantum_nodes_across_hosts(lab: LabCluster, workflow: str, user: str) -> dict[str, list[ComponentInfo]]:
    """The workflow's quantum nodes (hetjobs named ``hcqw:<workflow>:...``) as SLURM recorded them, leader id
    -> its components; asserts that each ran as ``user`` with component 0 on a cpu host and component 1 on
    a qpu host."""
    records = parse_scontrol(run_slurm(["scontrol", "-o", "show", "job"], env=lab.env).stdout)
    mine = [r for r in records if (r.name or "").startswith(f"hcqw:{workflow}:")]
    assert mine, f"SLURM has no job of workflow {workflow}"
    quantum = {leader: sorted(parts, key=lambda c: c.het_offset or 0)
               for leader, parts in group_by_leader(mine).items() if any(c.het_offset == 1 for c in parts)}
    cpu_hosts, qpu_hosts = set(lab.layout.cpu_node_names), set(lab.layout.qpu_node_names)
    for leader, parts in quantum.items():
        hosts = [(c.het_offset, c.partition, c.nodelist) for c in parts]
        assert [h[:2] for h in hosts] == [(0, "cpu"), (1, "qpu")], (leader, hosts)
        assert parts[0].nodelist in cpu_hosts and parts[1].nodelist in qpu_hosts, (leader, hosts)
        assert {c.user for c in parts} == {user}, (leader, [c.user for c in parts])
    for record in mine:
        assert record.user == user, record
    return quantum


def assert_private(lab: LabCluster, owner: str, paths: Iterable[Path], intruder: str) -> int:
    """Each path is ``owner``'s, shut to group and others (files 0600, directories 0700), and ``intruder``
    can neither read nor list it. Returns how many paths were checked."""
    checked = 0
    for path in paths:
        info = path.stat()
        expected = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        assert (pwd.getpwuid(info.st_uid).pw_name, oct(stat.S_IMODE(info.st_mode))) == (owner, oct(expected)), path
        probe = ["ls", str(path)] if stat.S_ISDIR(info.st_mode) else ["cat", str(path)]
        denied = lab.exec(intruder, probe, capture_output=True, text=True, timeout=60)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, (intruder, path, denied)
        checked += 1
    assert checked, "nothing to check"
    return checked


def checkpoint_key(lab: LabCluster, user: str) -> bytes:
    """The signing key of ``user``'s checkpoints (made on their first run), for root to verify them."""
    return load_key(key_file(lab, user))


def key_file(lab: LabCluster, user: str) -> Path:
    return lab.home(user) / ".config" / "hcqw" / "checkpoint.key"
