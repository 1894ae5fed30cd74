"""Circuit messages crafted against a decoder, and a client that sends them as an ordinary user.

    python crafted.py ADDRESS MARKER SECONDS   open a session at ADDRESS (a QPU service, or a job's
                                               gateway with --gateway in place of ADDRESS) and send
                                               every message of CRAFTED again and again for SECONDS;
                                               print one JSON object: per message, the error code,
                                               the error text, how often it was sent, and the median
                                               and slowest round trip of its refusal in ms

Each code-running message writes MARKER if it runs: the test checks the file never appears.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

CODE = "__import__('os').system('id > {marker}')"


def circuit_with(gate: str) -> str:
    return ('{"cirq_type": "Circuit", "moments": [{"cirq_type": "Moment", "operations": [{"cirq_type": '
            '"GateOperation", "gate": %s, "qubits": [{"cirq_type": "LineQubit", "x": 0}]}, {"cirq_type": '
            '"GateOperation", "gate": {"cirq_type": "MeasurementGate", "num_qubits": 1, "key": "m", '
            '"invert_mask": []}, "qubits": [{"cirq_type": "LineQubit", "x": 1}]}]}]}' % gate)


def crafted(marker: str) -> dict[str, str]:
    """The messages of issue 20: code through sympify (at the top and inside a gate), a power
    computed while decoding, and a sub-circuit repeated 10**12 times."""
    code = json.dumps(CODE.format(marker=marker))
    return {
        "sympify_at_top": '{"cirq_type":"Circuit","moments":[],"x":{"cirq_type":"sympy.Not","args":[%s]}}' % code,
        "sympify_in_exponent": circuit_with('{"cirq_type": "XPowGate", "exponent": {"cirq_type": "sympy.Xor", '
                                        '"args": [%s, %s]}, "global_shift": 0.0}' % (code, code)),
        "indexed_symbol": circuit_with('{"cirq_type": "XPowGate", "exponent": {"cirq_type": "sympy.Indexed", '
                                   '"args": [%s, 0]}, "global_shift": 0.0}' % code),
        "huge_power": circuit_with('{"cirq_type": "XPowGate", "exponent": {"cirq_type": "sympy.Pow", "args": '
                               '[{"cirq_type": "sympy.Integer", "i": 3}, {"cirq_type": "sympy.Integer", '
                               '"i": 100000000}]}, "global_shift": 0.0}'),
        "repeated_subcircuit": (
            '{"cirq_type": "Circuit", "moments": [{"cirq_type": "Moment", "operations": [{"cirq_type": '
            '"CircuitOperation", "circuit": {"cirq_type": "FrozenCircuit", "moments": [{"cirq_type": "Moment", '
            '"operations": [{"cirq_type": "GateOperation", "gate": {"cirq_type": "HPowGate", "exponent": 1.0, '
            '"global_shift": 0.0}, "qubits": [{"cirq_type": "LineQubit", "x": 0}]}]}]}, "repetitions": '
            '1000000000000, "qubit_map": [], "measurement_key_map": {}, "param_resolver": {"cirq_type": '
            '"ParamResolver", "param_dict": []}, "repetition_ids": null, "use_repetition_ids": false, '
            '"parent_path": []}]}, {"cirq_type": "Moment", "operations": [{"cirq_type": "GateOperation", "gate": '
            '{"cirq_type": "MeasurementGate", "num_qubits": 1, "key": "m", "invert_mask": []}, "qubits": '
            '[{"cirq_type": "LineQubit", "x": 0}]}]}]}'),
    }


def main(address: str, marker: str, seconds: float) -> dict:
    from hcqw.device.work import WorkItem
    from hcqw.errors import CircuitError
    from hcqw.service import protocol as P
    from hcqw.service.client import ServiceClient, ServiceError

    if address == "--gateway":
        from hcqw.hetjob.device import GatewayDevice

        address = GatewayDevice(os.environ["HCQW_GATEWAY_ADDRESS_FILE"]).wait_address()
    seen: dict[str, dict] = {}
    times: dict[str, list[float]] = {}
    with ServiceClient(address, timeout=30) as client, client.session("crafted-wf", "crafted") as qpu:
        end = time.monotonic() + seconds
        while not seen or time.monotonic() < end:
            for name, text in crafted(marker).items():
                start = time.perf_counter()
                try:
                    qpu.run_batch([WorkItem(text, 10)])
                    seen[name] = {"code": "ok"}
                except (ServiceError, CircuitError) as err:  # the client raises CircuitError for its code
                    times.setdefault(name, []).append((time.perf_counter() - start) * 1000)
                    code = err.code if isinstance(err, ServiceError) else P.E_CIRCUIT
                    seen[name] = {"code": code, "message": str(err), "sent": len(times[name]),
                                  "median_ms": statistics.median(times[name]), "slowest_ms": max(times[name])}
        seen["own_run_after"] = {"code": "ok" if qpu.run_batch([WorkItem(circuit_with(
            '{"cirq_type": "HPowGate", "exponent": 1.0, "global_shift": 0.0}'), 10)]) else "empty"}
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], float(sys.argv[3]))))
