"""Queue policies: pure ordering logic (no service needed)."""

from hcqw.service.policy import Job, PriorityCaps, PriorityPolicy, make_policy

ALICE_UID, BOB_UID = 1001, 1002


def jobs(spec, owner=ALICE_UID):
    return [Job(seq=i, session=f"s{i}", workflow=wf, priority=prio, owner=owner) for i, (wf, prio) in enumerate(spec, 1)]


def drain(policy):
    out = []
    while (job := policy.pop()) is not None:
        out.append(job)
    return out


def test_fifo_is_arrival_order():
    policy = make_policy("fifo", jobs([("a", 0), ("b", 0), ("a", 0)]))
    assert [j.seq for j in policy.order()] == [1, 2, 3] == [j.seq for j in drain(policy)]


def test_round_robin_interleaves_workflows_and_order_predicts_pop():
    policy = make_policy("round-robin", jobs([("a", 0)] * 4 + [("b", 0)] * 2 + [("c", 0)]))
    predicted = [j.workflow for j in policy.order()]
    assert predicted == [j.workflow for j in drain(policy)] == ["a", "b", "c", "a", "b", "a", "a"]


def test_round_robin_newcomer_joins_rotation():
    policy = make_policy("rr")
    for job in jobs([("a", 0)] * 3):
        policy.push(job)
    assert policy.pop().workflow == "a"
    policy.push(Job(seq=9, session="s9", workflow="b"))
    assert [j.workflow for j in drain(policy)] == ["b", "a", "a"]  # the newcomer goes next


def test_priority_then_fifo(monkeypatch):
    monkeypatch.setattr(PriorityPolicy, "caps", PriorityCaps(grants={ALICE_UID: 10}))
    policy = make_policy("priority", jobs([("a", 0), ("b", 5), ("c", 5), ("d", -1)]))
    assert [j.workflow for j in drain(policy)] == ["b", "c", "a", "d"]


def test_a_users_own_priority_is_capped_unless_an_operator_granted_more(monkeypatch):
    """Bob asks for the highest priority the protocol allows; without a grant he is served as at 0, in
    arrival order after alice's earlier job; an operator's grant lets alice go first up to her cap."""
    monkeypatch.setattr(PriorityPolicy, "caps", PriorityCaps(grants={ALICE_UID: 3}))
    policy = make_policy("priority")
    policy.push(Job(seq=1, session="a1", workflow="alice", priority=0, owner=ALICE_UID))
    policy.push(Job(seq=2, session="b1", workflow="bob", priority=1_000_000, owner=BOB_UID))
    policy.push(Job(seq=3, session="b2", workflow="bob-low", priority=-5, owner=BOB_UID))
    policy.push(Job(seq=4, session="a2", workflow="alice-up", priority=1_000_000, owner=ALICE_UID))
    assert [j.workflow for j in drain(policy)] == ["alice-up", "alice", "bob", "bob-low"]


def test_remove_session_and_position():
    for name in ("fifo", "round-robin", "priority"):
        policy = make_policy(name, jobs([("a", 0), ("b", 0), ("a", 0)]))
        assert policy.position("s2") is not None
        assert [j.seq for j in policy.remove_session("s1")] == [1]
        assert len(policy) == 2 and policy.position("s1") is None


def test_round_robin_served_workflow_does_not_jump_a_newcomer():
    policy = make_policy("round-robin")
    policy.push(Job(seq=1, session="s1", workflow="big"))
    policy.push(Job(seq=2, session="s2", workflow="big"))
    assert policy.pop().seq == 1  # big runs; mid arrives while it runs
    policy.push(Job(seq=3, session="s3", workflow="mid"))
    assert [j.workflow for j in policy.order()] == ["mid", "big"]
    assert [j.workflow for j in drain(policy)] == ["mid", "big"]


def test_round_robin_user_rotates_over_authenticated_users_not_workflows():
    # uid 1001 runs four workflows, uid 1002 one: per-workflow rotation would give 1001 four turns
    # in five; per user they alternate while both have work.
    spec = [("a1", 1001), ("a2", 1001), ("a3", 1001), ("a4", 1001)] * 2 + [("b", 1002)] * 3
    policy = make_policy("round-robin-user")
    for seq, (workflow, uid) in enumerate(spec, 1):
        policy.push(Job(seq=seq, session=f"s{seq}", workflow=workflow, owner=uid))
    predicted = [j.owner for j in policy.order()]
    assert predicted == [j.owner for j in drain(policy)]
    assert predicted[:6] == [1001, 1002] * 3
    assert make_policy("rr-user").name == "round-robin-user"
