"""hcqw.timeline.analysis: interval algebra, the figures and the consistency check on hand-made timelines."""

from __future__ import annotations

import pytest

from hcqw.metrics import MetricsLog
from hcqw.timeline.analysis import clip, consistency_problems, covered, gaps, quantum_nodes, summarize, union
from hcqw.timeline.events import Event, load_run
from tests.timeline.timelines import ev, hand_made


# -- interval algebra -----------------------------------------------------------------------------


def test_union_merges_overlapping_touching_and_nested_spans_and_drops_empty_ones():
    spans = [(5, 6), (0, 2), (1, 3), (3, 4), (7, 7), (9, 8), (10, 12), (10.5, 11)]
    assert union(spans) == [(0, 4), (5, 6), (10, 12)]
    assert covered(spans) == pytest.approx(4 + 1 + 2)
    assert union([]) == [] and covered([]) == 0


def test_gaps_are_the_complement_within_the_window():
    spans = [(1, 2), (1.5, 3), (5, 6), (8, 20)]
    assert gaps(spans, 0, 10) == [(0, 1), (3, 5), (6, 8)]
    assert gaps(spans, 2.5, 5.5) == [(3, 5)]
    assert gaps([], 0, 1) == [(0, 1)]
    assert gaps([(0, 1)], 0, 1) == []


def test_clip_cuts_spans_to_a_window():
    assert clip([(0, 2), (3, 5), (6, 7)], 1, 4) == [(1, 2), (3, 4)]


# -- figures on hand-made timelines ---------------------------------------------------------------


def test_summary_figures_of_a_hand_made_timeline():
    s = summarize(hand_made())
    assert (s.workflows, s.quantum_nodes, s.classical_nodes) == (2, 3, 2)
    assert s.makespan == 8
    assert s.qpu_busy == 3 and s.qpu_busy_fraction == pytest.approx(3 / 8)
    assert s.qpu_allocated == 4 and s.qpu_allocated_fraction == pytest.approx(0.5)
    assert s.qpu_allocated_idle == pytest.approx(1.0)  # a/q1 held 2 s, executed 1 s
    assert s.qpu_free == pytest.approx(4.0)
    assert s.idle_gaps == 4 and s.longest_idle_gap == pytest.approx(2.0)  # no exec: 0-1.5, 2.5-3, 4-6, 7-8
    assert s.wait_mean == pytest.approx((1 + 1 + 3) / 3) and s.wait_max == 3 and s.waits_measured == 3
    assert s.quantum_work == 3 and s.classical_work == 6
    assert s.longest_workflow == pytest.approx(5)  # b: 1 s exec + 4 s cpu
    assert s.bound == 5 and s.makespan_over_bound == pytest.approx(8 / 5)
    assert s.hold_per_workflow == {"a": 3, "b": 1}
    # a/q1 -> b/q1 (b waiting since 0): 2.5 -> 3; b/q1 -> a/q2 is no hand-over: a/q2 became ready at 5, after 4.
    assert s.handovers_measured == 1 and s.handover_median == pytest.approx(0.5) == s.handover_p95


def test_hand_over_is_per_device_and_skips_interleaved_blocks_and_idle_demand():
    events = [ev("ready", "a", "q1", 0), ev("ready", "b", "q1", 0), ev("ready", "c", "q1", 0),
              ev("exec", "a", "q1", 1, 2), ev("exec", "b", "q1", 2.25, 3), ev("exec", "c", "q1", 4, 5),
              ev("exec", "d", "q1", 1.5, 2.5, device="other"),  # another device: no hand-over with a
              ev("exec", "a", "q2", 6, 7), ev("exec", "b", "q2", 6.5, 7.5), ev("ready", "a", "q2", 5.5)]  # b/q2 interleaves with a/q2
    s = summarize(events)
    assert s.handovers_measured == 2  # a->b 0.25 s, b->c 1 s; c->a/q2 (ready 5.5 > 5) and a/q2~b/q2 are not
    assert s.handover_median == pytest.approx(0.625) and s.handover_p95 == pytest.approx(0.25 + 0.95 * 0.75)


def test_lower_bound_counts_the_shortest_final_classical_stretch():
    # Both workflows end with classical work after their last block: the device's 2 s of work plus
    # the shorter of the two final stretches (1 s) is more than either workflow alone (2.5 s).
    events = [ev("exec", "a", "q1", 0, 1), ev("cpu", "a", "c1", 1, 2.5),
              ev("exec", "b", "q1", 1, 2), ev("cpu", "b", "c1", 2, 3)]
    s = summarize(events)
    assert s.longest_workflow == 2.5 and s.bound == pytest.approx(3.0)


