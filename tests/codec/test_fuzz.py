"""The decoder fuzzed through the service's own request handler: structured mutations of valid wire
messages (types swapped for any Cirq or sympy type, fields dropped, added or replaced by hostile
values, sub-trees copied into each other, text cut) never crash it, never take a second, and never
write a file. The relay's screen (``screen_circuit``) sees the same messages: it never crashes
either, and lets through every circuit the decoder accepts. Seeded: a failure names its message
number and reproduces."""

from __future__ import annotations

import copy
import json
import os
import random
import time

import cirq
import pytest
import sympy
from cirq.json_resolver_cache import _class_resolver_dictionary

from hcqw.codec import circuit_to_json, decode_circuit, screen_circuit
from hcqw.errors import CircuitError
from hcqw.device.backend import make_backend
from hcqw.service import protocol as P
from hcqw.service.dispatcher import Dispatcher
from tests.codec.crafted import CODE, crafted
from tests.codec.test_circuit import every_accepted_type

MESSAGES = 10_000
SLOWEST_S = 1.0
Q = cirq.LineQubit.range(3)


def seeds() -> list[dict]:
    """Valid wire work items: the mutations start from these."""
    a = sympy.Symbol("a")
    ansatz = cirq.Circuit(cirq.ry(a)(Q[0]), cirq.CNOT(Q[0], Q[1]), cirq.rz(2 * a + 0.5)(Q[1]),
                          cirq.measure(*Q[:2], key="m"))
    nested = cirq.Circuit(cirq.CircuitOperation(cirq.FrozenCircuit(
        cirq.CircuitOperation(cirq.FrozenCircuit(cirq.H(Q[0])), repetitions=3)), repetitions=2),
        cirq.measure(Q[0], key="m"))
    circuits = [every_accepted_type(), ansatz, nested]
    return [{"circuit": json.loads(circuit_to_json(c)), "repetitions": 10, "params": [{"a": 0.1}, {"a": 0.2}]}
            for c in circuits]


class Mutator:
    def __init__(self, rng: random.Random, marker: str):
        self.rng = rng
        self.types = sorted(_class_resolver_dictionary()) + ["VAL", "REF", "complex", "sympy.Function", "Unknown"]
        code = CODE.format(marker=marker)
        self.values = [0, -1, 1, 2 ** 31, -2 ** 63, 2 ** 64, 10 ** 30, 1e308, -1e-308, 0.5, True, False, None, "",
                       "a", code, "x" * 5000, [], {}, [code], {"cirq_type": "sympy.Not", "args": [code]},
                       {"cirq_type": "sympy.Symbol", "name": code}, {"cirq_type": "sympy.Pow", "args": [3, 10 ** 8]},
                       {"cirq_type": "REF", "key": 0}, {"cirq_type": "LineQubit", "x": 10 ** 9}]
        self.attacks = [json.loads(text) for text in crafted(marker).values()]

    def nodes(self, tree) -> list[tuple]:
        """(container, key) of every place in the tree."""
        found, stack = [], [tree]
        while stack:
            node = stack.pop()
            items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            for key, child in items:
                found.append((node, key))
                stack.append(child)
        return found

    def mutate(self, message: dict) -> dict:
        message = copy.deepcopy(message)
        for _ in range(self.rng.randint(1, 4)):
            places = self.nodes(message)
            container, key = self.rng.choice(places)
            move = self.rng.random()
            if move < 0.3:
                container[key] = copy.deepcopy(self.rng.choice(self.values))
            elif move < 0.5 and isinstance(container, dict) and key == "cirq_type":
                container[key] = self.rng.choice(self.types)
            elif move < 0.6:
                if isinstance(container, dict):
                    del container[key]
                else:
                    container.pop(key)
            elif move < 0.7 and isinstance(container, dict):
                container[self.rng.choice(["x", "args", "exponent", "repetitions", "name", "key"])] = \
                    copy.deepcopy(self.rng.choice(self.values))
            elif move < 0.85:
                donor = self.rng.choice(places)
                container[key] = copy.deepcopy(donor[0][donor[1]])
            elif move < 0.95:
                container[key] = [container[key]] if self.rng.random() < 0.5 else {"cirq_type": "Moment",
                                                                                   "operations": [container[key]]}
            else:
                container[key] = copy.deepcopy(self.rng.choice(self.attacks))
        return message


def wire(message: dict, rng: random.Random) -> dict:
    """The circuit as the wire carries it: JSON text, sometimes cut or with a character changed."""
    if not isinstance(message.get("circuit"), (dict, list)):
        return message
    text = json.dumps(message["circuit"])
    if rng.random() < 0.05:
        at = rng.randrange(len(text))
        text = text[:at] + rng.choice(["", "}", "]", '"', "\\", "\x00", "é"]) + text[at + 1:]
    return {**message, "circuit": text}


@pytest.mark.slow
def test_ten_thousand_mutated_messages_neither_crash_nor_hang_nor_write(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = str(tmp_path / "ran")
    rng = random.Random(20261206)
    mutator = Mutator(rng, marker)
    dispatcher = Dispatcher(make_backend("qsim"))
    peer = "fuzzer"

    def send(type_: str, **fields) -> dict:
        replies = dispatcher.handle(peer, P.request(type_, "f", **fields))
        return P.decode_reply(replies[0][1])[0] if replies else {"type": "queued"}

    session = send("open", workflow="fuzz", node="n")["session"]
    outcomes: dict[str, int] = {}
    slowest = (0.0, -1)
    for number in range(MESSAGES):
        message = wire(mutator.mutate(rng.choice(seeds_cache)), rng)
        start = time.perf_counter()
        reply = send("run", session=session, items=[message])
        took = time.perf_counter() - start
        slowest = max(slowest, (took, number))
        kind = reply["type"] if reply["type"] != "error" else reply["code"]
        outcomes[kind] = outcomes.get(kind, 0) + 1
        assert kind != P.E_INTERNAL, f"message {number} crashed the handler: {reply}"
        text = message.get("circuit")
        if isinstance(text, str):
            screened = decoded = True
            try:
                screen_circuit(text)
            except CircuitError:
                screened = False
            try:
                decode_circuit(text)
            except CircuitError:
                decoded = False
            assert screened or not decoded, f"message {number}: the decoder accepts what the relay's screen refuses"
        if reply["type"] == "queued":  # valid after mutation: drop it unexecuted, with its session
            send("close", session=session)
            session = send("open", workflow="fuzz", node="n")["session"]
    print(f"outcomes of {MESSAGES} messages: {outcomes}; slowest {slowest[0] * 1000:.1f} ms (message {slowest[1]})")
    assert slowest[0] < SLOWEST_S, f"message {slowest[1]} took {slowest[0]:.2f} s"
    assert os.listdir(tmp_path) == [] and not os.path.exists(marker)
    assert outcomes.get(P.E_CIRCUIT, 0) > MESSAGES // 2  # the mutations mostly hit the decoder, not only the shape check
    assert outcomes.get("queued", 0) > 0  # and some stay valid: the fuzzer reaches past the decoder too


seeds_cache = seeds()
