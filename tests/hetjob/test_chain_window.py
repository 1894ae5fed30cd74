"""The window of a chain (issue 22), as pure logic: which nodes ``refill`` submits, with which ``afterok``
dependencies and look-ahead flags, as the follower sees jobs complete. (On the lab: tests/hetjob/test_chain.py,
test_chain_fused.py, test_chain_order.py; records in SLURM at scale: bench/scale.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from hcqw.hetjob.chain import WINDOW_RECORDS, Chain, _records, refill
from hcqw.workflow import build_dag, load_loop

LOOP = "tests.support.loops:make"


def chain_of(fused: bool, window: int | None, iterations: int = 4) -> tuple[Chain, list]:
    loop = load_loop(LOOP, {"iterations": iterations})
    todo = build_dag(loop, fused)[1:]  # the submitter wrote the initial state
    chain = Chain("wf", Path("/nonexistent"), loop, waiting=list(todo), window=window,
                  records={node.name: _records(node) for node in todo})
    calls = []

    def submit(node, deps, lookahead):
        calls.append((node.name, deps, lookahead))
        return str(100 + len(calls))

    chain.submit = submit
    return chain, calls


@pytest.mark.parametrize("fused", [False, True])
def test_the_window_holds_at_most_its_records_and_the_next_hetjob_is_queued_before_its_turn(fused):
    chain, calls = chain_of(fused, WINDOW_RECORDS)
    refill(None, chain)
    first = [name for name, _, _ in calls]
    assert first == (["qc0001", "qc0002"] if fused else ["q0001", "c0001", "q0002"])
    order = [node.name for node in build_dag(chain.loop, fused)[1:]]
    while not chain.finished:
        assert chain.live_records() <= WINDOW_RECORDS
        # Whenever a job runs, the next quantum node after it is already queued (no extra gap on the QPU).
        head = order.index(chain.jobs[chain.completed][0])
        next_quantum = next((name for name in order[head + 1:] if name.startswith("q")), None)
        assert next_quantum is None or next_quantum in dict(chain.jobs), (chain.jobs, chain.completed)
        chain.completed += 1
        refill(None, chain)
    ids = dict(chain.jobs)
    names = [name for name, _, _ in calls]
    assert names == [node.name for node in build_dag(chain.loop, fused)[1:]]  # each node once, in order
    for name, deps, lookahead in calls[1:]:
        previous = names[names.index(name) - 1]
        assert deps == (ids[previous],)  # afterok on its predecessor, still unfinished when submitted
        assert lookahead == (name.startswith("q") and any(
            other.startswith("q") for other, _ in chain.jobs[:names.index(name)][-2:]))
    assert calls[0] == (names[0], (), False)


def test_the_whole_chain_form_submits_everything_at_once():
    chain, calls = chain_of(False, None, iterations=30)
    refill(None, chain)
    assert len(calls) == 60 and sum(chain.records.values()) == 90  # 3N records, no init job


def test_a_window_too_small_for_the_next_hetjob_is_refused(tmp_path):
    from hcqw.hetjob.chain import submit_chain

    with pytest.raises(ValueError, match="at least 4 job records"):
        submit_chain(None, LOOP, {}, "wf", tmp_path, window=3)
