"""Load: 64 concurrent clients x 200 real qsimcirq work items through one live service.

Each client's circuit encodes (client, item) in the X-rotation parameters, so every result
proves it came back to the right client for the right item. The exec events in the
service's metrics log give the device's order for the policy checks.
"""

from __future__ import annotations

import threading

import cirq
import pytest
import sympy

from hcqw.device.work import WorkItem
from hcqw.metrics import read_events
from hcqw.service.client import ServiceClient

CLIENTS = 64
ITEMS = 200
QUBITS = 10  # 6 bits of client id, 4 bits of item index
_q = cirq.LineQubit.range(QUBITS)
CIRCUIT_JSON = cirq.to_json(cirq.Circuit([cirq.X(q) ** sympy.Symbol(f"b{i}") for i, q in enumerate(_q)],
                                         cirq.measure(*_q, key="m")))


def bits(client: int, item: int) -> list[int]:
    value = (client << 4) | (item % 16)
    return [(value >> (QUBITS - 1 - i)) & 1 for i in range(QUBITS)]


def run_clients(address: str, workflows: list[str]) -> dict[int, list[list[int]]]:
    results: dict[int, list[list[int]]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(CLIENTS)

    def client(index: int) -> None:
        try:
            with ServiceClient(address, timeout=60) as svc, \
                    svc.session(workflows[index], f"node{index}", user=f"user{index % 3}") as qpu:
                start.wait()
                got = []
                for item in range(ITEMS):
                    params = {f"b{i}": float(b) for i, b in enumerate(bits(index, item))}
                    [[samples]] = qpu.run_batch([WorkItem(CIRCUIT_JSON, 1, (params,))])
                    got.append(samples["m"][0].tolist())
                results[index] = got
        except BaseException as err:  # noqa: BLE001 - surface in the main thread
            errors.append(err)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors, errors[:3]
    return results


def check_every_result(results: dict[int, list[list[int]]]) -> None:
    assert sorted(results) == list(range(CLIENTS))
    for client, got in results.items():
        assert got == [bits(client, item) for item in range(ITEMS)], f"client {client} got foreign results"


def execs_since(log, mark: int) -> list[dict]:
    events = [e for e in read_events(log, "exec") if e["seq"] > mark]
    return sorted(events, key=lambda e: e["start"])


@pytest.mark.slow
def test_load_fifo(tcp_service):
    with ServiceClient(tcp_service.address) as control:
        control.set_policy("fifo")
        mark = max((e["seq"] for e in read_events(tcp_service.log, "exec")), default=0)
    check_every_result(run_clients(tcp_service.address, [f"wf{i % 4}" for i in range(CLIENTS)]))
    execs = execs_since(tcp_service.log, mark)
    assert len(execs) == CLIENTS * ITEMS  # none lost, none duplicated
    assert len({e["seq"] for e in execs}) == len(execs)
    assert [e["seq"] for e in execs] == sorted(e["seq"] for e in execs), "device order is not arrival order"


@pytest.mark.slow
def test_load_round_robin(tcp_service):
    with ServiceClient(tcp_service.address) as control:
        control.set_policy("round-robin")
        mark = max((e["seq"] for e in read_events(tcp_service.log, "exec")), default=0)
    # Uneven workflows: 40, 16 and 8 clients. Under FIFO the big one would take ~5/8 of turns in a row.
    workflows = ["big"] * 40 + ["mid"] * 16 + ["small"] * 8
    try:
        check_every_result(run_clients(tcp_service.address, workflows))
    finally:
        with ServiceClient(tcp_service.address) as control:
            control.set_policy("fifo")
    execs = execs_since(tcp_service.log, mark)
    assert len(execs) == CLIENTS * ITEMS
    # Round robin: a workflow runs twice in a row only if no other workflow had a job waiting
    # (queued before the second run started and started after it).
    repeats = 0
    for previous, current in zip(execs, execs[1:]):
        if previous["workflow"] != current["workflow"]:
            continue
        repeats += 1
        waiting = [e for e in execs if e["workflow"] != current["workflow"]
                   and e["queued"] < current["start"] and e["start"] > current["start"]]
        assert not waiting, f"{current['workflow']} ran twice while {waiting[0]['workflow']} waited"
    interleaved = sum(a["workflow"] != b["workflow"] for a, b in zip(execs, execs[1:]))
    assert interleaved > repeats
