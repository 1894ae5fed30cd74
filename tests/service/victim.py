"""The victim of the attack suite, run as another Unix user: one seeded session, driven over stdin.

    python victim.py ADDRESS        then lines: "run" (prints the batch's samples), "quit"
    python victim.py --gateway      the same, in a quantum node's job: on the job's own gateway

Prints the session id first (the attacker is told it: knowing it must not help him).
"""

from __future__ import annotations

import json
import os
import sys
import time

from hcqw.device.work import WorkItem
from hcqw.service.client import ServiceClient

# Three qubits in uniform superposition: every sample is random, so equal samples mean equal seeds.
NOISY = ('{"cirq_type": "Circuit", "moments": [{"cirq_type": "Moment", "operations": ['
         + ", ".join('{"cirq_type": "GateOperation", "gate": {"cirq_type": "HPowGate", "exponent": 1.0, '
                     '"global_shift": 0.0}, "qubits": [{"cirq_type": "LineQubit", "x": %d}]}' % q for q in range(3))
         + ']}, {"cirq_type": "Moment", "operations": [{"cirq_type": "GateOperation", "gate": {"cirq_type": '
           '"MeasurementGate", "num_qubits": 3, "key": "m", "invert_mask": []}, "qubits": ['
         + ", ".join('{"cirq_type": "LineQubit", "x": %d}' % q for q in range(3)) + ']}]}]}')


def main(address: str) -> None:
    with ServiceClient(address, timeout=30) as client, \
            client.session("victim-wf", "victim-node", seed=4242) as qpu:
        print(json.dumps({"session": qpu.session_id}), flush=True)
        for line in sys.stdin:
            if line.strip() == "quit":
                break
            start = time.perf_counter()
            [[samples]] = qpu.run_batch([WorkItem(NOISY, 64)])
            print(json.dumps({"samples": samples["m"].tolist(), "seconds": time.perf_counter() - start}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--gateway":
        from hcqw.hetjob.device import GatewayDevice

        main(GatewayDevice(os.environ["HCQW_GATEWAY_ADDRESS_FILE"]).wait_address())
    else:
        main(sys.argv[1])
