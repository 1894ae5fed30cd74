"""What a process trusts on disk: a directory is private only when it and every directory above
it are the user's or root's and writable by no one else (a sticky /tmp above excepted), links
included; files are opened without following a link."""

from __future__ import annotations

import os

import pytest

from hcqw.trust import UntrustedPath, make_private_dir, open_nofollow, read_own_file, require_private, untrusted_reason


@pytest.fixture
def private(tmp_path):
    tmp_path.chmod(0o700)
    return tmp_path


def test_a_private_directory_below_sticky_tmp_is_trusted(private):
    assert untrusted_reason(private) is None
    assert untrusted_reason("/tmp") is not None  # /tmp itself: anyone may write it


@pytest.mark.parametrize("mode, said", [(0o777, "writable by others"), (0o775, "writable by its group"),
                                        (0o1777, "writable by others")])
def test_a_directory_others_may_write_is_refused_itself_or_above(private, mode, said):
    shared = private / "shared"
    (shared / "mine").mkdir(parents=True, mode=0o700)
    shared.chmod(mode)
    if mode & 0o1000:  # sticky above the path is fine, as the path itself it is not
        assert untrusted_reason(shared / "mine") is None
    else:
        assert said in untrusted_reason(shared / "mine")
    assert said in untrusted_reason(shared)
    with pytest.raises(UntrustedPath, match=f"run directory {shared} is not private.*{said}.*chmod 700"):
        require_private(shared, "run directory", "Fix it: chmod 700 the directory")


def test_a_directory_of_another_user_is_refused(private):
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory away")
    other = private / "other"
    other.mkdir()
    os.chown(other, 65534, 65534)
    other.chmod(0o755)
    assert "belongs to nobody" in untrusted_reason(other)
    mine = other / "mine"
    os.mkdir(mine, 0o700)
    assert "belongs to nobody" in untrusted_reason(mine)  # an ancestor of another user's


def test_a_link_is_judged_by_who_made_it_and_where_it_leads(private):
    target = private / "target"
    target.mkdir(mode=0o700)
    link = private / "link"
    link.symlink_to(target)
    assert untrusted_reason(link) is None  # my link to my directory
    shared = private / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    (private / "to-shared").symlink_to(shared)
    assert "writable by others" in untrusted_reason(private / "to-shared")
    if os.geteuid() == 0:
        os.lchown(link, 65534, 65534)
        assert "a link made by nobody" in untrusted_reason(link)


def test_make_private_dir_creates_0700_and_refuses_a_shared_one(private):
    made = make_private_dir(private / "runs" / "wf", "run directory", "fix")
    assert oct(made.stat().st_mode & 0o777) == "0o700"
    (private / "runs").chmod(0o777)
    with pytest.raises(UntrustedPath, match="writable by others"):
        make_private_dir(private / "runs" / "wf2", "run directory", "fix")


def test_no_follow_opens_refuse_a_planted_link(private):
    victim = private / "victim"
    victim.write_text("intact")
    (private / "log").symlink_to(victim)
    with pytest.raises(UntrustedPath, match="symbolic link"):
        open_nofollow(private / "log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with pytest.raises(UntrustedPath, match="symbolic link"):
        read_own_file(private / "log")
    assert victim.read_text() == "intact"
    if os.geteuid() == 0:
        os.chown(victim, 65534, 65534)
        with pytest.raises(UntrustedPath, match="not a file of root's"):
            read_own_file(victim)
