"""Issue 24, finding 3 on the multi-host lab: strangers cost a job's relay gateway nothing measurable.

``hcqw-alice``'s quantum node relays to the resident service of her qpu host; ``hcqw-bob``, who learned
her gateway's address and server key (the worst case: both live in her private job directory; the
client key next to them he cannot read), floods it from the submit host: CurveZMQ handshakes with keys
of his own, each with junk, a 4 MiB frame and an open with his own valid credential, and raw TCP junk.
Her batches go on, and their time with the flood is within a few milliseconds of their time without it
(measured inside her node, side by side); her gateway's log gets a summary line per 10 s, not a line per
attempt. Bob's flood runs at nice 19: on a site his processes run on another host, and on the lab's two
cores what is measured is then what the flood costs her gateway, not his own CPU.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess

import pytest

from hcqw.hetjob import relay as R
from hcqw.hetjob.relay import Relay
from hcqw.lab import users
from hcqw.service import protocol as P
from hcqw.service.transport import make_server_transport
from tests.support.raw_zmq import dealer
from hcqw.lab.users import USERS
from tests.hetjob.test_lab_attacks import VictimNode

ALICE, BOB = USERS
RUNS = 12


def timed_runs(victim: VictimNode, count: int) -> tuple[list, list[float]]:
    samples, seconds = [], []
    for _ in range(count):
        samples.append(victim.run())
        seconds.append(victim._line(victim.lines - 1)["seconds"])
    return samples, seconds


@pytest.mark.slurm
def test_a_flood_at_her_gateway_does_not_delay_her_block(slurm_lab, lab_user_dir):
    node = slurm_lab.layout.qpu_node_names[0]
    victim = VictimNode(slurm_lab, lab_user_dir(ALICE), node, relay=True)
    flood = None
    try:
        victim.run()  # warm: the first batch pays the circuit's decode and the connection's start
        alone, quiet = timed_runs(victim, RUNS)
        bob_dir = lab_user_dir(BOB)
        argv = ["nice", "-n", "19", str(slurm_lab.site.bin / "python"), str(slurm_lab.site.src / "tests" / "hetjob" / "relay_flood.py"),
                victim.gateway, "30"]
        flood = subprocess.Popen(users.as_user(BOB, argv), env=slurm_lab.user_env(BOB), cwd=bob_dir,
                                 umask=users.USER_UMASK, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        import time

        time.sleep(2)  # the flood under way
        flooded, loud = timed_runs(victim, RUNS)
        assert flood.poll() is None, flood.stderr.read()  # still flooding while she ran
        out, err = flood.communicate(timeout=60)
        sent = json.loads(out)
    finally:
        if flood is not None and flood.poll() is None:
            os.killpg(flood.pid, signal.SIGKILL)  # runuser and his flood under it
            flood.wait(10)
        states = victim.close()
    assert states[victim.job] == "COMPLETED", victim.log()
    assert sent["handshakes"] > 1000 and sent["raw_connections"] > 50, sent  # it was a flood
    # Her work is intact: one seeded session, so the batches go on where they were.
    assert len(alone) == len(flooded) == RUNS and all(len(s) == 64 for s in alone + flooded)
    quiet_median, loud_median = statistics.median(quiet), statistics.median(loud)
    print(f"\nalice's batch, median of {RUNS}: {quiet_median * 1e3:.2f} ms alone, {loud_median * 1e3:.2f} ms under "
          f"bob's flood ({sent['handshakes']} handshakes, {sent['raw_connections']} raw connections in "
          f"{sent['seconds']:g} s)")
    assert loud_median < quiet_median + 0.010, (quiet, loud)
    log = (victim.jobdir / "gateway.log").read_text()
    refusals = [line for line in log.splitlines() if "refused" in line]
    assert 1 <= len(refusals) <= 5, refusals  # a summary per 10 s, not a line per attempt
    assert "handshakes without the job's client key" in log, refusals


def _relay() -> Relay:
    """A relay whose node side admits any CurveZMQ client (as over MPI, or to someone who stole the job's
    client key): what is left to bound is the relay's own work. Strangers never reach its upstream."""
    return Relay(make_server_transport("tcp://127.0.0.1:*", P.MAX_MESSAGE_BYTES, authenticated=True),
                 "tcp://127.0.0.1:9")


def _replies(relay: Relay, sockets: list, turns: int = 40) -> list[dict]:
    got = []
    for _ in range(turns):
        relay._turn(0.01)
        for socket in sockets:
            while socket.poll(0):
                got.append(json.loads(socket.recv()))
    return got


def test_a_strangers_messages_get_bounded_work_before_authentication(caplog):
    relay = _relay()
    sockets = []
    try:
        big = dealer(relay.server.address)
        sockets.append(big)
        big.send(b'{"v": 1, "type": "open", "id": 1, "pad": "' + b"x" * (1 << 20) + b'"}')
        (reply,) = _replies(relay, [big])
        assert reply["code"] == P.E_TOO_LARGE and f"at most {R.PREAUTH_MAX_BYTES}" in reply["message"], reply
        chatty = dealer(relay.server.address)
        sockets.append(chatty)
        for i in range(3 * R.PREAUTH_PER_PEER):
            chatty.send(json.dumps({"v": 1, "type": "status", "id": i}).encode())
        answered = _replies(relay, [chatty])
        assert len(answered) == R.PREAUTH_PER_PEER and {r["code"] for r in answered} == {P.E_FORBIDDEN}
        assert relay.refused["over the per-connection budget"] == 2 * R.PREAUTH_PER_PEER
        crowd = [dealer(relay.server.address) for _ in range(2 * int(R.PREAUTH_RATE))]
        sockets += crowd
        _replies(relay, [], turns=100)  # the handshakes done (the relay's turns answer their ZAP questions)
        for socket in crowd:
            socket.send(b"\xff junk")
        answered = _replies(relay, crowd, turns=100)
        assert len(answered) < 1.2 * R.PREAUTH_RATE and relay.refused["over the rate cap"] > R.PREAUTH_RATE / 2, relay.refused
        relay._summary_at = 0.0
        with caplog.at_level("WARNING", logger="hcqw.hetjob.relay"):
            relay.summarise()
            relay.summarise()
        (summary,) = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
        assert "over the rate cap" in summary and "oversized" in summary, summary
    finally:
        for socket in sockets:
            socket.close(0)
        relay.close()


def test_each_turn_serves_a_bounded_batch_of_node_messages():
    relay = _relay()
    handled = []
    relay.from_node = lambda peer, frames: handled.append(frames)  # type: ignore[method-assign]
    socket = dealer(relay.server.address)
    try:
        for i in range(3 * R.TURN_BATCH):
            socket.send(b"junk %d" % i)
        relay._turn(0.5)
        import time

        time.sleep(0.3)  # all of it arrived
        handled.clear()
        relay._turn(0.5)
        assert len(handled) == R.TURN_BATCH
    finally:
        socket.close(0)
        relay.close()