def test_wait_without_ready_events_falls_back_to_the_workflows_previous_interval():
    events = [e for e in hand_made() if e.kind != "ready"]
    waits = {(n.workflow, n.node): n.wait for n in quantum_nodes(events)}
    assert waits == {("a", "q1"): None, ("a", "q2"): 1.0, ("b", "q1"): None}  # a/q2 after a's cpu ended at 5
    assert summarize(events).waits_measured == 1


def test_monolithic_hold_counts_the_classical_time_inside_it_as_allocated_but_idle():
    events = [ev("ready", "m", "monolithic", 0), ev("hold", "m", "monolithic", 0, 4),
              ev("exec", "m", "monolithic", 0, 1), ev("cpu", "m", "c1", 1, 2),
              ev("exec", "m", "monolithic", 2, 3), ev("cpu", "m", "c2", 3, 4)]
    s = summarize(events)
    assert s.qpu_allocated_fraction == 1 and s.qpu_busy_fraction == 0.5 and s.qpu_allocated_idle == 2
    assert s.bound == 4 and s.makespan_over_bound == 1
    assert consistency_problems(events) == []


def test_service_sessions_share_the_device_so_only_their_own_execs_count_as_allocated(tmp_path):
    """The QPU service logs each session as a hold with a session id; sessions overlap by design."""
    log = MetricsLog(tmp_path / "service" / "metrics" / "qpu.jsonl")
    for wf, start, end in (("a", 0, 6), ("b", 0.5, 5)):
        log.record("hold", workflow=wf, node="q1", device="qsim", session=f"s-{wf}", start=start, end=end)
    log.record("exec", workflow="a", node="q1", device="qsim", session="s-a", start=1, end=3)
    log.record("exec", workflow="b", node="q1", device="qsim", session="s-b", start=3, end=4)
    run = MetricsLog(tmp_path / "a" / "metrics" / "qpu.jsonl")
    run.record("ready", workflow="a", node="q1", start=0)
    run.record("session", workflow="a", node="q1", device="tcp://127.0.0.1:1", start=0, end=6.1)  # the client's
    MetricsLog(tmp_path / "b" / "metrics" / "qpu.jsonl").record("ready", workflow="b", node="q1", start=0.5)
    events = load_run(tmp_path)
    assert {e.kind for e in events} == {"session", "exec", "ready"}
    assert consistency_problems(events) == []
    s = summarize(events)
    assert s.quantum_nodes == 2 and s.qpu_busy == 3
    assert s.qpu_allocated == s.qpu_busy and s.qpu_allocated_idle == 0
    assert s.hold_per_workflow == {"a": 2, "b": 1}
    assert {(n.workflow, n.wait) for n in quantum_nodes(events)} == {("a", 1), ("b", 2.5)}  # ready to first exec
    stray = events + [ev("exec", "c", "q1", 7, 8)]
    assert "exec c/q1" in "\n".join(consistency_problems(stray))


def test_a_gateway_session_inside_its_nodes_hold_is_not_a_second_quantum_node():
    """SLURM quantum nodes: the lease logs the hold, the job's gateway (a one-session service) the session."""
    events = [ev("ready", "a", "q1", 0), ev("hold", "a", "q1", 1, 4, device="gateway"),
              Event("session", "a", "q1", 1.1, 3.9, "qsim"), ev("exec", "a", "q1", 2, 3)]
    s = summarize(events)
    assert s.quantum_nodes == 1 and s.qpu_allocated == 3 and s.qpu_allocated_idle == 2 and s.wait_max == 1
    assert consistency_problems(events) == []


def test_consistency_catches_overlapping_holds_and_stray_execs():
    events = [ev("hold", "a", "q1", 0, 2), ev("hold", "b", "q1", 1, 3), ev("exec", "a", "q1", 0, 1),
              ev("exec", "b", "q2", 1.5, 2.5), ev("cpu", "a", "c1", 3, 2)]
    problems = "\n".join(consistency_problems(events))
    assert "held twice at once" in problems
    assert "exec b/q2" in problems and "outside every hold" in problems
    assert "cpu a/c1 ends before it starts" in problems
    assert consistency_problems(hand_made()) == []


def test_summarize_filters_by_device_and_rejects_empty_input():
    events = hand_made() + [ev("hold", "z", "q1", 100, 101, device="other")]
    assert summarize(events, device="qsim") == summarize(hand_made())
    with pytest.raises(ValueError):
        summarize([])
