"""Dispatcher CPU per request, in process (no sockets, no scheduler noise): ping, heartbeat and a
1-qubit work item (handle + execute + reply), median of --repeats blocks of --steps requests.

    PYTHONPATH=<tree> .venv/bin/python bench/dispatch_cpu.py [--steps 20000] [--repeats 7] [--monitor]

Run it on two trees (e.g. ``git archive main | tar -x -C /tmp/main``) to compare the service's own
per-request cost before and after a change; the Dispatch section of BENCHMARKS.md does this.
``--monitor``: the same, side by side in one run, without and with the Prometheus exporter's counters
(``hcqw.service.exporter.ServiceMonitor``, what ``--metrics-address`` adds to the dispatch path).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from hcqw.device.backend import make_backend
from hcqw.service import protocol as P
from hcqw.service.dispatcher import Dispatcher

TRIVIAL = ('{"cirq_type": "Circuit", "moments": [{"cirq_type": "Moment", "operations": [{"cirq_type": '
           '"GateOperation", "gate": {"cirq_type": "MeasurementGate", "num_qubits": 1, "key": "m", '
           '"invert_mask": []}, "qubits": [{"cirq_type": "LineQubit", "x": 0}]}]}]}')


def per_request_us(step, steps: int, repeats: int) -> float:
    for _ in range(min(steps, 1000)):
        step()
    blocks = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(steps):
            step()
        blocks.append((time.process_time() - t0) / steps * 1e6)
    return statistics.median(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--monitor", action="store_true", help="compare without and with the exporter's counters")
    args = parser.parse_args()
    if not args.monitor:
        print(json.dumps(measure(Dispatcher(make_backend("qsim", threads=1)), args)))
        return
    from hcqw.service.exporter import ServiceMonitor

    runs: dict[str, list[dict]] = {"off": [], "monitor": []}
    for _ in range(3):  # alternating, so a change in the machine's load hits both alike
        runs["off"].append(measure(Dispatcher(make_backend("qsim", threads=1)), args))
        runs["monitor"].append(measure(Dispatcher(make_backend("qsim", threads=1), monitor=ServiceMonitor()), args))
    print(json.dumps({mode: {name: statistics.median(r[name] for r in rows) for name in rows[0]}
                      for mode, rows in runs.items()}))


def measure(dispatcher: Dispatcher, args: argparse.Namespace) -> dict[str, float]:
    peer = (b"\x00peer", False)
    [(_, [opened])] = dispatcher.handle(peer, P.request("open", 1, workflow="bench", node="cpu"))
    session = json.loads(opened)["session"]
    ping = P.request("ping", 2)
    heartbeat = P.request("heartbeat", 3, session=session)
    run = P.request("run", 4, session=session, items=[{"circuit": TRIVIAL, "repetitions": 1}])

    def work_item() -> None:
        dispatcher.handle(peer, run)
        dispatcher.run_next()

    out = {name: per_request_us(step, args.steps if name != "work_item" else args.steps // 10, args.repeats)
           for name, step in (("ping", lambda: dispatcher.handle(peer, ping)),
                              ("heartbeat", lambda: dispatcher.handle(peer, heartbeat)), ("work_item", work_item))}
    return {name: round(us, 2) for name, us in out.items()}


if __name__ == "__main__":
    main()
