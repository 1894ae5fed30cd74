"""One executing session at a time (``hcqw device serve --exclusive-sessions``, a staged qpu host):
the dispatcher's own rules, driven through its request handler with a real simulator."""

from __future__ import annotations

import time

from hcqw.device.backend import make_backend
from hcqw.device.modelled import ModelledBackend
from hcqw.service import protocol as P
from hcqw.service.dispatcher import Dispatcher
from hcqw.service.executor import Executor
from tests.service.queue_runs import ONE


class Node:
    """One quantum node's connection: opens a session, queues runs, collects their replies."""

    def __init__(self, dispatcher: Dispatcher, workflow: str):
        self.dispatcher, self.peer, self.runs = dispatcher, f"peer-{workflow}", 0
        header, _ = P.decode_reply(self.send("open", workflow=workflow, node="q0001")[0][1])
        assert header["type"] == "ok", header
        self.session = header["session"]

    def send(self, type_: str, **fields) -> list:
        return self.dispatcher.handle(self.peer, P.request(type_, f"{type_}-{self.runs}", **fields))

    def run(self) -> None:
        self.runs += 1
        assert self.send("run", session=self.session, items=[{"circuit": ONE, "repetitions": 1}]) == []

    def close(self) -> None:
        assert P.decode_reply(self.send("close", session=self.session)[-1][1])[0]["type"] == "ok"


def execute_all(dispatcher: Dispatcher) -> list[str]:
    """Run what the device may run now, one job after another; the peers whose runs executed, in order."""
    order = []
    while dispatcher.runnable():
        for peer, frames in dispatcher.run_next():
            assert P.decode_reply(frames)[0]["type"] == "ok"
            order.append(peer)
    return order


def dispatcher(policy: str = "fifo", session_timeout: float = 60.0) -> Dispatcher:
    return Dispatcher(make_backend("cirq"), policy=policy, session_timeout=session_timeout, exclusive_sessions=True)


def test_the_executing_session_keeps_the_device_between_its_batches_while_staged_sessions_wait():
    d = dispatcher()
    a, b = Node(d, "a"), Node(d, "b")
    a.run()
    b.run()  # staged: queued while a executes
    assert execute_all(d) == ["peer-a"]
    assert not d.runnable() and d.executing == a.session  # b waits although a has nothing queued
    a.run()  # a's next batch goes first: b's block does not cut into a's
    assert execute_all(d) == ["peer-a"]
    a.close()
    assert execute_all(d) == ["peer-b"] and d.executing == b.session


def test_without_exclusive_sessions_the_batches_of_open_sessions_interleave():
    d = Dispatcher(make_backend("cirq"))
    a, b = Node(d, "a"), Node(d, "b")
    a.run()
    b.run()
    assert execute_all(d) == ["peer-a", "peer-b"]


def test_the_next_executor_is_the_policys_pick_not_the_earliest_staged():
    d = dispatcher("round-robin")  # rotation over workflows
    first, again, other = Node(d, "big"), Node(d, "big"), Node(d, "small")
    first.run()
    again.run()  # staged first ...
    other.run()  # ... but the rotation gives the other workflow the next turn
    assert execute_all(d) == ["peer-big"]
    first.close()
    assert d.executing is None
    assert execute_all(d) == ["peer-small"] and d.executing == other.session


def test_a_staged_session_starts_when_the_executor_goes_silent_and_expires():
    d = dispatcher(session_timeout=0.2)
    dead, staged = Node(d, "dead"), Node(d, "staged")
    dead.run()
    assert execute_all(d) == ["peer-dead"]
    staged.run()
    assert execute_all(d) == []
    d.sessions[dead.session].last_seen -= 1.0  # the executor's node died: no heartbeat since
    d.sessions[staged.session].last_seen += 1.0  # the staged node heartbeats while it waits
    d._next_sweep = 0.0
    d.expire()
    assert dead.session not in d.sessions and execute_all(d) == ["peer-staged"]


def test_status_and_position_show_the_executor_first():
    d = dispatcher()
    a, b = Node(d, "a"), Node(d, "b")
    a.run()
    execute_all(d)
    b.run()
    a.run()  # queued after b's run, yet runs first: a has the device
    assert [job.session for job in d.run_order()] == [a.session, b.session]
    header, _ = P.decode_reply(b.send("position", session=b.session)[0][1])
    assert header["position"] == 1
    assert d.describe()["exclusive_sessions"] is True


def test_a_staged_run_does_not_time_out_behind_the_executor_and_gets_its_whole_wait_after():
    d = dispatcher()
    a, b = Node(d, "a"), Node(d, "b")
    a.run()
    execute_all(d)
    b.runs += 1
    assert b.send("run", session=b.session, timeout=0.01, items=[{"circuit": ONE, "repetitions": 1}]) == []
    time.sleep(0.05)
    d._next_sweep = 0.0
    assert d.expire() == [] and len(d.policy) == 1  # waiting for a's block, not for an unavailable device
    a.close()
    job, = d.policy.order()
    assert job.payload.deadline >= time.monotonic()  # its 0.01 s count from when the device could be its
    assert execute_all(d) == ["peer-b"]


def test_a_modelled_qpu_job_runs_in_the_executor_so_the_service_answers_while_the_device_works():
    backend = ModelledBackend(circuit_overhead=0.5)  # a QPU's time: sleeps, computes almost nothing
    d = Dispatcher(backend, executor=Executor(backend), exclusive_sessions=True)
    try:
        a, b = Node(d, "a"), Node(d, "b")
        a.run()
        assert d.run_next() == [] and d.running is not None  # handed to the executor ...
        b.run()  # ... so a staged node's requests are answered meanwhile
        header, _ = P.decode_reply(b.send("position", session=b.session)[0][1])
        assert header["position"] == 0 and d.running is not None
        deadline = time.monotonic() + 30
        while not (replies := d.collect()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert [peer for peer, _ in replies] == ["peer-a"]
    finally:
        d.close()


def test_an_executing_session_past_its_device_time_cap_is_closed_and_the_next_one_goes_on():
    """A session held open keeps the device from every staged node only up to --max-exclusive-seconds."""
    d = Dispatcher(make_backend("cirq"), exclusive_sessions=True, max_exclusive_seconds=0.3)
    a, b = Node(d, "a"), Node(d, "b")
    a.run()
    b.run()
    assert execute_all(d) == ["peer-a"] and d.executing == a.session
    time.sleep(0.05)
    assert d.expire() == [] and d.executing == a.session  # within the cap
    time.sleep(0.35)
    assert d.expire() == [] and d.executing is None  # past it: a closed (nothing of a's was queued)
    assert execute_all(d) == ["peer-b"] and d.executing == b.session
    ((_, frames),) = a.send("run", session=a.session, items=[{"circuit": ONE, "repetitions": 1}])
    header = P.decode_reply(frames)[0]
    assert header["code"] == P.E_QUOTA and "more than 0.3 s, the cap per exclusive session" in header["message"]
    assert "--max-exclusive-seconds" in header["message"]
