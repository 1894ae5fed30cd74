"""bench.view: each exec on its node's qpu host in bench/coschedule.py's SLURM view (two hosts, two devices)."""

from __future__ import annotations

import pytest

from bench.view import execs_on_hosts, staged_problems
from hcqw.timeline.analysis import summarize
from hcqw.timeline.events import Event


def test_staged_execs_on_two_hosts_are_two_devices_not_one_executing_twice_at_once():
    # Each host's resident service names its simulator ("modelled"), the same on both hosts; SLURM's sessions
    # name the hosts. w2's node held its host's whole device (an unstaged hold); w3's exec has no allocation.
    events = [Event("session", "w0", "q0001", 0.0, 4.0, "lab-q1"), Event("exec", "w0", "q0001", 1.0, 3.0, "modelled"),
              Event("session", "w1", "q0001", 0.0, 4.0, "lab-q2"), Event("exec", "w1", "q0001", 1.5, 3.5, "modelled"),
              Event("hold", "w2", "q0001", 4.0, 6.0, "lab-q1"), Event("exec", "w2", "q0001", 4.5, 5.5, "gateway"),
              Event("exec", "w3", "q0001", 6.0, 7.0, "modelled")]
    assert any("executed w0/q0001 and w1/q0001 at once" in p for p in staged_problems(events))
    on_hosts = execs_on_hosts(events)
    assert [e.device for e in on_hosts if e.kind == "exec"] == ["lab-q1", "lab-q2", "lab-q1", "modelled"]
    assert not staged_problems(on_hosts[:6])
    # Busy seconds: every exec counted on its host (2 + 2 + 1), where one device merged the two hosts' overlap.
    assert summarize(on_hosts[:6]).qpu_busy == pytest.approx(5.0)
    assert summarize(events[:6]).qpu_busy == pytest.approx(3.5)
    assert execs_on_hosts(on_hosts) == on_hosts  # a view written with hosts already stays as it is
