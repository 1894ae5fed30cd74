"""Queue work on a service as the calling Unix user: one session per workflow, ``RUNS`` runs each,
all sent before any reply is read; exits once every run has its result.

    python queue_runs.py [--priority N] ADDRESS RUNS WORKFLOW...
"""

from __future__ import annotations

import json
import sys

from hcqw.service import protocol as P
from hcqw.service.client import ServiceClient

ONE = ('{"cirq_type": "Circuit", "moments": [{"cirq_type": "Moment", "operations": [{"cirq_type": '
       '"GateOperation", "gate": {"cirq_type": "MeasurementGate", "num_qubits": 1, "key": "m", '
       '"invert_mask": []}, "qubits": [{"cirq_type": "LineQubit", "x": 0}]}]}]}')


def main(address: str, runs: int, workflows: list[str], priority: int = 0) -> None:
    with ServiceClient(address, timeout=60) as client:
        sessions = [client.session(workflow, "fair", priority=priority) for workflow in workflows]
        pending = set()
        for session in sessions:
            for index in range(runs):
                request_id = f"{session.workflow}-{index}"
                client._transport.send(P.request("run", request_id, session=session.session_id, timeout=300.0,
                                                 items=[{"circuit": ONE, "repetitions": 1}]))
                pending.add(request_id)
        print("queued", flush=True)
        while pending:
            frames = client._transport.recv(120.0)
            assert frames is not None, f"no reply for {sorted(pending)[:3]}"
            header, _ = P.decode_reply(frames)
            if header["id"] in pending:
                assert header["type"] == "ok", header
                pending.discard(header["id"])
            elif header["type"] == "error":
                raise SystemExit(json.dumps(header))
        for session in sessions:
            session.close()


if __name__ == "__main__":
    args = sys.argv[1:]
    priority = int(args[1]) if args[0] == "--priority" else 0
    args = args[2:] if args[0] == "--priority" else args
    main(args[0], int(args[1]), args[2:], priority)
